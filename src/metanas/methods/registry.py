"""Every search method by name, so the API, the CLI and the benchmark find them in one place.

A method is registered with where its class lives (imported only when used), a one-line
summary, what its search budget means, and, for meta-learned methods, the checkpoint file
shipped in ``metanas/assets``. Adding a method = writing its module + one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from metanas.errors import ConfigError
from metanas.methods.interface import MetaLearnedMethod, SearchMethod
from metanas.paths import assets_dir

__all__ = ["METHODS", "MethodSpec", "create_method", "default_checkpoint", "get_method"]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    target: str
    """``module:Class`` of the :class:`SearchMethod`."""
    summary: str
    budget: str
    """What a seconds and an evaluations budget mean for this method, in words (the kinds it
    takes are declared by its class: ``budget_kinds``)."""
    checkpoint: str | None = None
    """File name of the shipped meta-trained checkpoint in ``metanas/assets``."""
    learns_from: str = "kb"
    """``kb``: meta-trained on knowledge-base evaluations; ``images``: on task images only
    (BASE), so meta-training needs no knowledge base."""

    def load_class(self) -> type[SearchMethod]:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)

    @property
    def meta_learned(self) -> bool:
        return self.checkpoint is not None


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "value-net", "metanas.methods.value_net:ValueNetMethod",
            "task-aware value network (meta-learned; ranks all cells in well under a second)",
            "none: ranks without training", checkpoint="value_net.safetensors",
        ),
        MethodSpec(
            "base", "metanas.methods.base:BASEMethod",
            "BASE meta-supernet (meta-learned weights + architecture logits): adapts to the "
            "dataset, then derives the cell",
            "adaptation wall seconds (default: 100 adaptation steps, --adapt-steps); "
            "evaluations do not apply", checkpoint="base_nb201.safetensors",
            learns_from="images",
        ),
        MethodSpec(
            "base-prior", "metanas.methods.base:BASEPriorMethod",
            "BASE's multi-task prior (meta-learned): the cell derived from the meta-learned "
            "architecture distribution, without adapting to the dataset",
            "none: derives without adaptation or training", checkpoint="base_nb201.safetensors",
            learns_from="images",
        ),
        MethodSpec(
            "darts", "metanas.methods.gradient_nas:DARTSSearch",
            "first-order DARTS on the NB201 supernet from scratch (bilevel, softmax mixing)",
            "search steps (default 100, --set steps=N) capped by the seconds; evaluations do "
            "not apply",
        ),
        MethodSpec(
            "gdas", "metanas.methods.gradient_nas:GDASSearch",
            "GDAS on the NB201 supernet from scratch (one Gumbel-max path per step)",
            "search steps (default 100, --set steps=N) capped by the seconds; evaluations do "
            "not apply",
        ),
        MethodSpec(
            "metad2a", "metanas.methods.metad2a:MetaD2AMethod",
            "MetaD2A: generates cells from the dataset's images (set encoder -> graph VAE), "
            "ranks them with a meta-learned predictor",
            "none: generates and ranks without training", checkpoint="metad2a.safetensors",
        ),
        MethodSpec(
            "zero-cost", "metanas.methods.zero_cost:ZeroCostSearch",
            "zero-cost proxies (nwot + meco rank vote) of sampled cells on the dataset's own "
            "images at initialisation; no training, no meta-learning",
            "cells scored (--budget-evals, default 100) capped by the seconds (--budget)",
        ),
        MethodSpec(
            "random", "metanas.methods.baselines:RandomSearch",
            "random search: trains random cells on the target task within the budget",
            "trains candidates until the seconds or evaluations run out (default 10 evaluations)",
        ),
        MethodSpec(
            "rea", "metanas.methods.baselines:RegularizedEvolution",
            "regularized evolution: trains mutated cells on the target task within the budget",
            "trains candidates until the seconds or evaluations run out (default 10 evaluations)",
        ),
        MethodSpec(
            "fisher-nearest", "metanas.methods.transfer:FisherNearest",
            "task similarity (meta-learned): trains cells near the best cells of the KB tasks "
            "nearest by Fisher distance",
            "trains candidates until the seconds or evaluations run out (default 10 "
            "evaluations); the Fisher embedding's time counts towards the seconds",
            checkpoint="transfer.safetensors",
        ),
        MethodSpec(
            "nearest-best", "metanas.methods.transfer:NearestBest",
            "best measured cell of the KB task nearest by Fisher distance (meta-learned)",
            "none: embeds the task (seconds), no training", checkpoint="transfer.safetensors",
        ),
        MethodSpec(
            "global-prior", "metanas.methods.transfer:GlobalPrior",
            "the cell best on average over the KB (meta-learned; ignores the task)",
            "none: a lookup, no training", checkpoint="transfer.safetensors",
        ),
    )
}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name]


def default_checkpoint(name: str) -> Path:
    """The meta-trained checkpoint shipped inside the package for method ``name``."""
    spec = get_method(name)
    if spec.checkpoint is None:
        raise ConfigError(f"method {name!r} has no shipped checkpoint")
    return assets_dir() / spec.checkpoint


def create_method(
    name: str, *, checkpoint: str | Path | None = None, recipe: str = "cpu-proxy",
    device: str = "cpu",
) -> SearchMethod:
    """A ready method: meta-learned ones loaded from ``checkpoint`` (default: the shipped
    one), methods that train candidates built with ``recipe`` on ``device`` (a meta-learned
    one that trains candidates gets ``recipe`` when its ``load`` takes it)."""
    spec = get_method(name)
    cls = spec.load_class()
    if issubclass(cls, MetaLearnedMethod):
        path = checkpoint or default_checkpoint(name)
        if cls.trains_candidates:
            return cls.load(path, device=device, recipe=recipe)
        return cls.load(path, device=device)
    if checkpoint is not None:
        raise ConfigError(f"method {name!r} is not meta-learned and takes no checkpoint")
    return cls(recipe, device=device)
