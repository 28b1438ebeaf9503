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

    def __post_init__(self) -> None:
        if self.loss not in ("mse", "rank", "mse+rank"):
            raise ConfigError(f"loss must be mse, rank or mse+rank, got {self.loss!r}")
        if self.target not in ("zscore", "raw"):
            raise ConfigError(f"target must be zscore or raw, got {self.target!r}")
        if self.metric not in TARGET_METRICS:
            raise ConfigError(f"metric must be one of {', '.join(TARGET_METRICS)}, got {self.metric!r}")
        for name in ("epochs", "batch_size", "hidden", "embed"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")


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

    def forward(self, features: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        a_flat = arch.flatten(1)
        t = self.task(features)
        a = self.arch(a_flat)
        inter = self.head(torch.cat([t, a, t * a], dim=1))
        return (self.base(a_flat) + inter).squeeze(1)


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
