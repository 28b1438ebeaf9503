"""What each search method accepts: its search options as a typed dataclass, checked once.

A method declares ``Options`` (a subclass of :class:`SearchOptions`) and the budget kinds it
takes (:class:`metanas.methods.interface.SearchMethod`); :meth:`SearchOptions.parse` turns the
user's ``{name: value}`` (``--set KEY=VALUE`` on the CLI, keyword arguments in the API) into a
validated instance: unknown names, wrong types (``restarts=abc``, ``restarts=1.5``), values out
of range (``restarts=0``) and values not among the choices are one-line errors naming the
method and the option. The field defaults are the method's defaults; nothing else repeats them.

Importing this module costs no torch (listings and docs can read the options of every method).
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from metanas.errors import ConfigError

__all__ = [
    "SearchOptions", "option", "check_value", "NoOptions", "ValueNetOptions", "BASEOptions",
    "BASEPriorOptions", "GradientNASOptions", "MetaD2AOptions", "ZeroCostOptions",
    "GlobalPriorOptions", "NearestBestOptions", "FisherNearestOptions",
]


def option(default: Any, help: str, *, min: float | None = None, max: float | None = None,
           choices: tuple | None = None) -> Any:
    """A dataclass field with its help text and the range or choices :meth:`parse` checks."""
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults must be immutable (use a tuple)")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SearchOptions:
    """Base of every method's options; subclasses add fields made with :func:`option`."""

    @classmethod
    def parse(cls, values: dict[str, Any], method: str) -> SearchOptions:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"method {method!r} has no option(s) {', '.join(unknown)}; its "
                              f"options: {', '.join(known) or 'none'}")
        hints = typing.get_type_hints(cls)
        checked = {name: check_value(method, name, hints[name], value, known[name].metadata)
                   for name, value in values.items()}
        return cls(**checked)

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """Name, type, default and help of every option (for listings and docs)."""
        hints = typing.get_type_hints(cls)
        return [{"name": f.name, "type": _type_name(hints[f.name]),
                 "default": None if f.default is MISSING else f.default,
                 "help": f.metadata.get("help", "")} for f in fields(cls)]

    def as_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if _is_optional(tp):
        return f"{_type_name(args[0])} | None"
    if typing.get_origin(tp) is tuple:
        return f"tuple[{_type_name(typing.get_args(tp)[0])}, ...]"
    return getattr(tp, "__name__", str(tp))


def _is_optional(tp: Any) -> bool:
    return (typing.get_origin(tp) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(tp))


