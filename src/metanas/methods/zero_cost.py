"""Zero-cost search: score sampled cells on the target's own images at initialisation, no
training, and rank them by a rank vote of proxies (:mod:`metanas.features.zero_cost`).

Defaults: ``nwot`` and ``meco`` (the two best against NB201 ImageNet16-120 accuracy in
``docs/zero_cost.md`` at C=8, N=1: Spearman 0.82-0.83; as a vote on 100 cells their first pick
scores 45.74 on the leave-ImageNet16-120-out protocol, nwot + zico 45.00, at four fifths of
the time), 100 seeded distinct connected cells at 16 px. Budget:
evaluations = cells scored, seconds = seconds of scoring (whichever comes first).
"""

from __future__ import annotations

import time

import numpy as np

from metanas.data import ImageDataset
from metanas.features.batched_proxies import BATCHED
from metanas.features.zero_cost import (
    ZeroCostConfig,
    check_proxies,
    proxy_batch,
    rank_vote,
    score_batch,
)
from metanas.methods.interface import Budget, Candidate, SearchMethod, SearchResult
from metanas.methods.options import ZeroCostOptions
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Arch
from metanas.spaces.nb201.network import nb201_side
from metanas.tasks import make_task

DEFAULT_CELLS = 100
MAX_CELLS = 1000
"""Cells drawn when only seconds bound the search (the scoring stops at the deadline, within
about one cell's time)."""
CELLS_AT_ONCE = 16
"""Cells scored together (nwot and meco run them side by side) between budget checks."""
DEFAULT_RESOLUTION = 16
"""Image side the proxies see unless set (smaller images as they are): the side the re-ranks
use and the leave-ImageNet16-120-out protocol measured (45.74); at 32 px the first pick fell
to 43.40 there and to 44.71 on CIFAR-10 judged in that table (45.29 at 16 px), at 3x the
time (session 17, docs/zero_cost.md)."""


class ZeroCostSearch(SearchMethod):
    """Rank seeded sampled cells by a vote of zero-cost proxies on the dataset's images."""

    name = "zero-cost"
    Options = ZeroCostOptions
    budget_kinds = frozenset({"seconds", "evaluations"})

    def __init__(self, recipe: str = "cpu-proxy", *, device: str = "cpu") -> None:
        self.device = device  # proxies run on the CPU; the recipe is not used (no training)

    def _search(self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
                progress: bool, proxies: str, C: int, N: int, resolution: int | None,
                batch_size: int) -> SearchResult:
        names = check_proxies(proxies)
        config = ZeroCostConfig(C=C, N=N, batch_size=batch_size, seed=seed)
        budget = budget or Budget(evaluations=DEFAULT_CELLS)
        n_cells = budget.evaluations if budget.evaluations is not None else MAX_CELLS
        t0 = time.perf_counter()
        side = resolution or nb201_side(min(DEFAULT_RESOLUTION, max(dataset.image_size)))
        task = make_task(dataset, resolution=side, max_train_per_class=max(8, batch_size),
                         seed=seed)
        x, y = proxy_batch(task, config.batch_size, config.seed)
        results: list[dict] = []
        cells = NB201Arch.sample_distinct(n_cells, seed)
        together = CELLS_AT_ONCE if BATCHED.intersection(names) else 1
        with Bars(progress, transient=True) as bars:
            bar = bars.add("zero-cost scoring", budget.evaluations)
            # a first cell alone measures the time per cell; then groups (nwot and meco run
            # their cells side by side) no larger than the seconds left allow, so a time
            # budget ends within about one cell's time
            size = 1
            while len(results) < len(cells):
                t_group = time.perf_counter()
                if results and budget.exhausted(t_group - t0, len(results)):
                    break
                group = cells[len(results):len(results) + size]
                results += score_batch(group, x, y, num_classes=task.num_classes,
                                       proxies=names, config=config, checked=bool(results),
                                       progress=lambda *_: bars.advance(bar))
                per_cell = (time.perf_counter() - t_group) / len(group)
                size = together
                if budget.seconds is not None:
                    left = budget.seconds - (time.perf_counter() - t0)
                    size = max(1, min(size, int(left / max(per_cell, 1e-9))))
        votes = rank_vote(results, names)
        order = sorted(range(len(results)), key=lambda i: (-votes[i], i))
        candidates = [Candidate(results[i]["arch"], float(votes[i]), {
            p: (None if not np.isfinite(results[i]["scores"][p]) else results[i]["scores"][p])
            for p in names}) for i in order[:top]]
        return SearchResult(
            method=self.name, dataset=dataset.name, candidates=candidates,
            search_seconds=time.perf_counter() - t0,
            timings={"cells": len(results)},
            details={"proxies": list(names), "network": {"C": C, "N": N},
                     "resolution": side, "budget": budget.describe()})
