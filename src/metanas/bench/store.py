"""Finished cells on disk: one JSON file per (dataset, method, seed), written atomically.

A rerun reads them back instead of recomputing; an interrupted run loses at most the cell in
progress. A cell file is looked up by the cell's key (see :meth:`BenchPlan.cell_key`), so a
file written under other arguments is never mistaken for this run's result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metanas.bench.plan import Cell
from metanas.errors import ConfigError
from metanas.paths import atomic_write

__all__ = ["CellStore", "write_atomic"]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`metanas.paths.atomic_write`); an OSError
    becomes one line naming the file."""
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


class CellStore:
    """``<out>/cells/*.json``."""

    def __init__(self, out: Path) -> None:
        self.root = Path(out) / "cells"

    def path(self, cell: Cell) -> Path:
        return self.root / cell.file_name

    def get(self, cell: Cell) -> dict[str, Any] | None:
        """The stored result of ``cell``, or None (also for an unreadable or foreign file)."""
        path = self.path(cell)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == cell.key else None

    def put(self, cell: Cell, record: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path(cell), json.dumps({**record, "key": cell.key}, indent=1,
                                                 default=str) + "\n")
