"""Summary statistics of a knowledge base as a JSON-able dict (the CLI renders it): the
store's own summaries (it alone knows the schema) plus each published source's provenance."""

from __future__ import annotations

from typing import Any

from metanas.kb.sources import SOURCES
from metanas.kb.store import KnowledgeBase

__all__ = ["kb_stats"]


def kb_stats(kb: KnowledgeBase) -> dict[str, Any]:
    """Numbers describing ``kb``, JSON-able.

    Keys: ``path``, ``schema_version``, ``counts`` (tasks / architectures / evaluations),
    ``sources`` (per source: tasks, evaluations, fidelity; licence, citation and stand-in of
    published ones), ``tasks`` (:meth:`KnowledgeBase.task_summaries`) and ``overall``
    (:meth:`KnowledgeBase.evaluation_overview`, tasks with >= 2 evaluations, tasks with
    meta-features).
    """
    sources = kb.source_counts()
    for name, row in sources.items():
        published = SOURCES.get(name)
        row["fidelity"] = (_fidelity_text(published.fidelity.to_dict()) if published
                           else "own runs (per recipe)")
        if published is not None:
            row.update(licence=published.licence, citation=published.citation,
                       standin=published.standin)
    tasks = kb.task_summaries()
    overview = kb.evaluation_overview()
    return {
        "path": str(kb.path),
        "schema_version": kb.schema_version,
        "counts": kb.counts(),
        "sources": sources,
        "tasks": tasks,
        "overall": {
            "distinct_architectures": overview["distinct_architectures"],
            "distinct_canonical": overview["distinct_canonical"],
            "tasks_with_2plus_evals": sum(t["evaluations"] >= 2 for t in tasks),
            "tasks_with_meta_features": sum(t["meta_features"] for t in tasks),
            "recipes": overview["recipes"],
        },
    }


def _fidelity_text(fidelity: dict[str, Any]) -> str:
    parts = [f"{k}={'?' if v is None else round(v)}" for k, v in fidelity.items()]
    return ", ".join(parts)