def check_value(method: str, name: str, tp: Any, value: Any, meta: Any) -> Any:
    """``value`` as type ``tp`` within the field's range/choices (``meta``: :func:`option`'s,
    or ``{}``), or a one-line error naming ``method`` and option ``name``."""
    what = f"{method} option {name}"
    if _is_optional(tp):
        if value is None:
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, (int, float)) and not isinstance(items, bool):
            items = [items]
        if not isinstance(items, (list, tuple)) or not items:
            raise ConfigError(f"{what} must be a non-empty list, got {_shown(value)}")
        inner = typing.get_args(tp)[0]
        parsed = [int(x) if isinstance(x, str) and x.strip().lstrip("-").isdigit() else x
                  for x in items]
        return tuple(check_value(method, name, inner, x, meta) for x in parsed)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{what} must be true or false, got {_shown(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{what} must be an integer{_range(meta)}, got {_shown(value)}")
    elif tp is float:
        number = math.nan
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond any float
                number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{what} must be a finite number{_range(meta)}, got "
                              f"{_shown(value)}")
        value = number
    elif tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # --set prior_exclude=2 arrives as a number
        if not isinstance(value, str):
            raise ConfigError(f"{what} must be text, got {_shown(value)}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(map(str, choices))}, got "
                          f"{_shown(value)}")
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        kind = " an integer" if tp is int else " a number"
        raise ConfigError(f"{what} must be{kind}{_range(meta)}, got {_shown(value)}")
    return value


def _range(meta: Any) -> str:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    return f" <= {high}" if high is not None else ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ----- the methods' options ---------------------------------------------------------------------
@dataclass(frozen=True)
class NoOptions(SearchOptions):
    """Methods without search options (random search)."""


@dataclass(frozen=True)
class ValueNetOptions(SearchOptions):
    mode: str = option("gradient", "gradient: ascent from restarts plus neighbours; exhaustive: "
                       "score all 15,625 cells", choices=("gradient", "exhaustive"))
    restarts: int = option(8, "gradient-ascent restarts", min=1)
    max_train_per_class: int | None = option(500, "images per class for the task features",
                                             min=1)
    fidelity: str = option("auto", "rank for a full NB201 training, the knowledge base's "
                           "proxy training, or the mean of both (auto: full where the "
                           "checkpoint saw a dense full-training table, else proxy)",
                           choices=("auto", "full", "proxy", "mix"))
    resolution: int | None = option(None, "task resolution (default: the knowledge base's "
                                    "closest to the images)", min=8, max=512)
    prior_pool: bool = option(True, "the published sources' best cells compete too")
    rerank: str = option("nwot", "zero-cost proxies that re-rank the shortlist (empty: off)")
    shortlist: int = option(5, "cells re-ranked by the proxies (the best by the network; "
                            "candidates beyond them follow in the network's order)", min=1,
                            max=15625)
    rerank_size: str = option("8,1", "C,N of the network the proxies score")
    rerank_resolution: int = option(16, "image side the proxies see", min=4, max=512)
    rerank_batch: int = option(64, "images the proxies see", min=2, max=4096)
    rerank_weights: str = option("", "weights of the network's ranking and of each proxy in "
                                 "the vote (comma list; empty: the checkpoint's learned ones, "
                                 "else equal)")
    train_budget: float | None = option(None, "seconds the pick will be trained for (metanas "
                                        "fit; set by search --train --train-budget): rank "
                                        "the shortlist for the epochs each cell runs in them",
                                        min=1e-3)
    budget_shortlist: int = option(20, "with train_budget: cells voted on and ranked for it",
                                   min=1, max=15625)
    budget_cheap: int = option(10, "with train_budget: the cheapest cells to train among the "
                               "network's best budget_top share join the shortlist", min=0,
                               max=15625)
    budget_top: float = option(0.02, "with train_budget: share of all cells, best by the "
                               "network, that budget_cheap draws from", min=1e-4, max=1.0)
    budget_tolerance: float = option(2.0, "with train_budget: accuracy points the vote's whole "
                                     "range is worth against the epochs", min=0.0)
    budget_step_seconds: float | None = option(None, "with train_budget: seconds of one "
                                               "training step of the shortlist's first cell "
                                               "(C=8, N=1; default: timed here; set it for a "
                                               "ranking that does not depend on the machine)",
                                               min=1e-6)
    regime_k: int = option(5, "nearest meta-training tasks that decide whether the dataset is "
                           "in a neighbour source's regime, searched by the cells its tasks "
                           "measured instead of mode and fidelity (0: never; checkpoints "
                           "without neighbours: never)", min=0)


@dataclass(frozen=True)
class BASEOptions(SearchOptions):
    mode: str = option("adapt", "adapt to the dataset, or derive from the meta-learned prior",
                       choices=("adapt", "prior"))
    adapt_steps: int | None = option(None, "adaptation steps (default: the checkpoint's; with "
                                     "a seconds budget: until it is spent)", min=0)
    freeze_arch: bool = option(False, "ablation: architecture logits fixed while adapting")
    sampling: str | None = option(None, "ablation: op mixing while adapting",
                                  choices=("gumbel", "softmax", "hard"))
    subsets: int = option(1, "adaptations on different image/class subsets, averaged", min=1)
    subset_classes: int | None = option(None, "classes per subset", min=2)
    space: str | None = option(None, "the checkpoint's space (nb201 or darts)",
                               choices=("nb201", "darts"))
    max_train_per_class: int | None = option(500, "images per class adapted on", min=1)
    prior: str = option("kb", "add the knowledge base's op prior to the cell logits",
                        choices=("kb", "none"))
    prior_strength: float = option(1.0, "weight of the op prior", min=0.0)
    prior_exclude: str = option("", "published sources left out of the prior (comma list)")
    prior_kb: str = option("default", "knowledge base the prior comes from")
    warmup: int = option(50, "steps that move only the weights before the logits", min=0)
    inherit: bool = option(False, "with --train: start the pick's final training from the "
                           "adapted supernet's weights (at its C and N)")

    def __post_init__(self) -> None:
        if self.mode == "prior" and self.adapt_steps is not None:
            raise ConfigError("base mode=prior derives without adaptation: it takes no "
                              "adapt_steps")
        if self.mode == "prior" and self.inherit:
            raise ConfigError("base inherit=true needs an adapted supernet; mode=prior "
                              "derives without adaptation (use mode=adapt)")


@dataclass(frozen=True)
class BASEPriorOptions(SearchOptions):
    space: str | None = option(None, "the checkpoint's space (nb201 or darts)",
                               choices=("nb201", "darts"))
    prior: str = option("kb", "add the knowledge base's op prior to the cell logits",
                        choices=("kb", "none"))
    prior_strength: float = option(1.0, "weight of the op prior", min=0.0)


@dataclass(frozen=True)
class GradientNASOptions(SearchOptions):
    steps: int | None = option(None, "search steps (default 100; capped by a seconds budget)",
                               min=1)
    space: str = option("nb201", "search space", choices=("nb201", "darts"))
    feature_size: int = option(16, "supernet feature size", min=1)
    resolutions: tuple[int, ...] = option((16, 32), "resolutions with their own heads", min=8,
                                          max=512)
    arch_lr: float | None = option(None, "architecture learning rate", min=0.0)


@dataclass(frozen=True)
class MetaD2AOptions(SearchOptions):
    mode: str = option("generate", "generate cells from the dataset, or rank all",
                       choices=("generate", "exhaustive"))
    candidates: int = option(500, "cells generated", min=1, max=100_000)
    resamples: int = option(10, "image sets the predictor averages over", min=1, max=1000)
    temperature: float = option(1.0, "decoder softmax temperature", min=1e-6)
    z_scale: float = option(0.0, "> 0: also sample the latent around its mean", min=0.0)
    resolution: int | None = option(None, "image side the dataset is seen at (default: the "
                                    "knowledge base's resolution closest to its images)",
                                    min=4, max=512)
    pruned: bool = option(True, "score each cell by its pruned form (edges that cannot reach "
                          "the output set to none), so cells computing one function score alike")
    rerank: str = option("nwot,meco", "zero-cost proxies that re-rank the shortlist (empty: "
                         "off; nwot and meco share one forward pass)")
    shortlist: int = option(30, "cells re-ranked by the proxies (the predictor's best, as "
                            "the paper trains its top 30; the rest follow in its order)", min=1,
                            max=15625)
    rerank_size: str = option("8,1", "C,N of the network the proxies score")
    rerank_resolution: int = option(16, "image side the proxies see", min=4, max=512)
    rerank_batch: int = option(32, "images the proxies see (32: the same top-1 as 64 on "
                               "the leave-ImageNet16-120-out protocol, for 0.2 s less)",
                               min=2, max=4096)


@dataclass(frozen=True)
class ZeroCostOptions(SearchOptions):
    proxies: str = option("nwot,meco", "proxies in the rank vote (comma list)")
    C: int = option(8, "network width scored", min=1, max=256)
    N: int = option(1, "cells per stage scored", min=1, max=16)
    resolution: int | None = option(None, "image side scored (default: min(16, the images'))",
                                    min=4, max=512)
    batch_size: int = option(64, "images in the scored batch", min=2, max=4096)


@dataclass(frozen=True)
class GlobalPriorOptions(SearchOptions):
    resolution: str = option("all", "prior over all tasks, or those at the dataset's "
                             "resolution", choices=("all", "match"))


@dataclass(frozen=True)
class NearestBestOptions(SearchOptions):
    max_train_per_class: int | None = option(500, "images per class embedded", min=1)


@dataclass(frozen=True)
class FisherNearestOptions(SearchOptions):
    k: int = option(3, "nearest knowledge-base tasks", min=1)
    cells_per_task: int = option(2, "best cells taken from each", min=1)
    radius: int = option(2, "edges a mutation may stray from a seed cell", min=0)
    population: int = option(10, "tournament population", min=1)
    sample_size: int = option(3, "tournament size", min=1)
    recipe: str | None = option(None, "training recipe of the candidates (default: the "
                                "method's)")
    max_train_per_class: int | None = option(None, "labelled images per class trained on",
                                             min=1)

