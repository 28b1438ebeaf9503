"""Leave-tasks-out evaluation shared by every meta-learned method's ``validate``.

Tasks, never single evaluations, are held out: a predictor is judged on tasks it has not seen,
as it is used. :func:`task_folds` splits task indices into seeded folds, :func:`ranking_metrics`
scores one held-out task's predictions against its measured accuracies and :func:`summarize`
averages the per-task records.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from metanas.errors import ConfigError

METRICS = ("pearson", "spearman", "kendall", "top1_regret")


def task_folds(n_tasks: int, folds: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(held-out, training) task indices per fold: a seeded permutation dealt round-robin
    into ``min(folds, n_tasks)`` folds."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {folds!r}")
    folds = min(folds, n_tasks)
    order = np.random.default_rng(seed).permutation(n_tasks)
    for k in range(folds):
        held = np.sort(order[k::folds])
        yield held, np.setdiff1d(np.arange(n_tasks), held)


def ranking_metrics(pred: np.ndarray, acc: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman and Kendall (NaN when either side is constant) and the top-1 regret
    (best measured accuracy minus that of the predicted best)."""
    from scipy import stats  # ~0.7 s to import: only validation needs it, never a search

    pred, acc = np.asarray(pred, dtype=float), np.asarray(acc, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return {"pearson": float(stats.pearsonr(pred, acc).statistic),
                "spearman": float(stats.spearmanr(pred, acc).statistic),
                "kendall": float(stats.kendalltau(pred, acc).statistic),
                "top1_regret": float(acc.max() - acc[int(np.argmax(pred))])}


def summarize(per_task: list[dict[str, Any]]) -> dict[str, float]:
    """Mean and median of each metric over tasks (NaN where no task has a finite value)."""
    out = {}
    for m in METRICS:
        vals = np.array([r.get(m, np.nan) for r in per_task], dtype=float)
        finite = np.isfinite(vals).any()
        out[f"{m}_mean"] = float(np.nanmean(vals)) if finite else float("nan")
        out[f"{m}_median"] = float(np.nanmedian(vals)) if finite else float("nan")
    return out
