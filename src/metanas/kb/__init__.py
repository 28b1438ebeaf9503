"""The knowledge base: (task, architecture, metrics) evaluations from real training, in SQLite.

- :class:`KnowledgeBase` stores and queries tasks, architectures and evaluations;
- :func:`import_table` imports a published table of NB201 results (CSV);
- :func:`kb_stats` / :func:`format_stats` summarise a knowledge base.
"""

from metanas.kb.stats import format_stats, kb_stats
from metanas.kb.store import (
    APPLICATION_ID,
    EVALUATION_COLUMNS,
    METRICS,
    SCHEMA_VERSION,
    KnowledgeBase,
)
from metanas.kb.tables import import_table, published_task_key

__all__ = [
    "APPLICATION_ID",
    "EVALUATION_COLUMNS",
    "METRICS",
    "SCHEMA_VERSION",
    "KnowledgeBase",
    "format_stats",
    "import_table",
    "kb_stats",
    "published_task_key",
]
