"""Summary statistics of a knowledge base as a JSON-able dict (the CLI renders it)."""

from __future__ import annotations

import math
from typing import Any

from metanas.kb.sources import SOURCES
from metanas.kb.store import KnowledgeBase

__all__ = ["kb_stats"]

_ACCS = ("val_acc", "test_acc")


def _acc_summary(n: int, lo: Any, mean: Any, hi: Any, sq_dev: Any) -> dict[str, Any]:
    """n / min / mean / max / population std of one accuracy column (``None`` when n = 0)."""
    if not n:
        return {"n": 0, "min": None, "mean": None, "max": None, "std": None}
    return {
        "n": int(n),
        "min": float(lo),
        "mean": float(mean),
        "max": float(hi),
        "std": math.sqrt(max(float(sq_dev or 0.0), 0.0) / n),
    }


def kb_stats(kb: KnowledgeBase) -> dict[str, Any]:
    """Numbers describing ``kb``, JSON-able.

    Keys: ``path``, ``schema_version``, ``counts`` (tasks / architectures / evaluations),
    ``sources`` (per source: tasks, evaluations), ``tasks`` (per task: id, key, name, source,
    evaluations, architectures, ``val_acc`` / ``test_acc`` with n, min, mean, max and
    population std, and ``best``: the architecture with the highest mean validation accuracy
    over its evaluations, or test accuracy where the task has no validation accuracies) and
    ``overall`` (distinct evaluated architectures and canonical classes, tasks with >= 2
    evaluations, tasks with meta-features, evaluations per recipe).
    """
    conn = kb.conn
    sources: dict[str, dict[str, int]] = {}
    for row in conn.execute(
        "SELECT t.source, COUNT(DISTINCT t.id), COUNT(e.id) FROM tasks t "
        "LEFT JOIN evaluations e ON e.task_id = t.id GROUP BY t.source ORDER BY t.source"
    ):
        sources[row[0]] = {"tasks": int(row[1]), "evaluations": int(row[2])}
    for name, row in sources.items():
        published = SOURCES.get(name)
        row["fidelity"] = (_fidelity_text(published.fidelity.to_dict()) if published
                           else "own runs (per recipe)")
        if published is not None:
            row.update(licence=published.licence, citation=published.citation,
                       standin=published.standin)

    # Two passes (mean, then squared deviations) so the std of equal values is exactly 0.
    deviations = {
        row[0]: (row[1], row[2])
        for row in conn.execute(
            "SELECT e.task_id, SUM((e.val_acc - m.v) * (e.val_acc - m.v)), "
            "SUM((e.test_acc - m.t) * (e.test_acc - m.t)) FROM evaluations e "
            "JOIN (SELECT task_id, AVG(val_acc) AS v, AVG(test_acc) AS t FROM evaluations "
            "GROUP BY task_id) m ON m.task_id = e.task_id GROUP BY e.task_id"
        )
    }
    best: dict[int, dict[str, Any]] = {}
    for row in conn.execute(
        """
        WITH per AS (
            SELECT task_id, arch_id, AVG(val_acc) AS v, AVG(test_acc) AS t, COUNT(*) AS n
            FROM evaluations GROUP BY task_id, arch_id
        ), has AS (
            SELECT task_id, COUNT(val_acc) > 0 AS has_val FROM evaluations GROUP BY task_id
        ), ranked AS (
            SELECT per.*, has.has_val,
                   ROW_NUMBER() OVER (
                       PARTITION BY per.task_id
                       ORDER BY CASE WHEN has.has_val THEN per.v ELSE per.t END DESC,
                                per.arch_id
                   ) AS rn
            FROM per JOIN has ON has.task_id = per.task_id
        )
        SELECT r.task_id, a.arch, a.canonical, r.v, r.t, r.n, r.has_val
        FROM ranked r JOIN architectures a ON a.id = r.arch_id
        WHERE r.rn = 1
        """
    ):
        metric = "val_acc" if row["has_val"] else "test_acc"
        value = row["v"] if row["has_val"] else row["t"]
        if value is None:  # no accuracy at all for this task
            continue
        best[row["task_id"]] = {
            "arch": row["arch"],
            "canonical": row["canonical"],
            "metric": metric,
            "value": float(value),
            "val_acc": None if row["v"] is None else float(row["v"]),
            "test_acc": None if row["t"] is None else float(row["t"]),
            "evaluations": int(row["n"]),
        }

    tasks: list[dict[str, Any]] = []
    for row in conn.execute(
        """
        SELECT t.id, t.key, t.name, t.source, t.meta_features IS NOT NULL AS has_features,
               COUNT(e.id) AS n, COUNT(DISTINCT e.arch_id) AS archs,
               COUNT(e.val_acc) AS vn, MIN(e.val_acc) AS vmin, AVG(e.val_acc) AS vmean,
               MAX(e.val_acc) AS vmax,
               COUNT(e.test_acc) AS tn, MIN(e.test_acc) AS tmin, AVG(e.test_acc) AS tmean,
               MAX(e.test_acc) AS tmax
        FROM tasks t LEFT JOIN evaluations e ON e.task_id = t.id
        GROUP BY t.id ORDER BY t.id
        """
    ):
        dev_v, dev_t = deviations.get(row["id"], (None, None))
        tasks.append(
            {
                "id": int(row["id"]),
                "key": row["key"],
                "name": row["name"],
                "source": row["source"],
                "meta_features": bool(row["has_features"]),
                "evaluations": int(row["n"]),
                "architectures": int(row["archs"]),
                "val_acc": _acc_summary(row["vn"], row["vmin"], row["vmean"], row["vmax"], dev_v),
                "test_acc": _acc_summary(row["tn"], row["tmin"], row["tmean"], row["tmax"], dev_t),
                "best": best.get(row["id"]),
            }
        )

    distinct_archs, distinct_canonical = conn.execute(
        "SELECT COUNT(DISTINCT e.arch_id), COUNT(DISTINCT a.space || ':' || a.canonical) "
        "FROM evaluations e JOIN architectures a ON a.id = e.arch_id"
    ).fetchone()
    recipes = {
        r[0]: int(r[1])
        for r in conn.execute(
            "SELECT r.name, COUNT(*) FROM evaluations e JOIN recipes r ON r.id = e.recipe_id "
            "GROUP BY r.name ORDER BY r.name"
        )
    }
    return {
        "path": str(kb.path),
        "schema_version": kb.schema_version,
        "counts": kb.counts(),
        "sources": sources,
        "tasks": tasks,
        "overall": {
            "distinct_architectures": int(distinct_archs),
            "distinct_canonical": int(distinct_canonical),
            "tasks_with_2plus_evals": sum(t["evaluations"] >= 2 for t in tasks),
            "tasks_with_meta_features": sum(t["meta_features"] for t in tasks),
            "recipes": recipes,
        },
    }


def _fidelity_text(fidelity: dict[str, Any]) -> str:
    parts = [f"{k}={'?' if v is None else round(v)}" for k, v in fidelity.items()]
    return ", ".join(parts)
