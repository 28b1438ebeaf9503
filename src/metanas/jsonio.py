"""JSON that other tools can read: NaN and infinities (e.g. a Spearman on a constant task) are
not JSON, so every results file writes them as null."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from metanas.errors import ConfigError
from metanas.paths import atomic_write


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth of dicts and lists, made None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def check_output(path: str | os.PathLike | None, option: str) -> None:
    """Fail before any work when ``path`` cannot be a file: a folder, or below a file."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"cannot write {option} {path}: it is a directory")
    existing = next(p for p in path.parents if p.exists())  # '.' or '/' at the latest
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ConfigError(f"cannot write {option} {path}: {existing} is not a writable folder")


def write_json(path: str | os.PathLike, payload: Any, option: str = "--json") -> None:
    """Write ``payload`` as JSON (non-finite numbers as null) atomically: an interrupted run
    leaves no half-written file. ``option`` names the file in the one-line error."""
    path = Path(path)
    check_output(path, option)
    text = json.dumps(json_safe(payload), indent=2, default=str, allow_nan=False) + "\n"
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    except OSError as exc:
        raise ConfigError(f"cannot write {option} {path}: {exc.strerror or exc}") from None
