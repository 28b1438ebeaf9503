"""Search baselines that train candidates on the target task: random search and REA.

Budget semantics: a number of trained candidates (``Budget.evaluations``, default 10) and/or wall
seconds (``Budget.seconds``); the search stops at whichever comes first, after the running
evaluation, and always trains at least one candidate. Candidates are ranked by validation
accuracy; test accuracy rides along in ``extra``.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator

import numpy as np

from metanas.data import ImageDataset
from metanas.errors import ConfigError
from metanas.methods.interface import Budget, Candidate, SearchMethod, SearchResult
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import Task, make_task, proxy_resolution
from metanas.training import DeadlineReached, get_recipe, train_architecture

DEFAULT_EVALUATIONS = 10
MAX_REPEATS = 10_000
"""Consecutive already-seen proposals after which a search stops: the space (4,930 distinct
connected cells) or the population's neighbourhood is exhausted."""


class TrainingSearch(SearchMethod):
    """Shared loop: propose architectures, train each on the task, stop at the budget."""

    budget_kinds = frozenset({"seconds", "evaluations"})
    trains_candidates = True

    def __init__(
        self, recipe: str = "cpu-proxy", *, max_train_per_class: int | None = 500,
        device: str = "cpu",
    ) -> None:
        self.recipe = get_recipe(recipe)
        self.max_train_per_class = max_train_per_class
        self.device = device

    def propose(self, rng: np.random.Generator, history: list[Candidate]) -> Iterator[NB201Arch]:
        raise NotImplementedError

    def _search(self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
                progress: bool) -> SearchResult:
        budget = budget or Budget(evaluations=DEFAULT_EVALUATIONS)
        t0 = time.perf_counter()
        res = self.recipe.resolution or proxy_resolution(max(dataset.image_size))
        task = make_task(
            dataset, resolution=res, max_train_per_class=self.max_train_per_class, seed=seed
        )
        rng = np.random.default_rng(seed)
        history: list[Candidate] = []
        seen: set[str] = set()
        repeats = 0
        with Bars(progress, transient=True) as bars:
            bar = bars.add(f"{self.name} search", budget.evaluations)
            for arch in self.propose(rng, history):
                if history and budget.exhausted(time.perf_counter() - t0, len(history)):
                    break
                if arch.canonical_form in seen or not arch.is_connected:
                    repeats += 1
                    if repeats > MAX_REPEATS:  # nothing new left to propose
                        break
                    continue
                repeats = 0
                seen.add(arch.canonical_form)
                # the first candidate always finishes (a search returns at least one); later
                # ones stop at the time budget instead of overrunning it by a whole training
                deadline = (t0 + budget.seconds) if history and budget.seconds else None
                try:
                    history.append(self._evaluate(arch, task, seed, deadline))
                except DeadlineReached:
                    break
                bars.advance(bar, status=f"best val {self._best(history):.3f}")
        ranked = sorted(history, key=lambda c: -c.score)
        return SearchResult(
            method=self.name,
            dataset=dataset.name,
            candidates=ranked[:top],
            search_seconds=time.perf_counter() - t0,
            timings={"evaluations": len(history)},
            details={
                "recipe": self.recipe.name,
                "recipe_hash": self.recipe.hash,
                "resolution": res,
                "budget": budget.describe(),
                "history": [c.arch for c in history],
            },
        )

    def _evaluate(self, arch: NB201Arch, task: Task, seed: int,
                  deadline: float | None = None) -> Candidate:
        r = train_architecture(arch, task, self.recipe, seed=seed, device=self.device,
                               deadline=deadline)
        extra = {"val_acc": r.val_acc, "test_acc": r.test_acc, "train_seconds": r.seconds}
        return Candidate(arch.to_string(), r.val_acc, extra)

    @staticmethod
    def _best(history: list[Candidate]) -> float:
        return max(c.score for c in history)


class RandomSearch(TrainingSearch):
    """Uniformly random distinct cells, each trained with the recipe."""

    name = "random"

    def propose(self, rng, history):
        while True:
            yield NB201Arch.sample(rng)


class RegularizedEvolution(TrainingSearch):
    """REA (Real et al. 2019): tournament selection, single-edge mutation, age-based removal."""

    name = "rea"

    def __init__(self, recipe: str = "cpu-proxy", *, population: int = 10, sample_size: int = 3,
                 **kwargs) -> None:
        super().__init__(recipe, **kwargs)
        if population < 2 or not 1 <= sample_size <= population:
            raise ConfigError("REA needs population >= 2 and 1 <= sample_size <= population")
        self.population = population
        self.sample_size = sample_size

    def propose(self, rng, history):
        alive: collections.deque[Candidate] = collections.deque()
        consumed = 0
        while True:
            # history grows by one after each proposal that was evaluated.
            for cand in history[consumed:]:
                alive.append(cand)
                if len(alive) > self.population:
                    alive.popleft()
            consumed = len(history)
            if len(history) < self.population:
                yield NB201Arch.sample(rng)
                continue
            picks = rng.choice(len(alive), size=self.sample_size, replace=False)
            parent = max((alive[i] for i in picks), key=lambda c: c.score)
            yield NB201Arch.from_string(parent.arch).mutate(rng)
