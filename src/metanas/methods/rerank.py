"""Re-ranking a method's shortlist by a vote of its own order and zero-cost proxies computed on
the target's own images (shared by the value network and MetaD2A)."""

from __future__ import annotations

import numpy as np

from metanas.data import ImageDataset
from metanas.errors import ConfigError
from metanas.features.zero_cost import ZeroCostConfig, proxy_batch, rank_vote, score_batch
from metanas.methods.interface import Candidate
from metanas.tasks import Task, make_task
from metanas.training.trainer import resize

__all__ = ["proxy_task", "rerank_shortlist", "zero_cost_config"]


def zero_cost_config(size: str, seed: int, method: str = "value-net",
                     batch_size: int = 64) -> ZeroCostConfig:
    """The proxies' network from a ``"C,N"`` option, scored on ``batch_size`` images."""
    try:
        c, n = (int(v) for v in str(size).split(","))
    except ValueError:
        raise ConfigError(f"{method} rerank_size must be 'C,N' (e.g. 8,1), got {size!r}") from None
    return ZeroCostConfig(C=c, N=n, seed=seed, batch_size=batch_size)


def proxy_task(dataset: ImageDataset, config: ZeroCostConfig, resolution: int) -> Task:
    """A task holding just enough training images per class for the proxies' batch (resizing
    a large dataset whole would cost more than the proxies)."""
    per_class = max(2, -(-2 * config.batch_size // max(1, dataset.num_classes)))
    return make_task(dataset, resolution=resolution, max_train_per_class=per_class,
                     max_test_per_class=1, seed=config.seed)  # test images: never read


def rerank_shortlist(candidates: list[Candidate], task: Task, proxies: tuple[str, ...],
                     config: ZeroCostConfig, resolution: int,
                     weights: list[float] | None = None) -> list[Candidate]:
    """Re-order a shortlist by a rank vote of its given order and zero-cost proxies computed
    on the target task's own images, at most ``resolution`` px (each ranking counts once;
    ties by the given order). ``score`` becomes the mean normalised rank (higher = better,
    1 = first on all); the method's own score is kept in ``extra["value"]``."""
    x, y = proxy_batch(task, config.batch_size, config.seed)
    if x.shape[-1] > resolution:
        x = resize(x, resolution)
    results = score_batch([c.arch for c in candidates], x, y, num_classes=task.num_classes,
                          proxies=proxies, config=config)
    votes = rank_vote(results, proxies, prior_order=True, weights=weights)
    out = [Candidate(c.arch, float(v), {"value": c.score, **{
        p: (r["scores"][p] if np.isfinite(r["scores"][p]) else None) for p in proxies}})
        for c, r, v in zip(candidates, results, votes, strict=True)]
    return [out[i] for i in sorted(range(len(out)), key=lambda i: (-votes[i], i))]
