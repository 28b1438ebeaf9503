"""What a knowledge base says about task-awareness: do tasks agree on which cell is best?

If every task ranks architectures the same way, one global ranking is all a meta-learner can
learn and task encoders cannot help; the more the per-task best differs (beyond noise), the
more a task-aware method can gain. These numbers bound that gain on the data we have.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
from scipy import stats

from metanas.kb.store import KnowledgeBase
from metanas.kb.views import heldout_accuracy, top_architectures

__all__ = ["cross_task_agreement", "dense_task_regret", "group_agreement", "seed_agreement"]

Table = Mapping[str, Mapping[str, float]]


def _shared(table: Table, keys: list[str]) -> list[str]:
    common = set.intersection(*(set(table[k]) for k in keys)) if keys else set()
    return sorted(common)


def cross_task_agreement(table: Table, *, min_shared: int = 5) -> dict:
    """Pairwise Kendall tau between tasks on the architectures every task measured, and how
    often the cell best on average over the OTHER tasks is the task's own best.

    The leave-one-task-out "global best" is what a task-agnostic method would pick; its
    regret is the accuracy a perfectly task-aware method could add on these cells.
    """
    keys = sorted(k for k in table if len(table[k]) >= min_shared)
    shared = _shared(table, keys)
    if len(keys) < 3 or len(shared) < min_shared:
        return {"tasks": len(keys), "shared_architectures": len(shared), "enough_data": False}
    acc = np.array([[table[k][a] for a in shared] for k in keys])  # (T, A)
    taus = [stats.kendalltau(acc[i], acc[j]).statistic
            for i, j in itertools.combinations(range(len(keys)), 2)]
    z = (acc - acc.mean(1, keepdims=True)) / (acc.std(1, keepdims=True) + 1e-12)
    hits, regrets, ranks = [], [], []
    for i in range(len(keys)):
        others = np.delete(z, i, axis=0).mean(0)
        pick = int(np.argmax(others))
        best = int(np.argmax(acc[i]))
        hits.append(pick == best)
        regrets.append(float(acc[i, best] - acc[i, pick]))
        ranks.append(int(1 + np.sum(acc[i] > acc[i, pick])))
    return {
        "enough_data": True,
        "tasks": len(keys),
        "shared_architectures": len(shared),
        "kendall_mean": float(np.nanmean(taus)),
        "kendall_median": float(np.nanmedian(taus)),
        "kendall_pairs": [float(t) for t in taus],
        "global_best_is_task_best": float(np.mean(hits)),
        "global_best_regret_mean": float(np.mean(regrets)),
        "global_best_rank_median": float(np.median(ranks)),
        "task_best_spread": float(np.mean(acc.max(1) - np.median(acc, 1))),
    }


def group_agreement(table: Table, groups: Mapping[str, str], *, min_shared: int = 5) -> dict:
    """Mean Kendall tau between tasks of the same group vs of different groups (e.g. group =
    resolution or class count). Higher within-group agreement means the grouping feature
    carries information about which cells are good."""
    keys = sorted(k for k in table if len(table[k]) >= min_shared and k in groups)
    shared = _shared(table, keys)
    if len(keys) < 3 or len(shared) < min_shared:
        return {"enough_data": False}
    acc = {k: np.array([table[k][a] for a in shared]) for k in keys}
    same, diff = [], []
    for a, b in itertools.combinations(keys, 2):
        tau = stats.kendalltau(acc[a], acc[b]).statistic
        (same if groups[a] == groups[b] else diff).append(tau)
    return {
        "enough_data": True,
        "within_group_kendall": float(np.nanmean(same)) if same else None,
        "across_group_kendall": float(np.nanmean(diff)) if diff else None,
        "pairs_within": len(same),
        "pairs_across": len(diff),
    }


def dense_task_regret(table: Table, dense: list[str], *, top: int = 10) -> dict:
    """For densely measured tasks: per-task optimum, the regret of the cell a task-agnostic
    method would pick from the OTHER tasks' data, and how much the dense tasks' top-``top``
    sets overlap."""
    out: dict = {"tasks": []}
    tops = {}
    for key in dense:
        others = {k: v for k, v in table.items() if k != key}
        own = table[key]
        values = np.array(sorted(own.values(), reverse=True))
        best_arch = max(own, key=lambda a: (own[a], a))
        # the best-on-average cell among those this task measured (else it cannot be scored)
        ranked = [a for a, _, _ in top_architectures(others, len(own) * 4, min_tasks=3)
                  if a in own]
        prior = ranked[0] if ranked else None
        tops[key] = {a for a in sorted(own, key=lambda a: -own[a])[:top]}
        out["tasks"].append({
            "task": key,
            "architectures": len(own),
            "best": best_arch,
            "best_acc": float(values[0]),
            "median_acc": float(np.median(values)),
            "global_prior": prior,
            "global_prior_acc": None if prior is None else float(own[prior]),
            "global_prior_regret": None if prior is None else float(values[0] - own[prior]),
            "global_prior_rank": None if prior is None else int(1 + np.sum(values > own[prior])),
        })
    overlaps = [len(tops[a] & tops[b]) / top for a, b in itertools.combinations(dense, 2)]
    out["top_overlap_mean"] = float(np.mean(overlaps)) if overlaps else None
    shared = _shared(table, dense)
    if len(dense) >= 2 and len(shared) >= 5:
        rho = [stats.spearmanr([table[a][c] for c in shared], [table[b][c] for c in shared]
                               ).statistic for a, b in itertools.combinations(dense, 2)]
        out["spearman_shared_mean"] = float(np.nanmean(rho))
        out["shared_architectures"] = len(shared)
    return out


def seed_agreement(kb: KnowledgeBase, *, min_archs: int = 10) -> dict:
    """The noise ceiling: Kendall tau between two training seeds of the same cells on the same
    task. Two tasks cannot be expected to agree more than one task agrees with itself, so
    cross-task agreement is read against this number."""
    tasks = {t["key"]: t for t in kb.tasks()}
    runs: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for row in kb.evaluations(space="nb201"):
        value = heldout_accuracy(row, tasks[row["task_key"]])
        if value is not None:
            runs.setdefault((row["task_key"], row["recipe_hash"]), {}).setdefault(
                row["arch"], {})[row["seed"]] = value
    per_task = []
    for (key, _), archs in sorted(runs.items()):
        pairs = [(s[min(s)], s[max(s)]) for s in archs.values() if len(s) >= 2]
        if len(pairs) >= min_archs:
            a, b = np.array(pairs).T
            per_task.append({"task": key, "architectures": len(pairs),
                             "kendall": float(stats.kendalltau(a, b).statistic),
                             "abs_diff_mean": float(np.mean(np.abs(a - b)))})
    if not per_task:
        return {"enough_data": False}
    return {"enough_data": True, "tasks": per_task,
            "kendall_mean": float(np.mean([t["kendall"] for t in per_task])),
            "abs_diff_mean": float(np.mean([t["abs_diff_mean"] for t in per_task]))}
