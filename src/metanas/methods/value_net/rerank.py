"""Re-ranking a shortlist by a vote of the network and zero-cost proxies on the target."""

from __future__ import annotations

import numpy as np

from metanas.errors import (
    ConfigError,
)
from metanas.features.zero_cost import (
    ZeroCostConfig,
    proxy_batch,
    rank_vote,
    score_cell,
)
from metanas.methods.interface import (
    Candidate,
)
from metanas.training.trainer import resize


def _zero_cost_config(size: str, seed: int) -> ZeroCostConfig:
    try:
        c, n = (int(v) for v in str(size).split(","))
    except ValueError:
        raise ConfigError(f"value-net rerank_size must be 'C,N' (e.g. 8,1), got {size!r}") from None
    return ZeroCostConfig(C=c, N=n, seed=seed)


def _rerank(candidates: list[Candidate], task, proxies: tuple[str, ...],
            config: ZeroCostConfig, resolution: int,
            weights: list[float] | None = None) -> list[Candidate]:
    """Re-order a shortlist by a rank vote of the value network and zero-cost proxies
    computed on the target task's own images, at most ``resolution`` px (each ranking counts
    once; ties by the value network). ``score`` becomes the mean normalised rank (higher =
    better, 1 = first on all)."""
    x, y = proxy_batch(task, config.batch_size, config.seed)
    if x.shape[-1] > resolution:
        x = resize(x, resolution)
    results = [score_cell(c.arch, x, y, num_classes=task.num_classes, proxies=proxies,
                          config=config) for c in candidates]
    votes = rank_vote(results, proxies, prior_order=True, weights=weights)
    out = [Candidate(c.arch, float(v), {"value": c.score, **{
        p: (r["scores"][p] if np.isfinite(r["scores"][p]) else None) for p in proxies}})
        for c, r, v in zip(candidates, results, votes, strict=True)]
    return [out[i] for i in sorted(range(len(out)), key=lambda i: (-votes[i], i))]
