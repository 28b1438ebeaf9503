"""Drawing many N-way tasks from one dataset, reproducibly, for meta-training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metanas.data.sources import ImageDataset
from metanas.errors import ConfigError, DatasetError
from metanas.tasks.task import MAX_RESOLUTION, MIN_RESOLUTION, Task, TaskSpec, make_task

_SAMPLER_TAG = 2  # keeps the sampler's random streams apart from make_task's


class TaskSampler:
    """Draws N-way tasks from one source at a set of resolutions, deterministically from a seed.

    Task ``index`` depends only on ``(seed, index)`` (and the dataset), so workers can build any
    task independently and a run can be resumed at any index. Only classes with at least two
    train images are eligible, since every task needs a train and a val image per class.
    """

    def __init__(self, dataset: ImageDataset, *, n_way: int = 10,
                 resolutions: Sequence[int] = (16, 32), max_train_per_class: int | None = None,
                 max_test_per_class: int | None = None, val_fraction: float = 0.2,
                 seed: int = 0) -> None:
        if isinstance(n_way, bool) or not isinstance(n_way, (int, np.integer)) or n_way < 2:
            raise ConfigError(f"n_way must be an integer >= 2, got {n_way!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        resolutions = tuple(resolutions)
        if not resolutions or any(
                isinstance(r, bool) or not isinstance(r, (int, np.integer))
                or not MIN_RESOLUTION <= r <= MAX_RESOLUTION for r in resolutions):
            raise ConfigError(f"resolutions must be a non-empty list of integers in "
                              f"[{MIN_RESOLUTION}, {MAX_RESOLUTION}], got {list(resolutions)}")
        self.eligible = np.flatnonzero(dataset.train_counts() >= 2)
        if n_way > len(self.eligible):
            raise DatasetError(
                f"n_way={n_way} is more than the {len(self.eligible)} classes of {dataset.name} "
                f"with at least 2 train images")
        self.dataset = dataset
        self.n_way = int(n_way)
        self.resolutions = tuple(int(r) for r in resolutions)
        self.max_train_per_class = max_train_per_class
        self.max_test_per_class = max_test_per_class
        self.val_fraction = val_fraction
        self.seed = int(seed)
        self.spec(0)  # validate the per-task options now rather than at the first draw

    def spec(self, index: int) -> TaskSpec:
        """The spec of task ``index``: classes drawn without replacement (in draw order), a
        resolution drawn uniformly, and a task seed derived from ``(seed, index)``."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ConfigError(f"task index must be a non-negative integer, got {index!r}")
        ss = np.random.SeedSequence(self.seed, spawn_key=(_SAMPLER_TAG, int(index)))
        rng = np.random.default_rng(ss)
        classes = rng.choice(self.eligible, size=self.n_way, replace=False)
        resolution = self.resolutions[int(rng.integers(len(self.resolutions)))]
        return TaskSpec(
            classes=tuple(int(c) for c in classes), resolution=resolution,
            max_train_per_class=self.max_train_per_class,
            max_test_per_class=self.max_test_per_class, val_fraction=self.val_fraction,
            seed=int(rng.integers(2**31)))

    def specs(self, n: int, start: int = 0) -> list[TaskSpec]:
        """Specs of tasks ``start .. start + n - 1``."""
        return [self.spec(i) for i in range(start, start + n)]

    def sample(self, index: int) -> Task:
        """Build task ``index``."""
        return make_task(self.dataset, self.spec(index))

    def __repr__(self) -> str:
        return (f"TaskSampler({self.dataset.name!r}, n_way={self.n_way}, "
                f"resolutions={list(self.resolutions)}, seed={self.seed})")
