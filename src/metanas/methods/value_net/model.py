"""The value network itself and its meta-training configuration."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from metanas.errors import (
    ConfigError,
)
from metanas.kb.views import (
    TARGET_METRICS,
)
from metanas.spaces.nb201 import NUM_EDGES, NUM_OPS, all_op_indices

MAX_ENSEMBLE = 64
"""More members than this is a damaged or hostile config, not a design (each costs a full
meta-training and its share of every search step)."""


@dataclass
class ValueNetConfig:
    hidden: int = 128
    embed: int = 64
    """Width of the architecture and task embeddings before they are joined."""
    dropout: float = 0.5
    loss: str = "rank"
    """``rank`` (pairwise within a task), ``mse`` or ``mse+rank``."""
    target: str = "zscore"
    """``zscore``: accuracies standardised per task; ``raw``: as measured."""
    epochs: int = 100
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    rank_pairs: int = 512
    """Pairs of one task's evaluations drawn per batch for the pairwise rank loss."""
    seed: int = 0
    metric: str = "heldout"
    """The knowledge-base accuracy learned from (one of ``TARGET_METRICS``)."""
    recipe: str | None = None
    """Only evaluations trained with this recipe (None: every recipe)."""
    fidelity_features: bool = True
    """The evaluation's fidelity (epochs, width, resolution, ...) among the inputs."""
    pool_small_tasks: bool = True
    exclude_sources: str = ""
    """Comma-separated task sources left out of meta-training (leave-one-source-out)."""
    neighbour_sources: str = ""
    """Sources kept out of the network and stored as neighbours: a target whose nearest
    meta-training tasks are theirs is searched by the cells they measured
    (:mod:`metanas.methods.value_net.regime`)."""
    group_sources: str = ""
    """Knowledge sources whose tasks are kept together in batches (comma list; ``all``: every
    task). Batches are otherwise drawn uniformly over evaluations, and rank pairs must share a
    task, so a task with a few dozen evaluations almost never forms a pair next to a table of
    15,625: its ranking is hardly learned. Each task of a grouped source forms one block of
    the epoch's order, so its cells are compared (docs/value_net.md, session 14)."""
    ensemble: int = 1
    """Networks meta-trained with seeds ``seed``, ``seed + 1``, ... on the same data; the
    search maximizes their mean output. One seed of eight ranked pooling where the best cells
    have a skip (a 41.35 pick on the leave-ImageNet16-120-out protocol); ensembles of eight
    picked 46.48-47.31 on every seed (docs/value_net.md, "Eight meta-training seeds, and
    ensembles")."""

    def __post_init__(self) -> None:
        if self.loss not in ("mse", "rank", "mse+rank"):
            raise ConfigError(f"loss must be mse, rank or mse+rank, got {self.loss!r}")
        if self.target not in ("zscore", "raw"):
            raise ConfigError(f"target must be zscore or raw, got {self.target!r}")
        if self.metric not in TARGET_METRICS:
            raise ConfigError(f"metric must be one of {', '.join(TARGET_METRICS)}, got {self.metric!r}")
        for name in ("epochs", "batch_size", "hidden", "embed", "ensemble"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.ensemble > MAX_ENSEMBLE:
            raise ConfigError(f"ensemble must be <= {MAX_ENSEMBLE}, got {self.ensemble!r}")


class ValueNetwork(nn.Module):
    """Architecture main effect plus a task x architecture interaction.

    ``value = base(a) + head([t, a, t * a])`` with ``t`` an embedding of the meta-features and
    ``a`` of the relaxed architecture. The main effect alone is the task-agnostic predictor;
    the interaction (with dropout on the task embedding) adds what the task changes, so few
    meta-training tasks cannot make the model much worse than ignoring the task.
    """

    def __init__(self, n_features: int, hidden: int = 128, embed: int = 64,
                 dropout: float = 0.0) -> None:
        super().__init__()
        n_arch = NUM_EDGES * NUM_OPS
        self.base = nn.Sequential(nn.Linear(n_arch, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.task = nn.Sequential(nn.Linear(n_features, embed), nn.SiLU(), nn.Dropout(dropout))
        self.arch = nn.Sequential(nn.Linear(n_arch, embed), nn.SiLU())
        self.head = nn.Sequential(
            nn.Linear(3 * embed, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    @classmethod
    def from_config(cls, n_features: int, config: ValueNetConfig) -> ValueNetwork:
        return cls(n_features, config.hidden, config.embed, config.dropout)

    def forward(self, features: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        a_flat = arch.flatten(1)
        t = self.task(features)
        a = self.arch(a_flat)
        inter = self.head(torch.cat([t, a, t * a], dim=1))
        return (self.base(a_flat) + inter).squeeze(1)


class ValueEnsemble(nn.Module):
    """The mean output of value networks that share one input encoding (meta-trained on the
    same knowledge base with different seeds): a smoother objective for the gradient search
    and a ranking no single seed's quirks decide.

    In eval mode the members run as one batched network (``torch.func.vmap`` over their
    stacked weights): 8 members cost a gradient search about 3x one network's time, not 8x.
    The stack is a detached copy, so in eval mode gradients reach the inputs (the search's
    relaxed cells), not the weights; train mode (dropout, weight gradients) runs the members
    one by one. The stack is rebuilt when a weight was written in place or replaced
    (``load_state_dict``, also with ``assign=True``; ``.data =``; an optimizer step) or
    converted (``.to``, ``.double``).
    """

    def __init__(self, members: list[ValueNetwork]) -> None:
        if len(members) < 2:
            raise ConfigError(f"an ensemble needs at least 2 networks, got {len(members)}")
        super().__init__()
        self.members = nn.ModuleList(members)
        self._refresh()
        self.register_load_state_dict_post_hook(lambda module, _keys: module._refresh())

    def _refresh(self) -> None:
        """Re-read the members' parameter objects and drop the stack."""
        self._names = [k for k, _ in self.members[0].named_parameters()]
        self._params = [dict(m.named_parameters()) for m in self.members]
        self._stacked: tuple[tuple, dict[str, torch.Tensor]] | None = None

    def _apply(self, fn, *args, **kwargs):  # .to(), .double(), ...: new tensors
        out = super()._apply(fn, *args, **kwargs)
        self._refresh()
        return out

    def __getstate__(self) -> dict:  # pickle / deepcopy: the stack is a cache
        return {**self.__dict__, "_stacked": None}

    def _stacked_params(self) -> dict[str, torch.Tensor]:
        """The members' weights stacked along a first axis (cached; see the class)."""
        key = tuple((t._version, t.data_ptr()) for d in self._params for t in d.values())
        if self._stacked is None or self._stacked[0] != key:
            with torch.no_grad():
                self._stacked = (key, {k: torch.stack([d[k] for d in self._params])
                                       for k in self._names})
        return self._stacked[1]

    def forward(self, features: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        if self.training or any(m.training for m in self.members):
            return torch.stack([m(features, arch) for m in self.members]).mean(0)
        member = self.members[0]

        def one(params: dict[str, torch.Tensor], f: torch.Tensor, a: torch.Tensor
                ) -> torch.Tensor:
            return torch.func.functional_call(member, params, (f, a))

        stacked = torch.func.vmap(one, in_dims=(0, None, None))
        return stacked(self._stacked_params(), features, arch).mean(0)


def as_value_net(members: list[ValueNetwork]) -> nn.Module:
    """One network as itself, several as their :class:`ValueEnsemble`."""
    return members[0] if len(members) == 1 else ValueEnsemble(members)


def build_value_net(n_features: int, config: ValueNetConfig) -> nn.Module:
    """The (untrained) network a config declares: ``config.ensemble`` value networks."""
    return as_value_net([ValueNetwork.from_config(n_features, config)
                         for _ in range(config.ensemble)])


@functools.cache
def _all_one_hots() -> torch.Tensor:
    """One-hot encodings of all cells in index order (built once per process)."""
    return torch.as_tensor(np.eye(NUM_OPS, dtype=np.float32)[all_op_indices()])


def epoch_order(task_index: torch.Tensor, grouped: torch.Tensor,
                gen: torch.Generator) -> torch.Tensor:
    """The order of one epoch's evaluations: a random permutation in which the evaluations of
    each task with ``grouped[task]`` form one block (shuffled inside), placed at random among
    the other evaluations. Nothing grouped: the plain permutation."""
    order = torch.randperm(len(task_index), generator=gen)
    if not bool(grouped.any()):
        return order
    n_tasks = len(grouped)
    tasks = task_index[order]
    unit = torch.where(grouped[tasks], tasks, n_tasks + torch.arange(len(order)))
    rank = torch.randperm(n_tasks + len(order), generator=gen)  # a random place per unit
    return order[torch.argsort(rank[unit], stable=True)]


def _pairwise_rank_loss(pred, target, task_idx, n_pairs, gen) -> torch.Tensor:
    """Logistic loss on score differences of random pairs drawn from the same task."""
    n = len(pred)
    i = torch.randint(0, n, (n_pairs * 4,), generator=gen)
    j = torch.randint(0, n, (n_pairs * 4,), generator=gen)
    keep = (task_idx[i] == task_idx[j]) & (target[i] != target[j])
    i, j = i[keep][:n_pairs], j[keep][:n_pairs]
    if len(i) == 0:
        return pred.sum() * 0.0
    sign = torch.sign(target[i] - target[j])
    return nn.functional.softplus(-sign * (pred[i] - pred[j])).mean()
