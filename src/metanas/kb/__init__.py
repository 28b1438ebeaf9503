"""The knowledge base: (task, architecture, metrics) evaluations from real training, in SQLite.

- :class:`KnowledgeBase` stores and queries tasks, architectures and evaluations;
- :func:`import_table` imports a published table of NB201 results (CSV);
- :func:`resolve_kb` finds a shipped knowledge base by name (``default``), :func:`pack_kb`
  ships one;
- :func:`kb_stats` summarises a knowledge base (the CLI renders it).
- :func:`open_kb` opens one read-only, :func:`writable_kb` for writing.
"""

from metanas.kb.catalog import kb_names, open_kb, pack_kb, resolve_kb, writable_kb
from metanas.kb.stats import kb_stats
from metanas.kb.store import KnowledgeBase
from metanas.kb.tables import import_table, published_task_key

# the schema's constants (SCHEMA_VERSION, METRICS, ...) stay in metanas.kb.store, its owner
__all__ = [
    "KnowledgeBase",
    "import_table",
    "kb_names",
    "kb_stats",
    "open_kb",
    "pack_kb",
    "published_task_key",
    "resolve_kb",
    "writable_kb",
]
