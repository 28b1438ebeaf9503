"""Ranking a shortlist for the seconds its pick will be trained (``train_budget``).

The network and the proxies rank cells for equal epochs, as the 200-epoch tables do; a user
with a wall budget (``metanas fit``, ``search --train --train-budget``) gets equal *seconds*,
and a cheap cell then runs more epochs: at 60 s on CIFAR-10 the epochs a cell ran rank the fit
accuracies at Spearman 0.95 while the network's equal-epoch score ranks them at -0.58
(docs/roadmap.md). Here each shortlisted cell gets the epochs the budget buys it, from a
deterministic per-op step cost (:func:`~metanas.training.budget.relative_step_cost`) scaled by
one timed training step of the first cell on this machine, and the accuracy those epochs cost
it against a long training, from a learning curve measured on a development task
(:data:`~metanas.training.budget.EPOCH_CURVE`). The budget score is ``vote * tolerance -
deficit``: the vote's whole range is worth ``tolerance`` accuracy points, so a tight budget
orders by epochs and a long one leaves the vote's order.
"""

from __future__ import annotations

import math

import numpy as np

from metanas.data import ImageDataset
from metanas.methods.interface import Candidate
from metanas.spaces.nb201 import NB201Arch
from metanas.training.budget import (
    EPOCH_CURVE,
    SAFETY,
    epoch_deficit,
    pick_batch_size,
    relative_step_cost,
    time_train_step,
)
from metanas.training.fit import FIT_VAL_FRACTION

TIMED_STEPS = 2
"""Timed training steps of the reference cell (after one warm-up step)."""


def cheap_cells(scores: np.ndarray, *, share: float, n: int, resolution: int,
                exclude: set[str]) -> list[Candidate]:
    """The ``n`` cheapest cells to train (:func:`relative_step_cost`; ties: the higher
    score) among the best ``share`` of all cells by ``scores`` (indexed by cell index):
    connected, without dead edges, one per canonical form, none whose canonical form is in
    ``exclude``. Each carries its network score as ``score``."""
    top = np.argsort(-scores, kind="stable")[:max(1, round(share * len(scores)))]
    pool, seen = [], set(exclude)
    for i in top:
        arch = NB201Arch.from_index(int(i))
        if not arch.is_connected or "dead" in arch.edge_roles or arch.canonical_form in seen:
            continue
        seen.add(arch.canonical_form)
        pool.append((relative_step_cost(arch, resolution), -float(scores[i]), arch))
    pool.sort(key=lambda t: t[:2])
    return [Candidate(a.to_string(), -neg) for _, neg, a in pool[:n]]


def budget_rank(candidates: list[Candidate], dataset: ImageDataset, *, train_budget: float,
                resolution: int, tolerance: float, seed: int,
                step_seconds: float | None = None) -> tuple[list[Candidate], dict]:
    """``candidates`` (best first, ``score`` the vote in [0, 1]) re-ordered by their budget
    score; each gets ``epochs`` (the budget buys it at C=8, N=1), ``deficit`` (accuracy
    points those epochs cost) and ``vote`` in ``extra``. ``step_seconds``: the first cell's
    step time (default: timed here)."""
    n_train = max(1, round(len(dataset.y_train) * (1 - FIT_VAL_FRACTION)))
    batch = min(pick_batch_size(n_train), n_train)
    steps = math.ceil(n_train / batch)
    if step_seconds is None:  # the machine's speed, measured once, on the first cell
        step_seconds = time_train_step(candidates[0].arch, side=resolution, batch=batch,
                                       channels=dataset.channels,
                                       classes=len(dataset.class_names), timed=TIMED_STEPS,
                                       seed=seed)
    cost0 = relative_step_cost(candidates[0].arch, resolution)
    out = []
    for c in candidates:
        epoch_s = steps * step_seconds * relative_step_cost(c.arch, resolution) / cost0
        epochs = SAFETY * train_budget / epoch_s
        deficit = epoch_deficit(epochs)
        out.append(Candidate(c.arch, tolerance * c.score - deficit,
                             {**c.extra, "vote": c.score, "epochs": round(epochs, 2),
                              "deficit": round(deficit, 3)}))
    order = sorted(range(len(out)), key=lambda i: (-out[i].score, i))
    details = {"train_budget": train_budget, "step_seconds": step_seconds,
               "steps_per_epoch": steps, "batch": batch, "tolerance": tolerance,
               "epoch_curve": dict(EPOCH_CURVE)}
    return [out[i] for i in order], details
