"""Safetensors files read and written one way: atomic writes, and every failure to read one
(missing, truncated, foreign, inconsistent) as a one-line CheckpointError naming the file.
Checkpoints of the meta-learned methods and saved models both go through here."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metanas.errors import CheckpointError, first_line
from metanas.paths import atomic_write


def write_safetensors(path: str | os.PathLike, tensors: dict[str, Any],
                      metadata: dict[str, str], what: str) -> None:
    """Write atomically (parent folders created): a failed write leaves no half file."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"cannot write {what} {path}: {exc}") from None


@contextlib.contextmanager
def open_safetensors(path: str | os.PathLike, what: str) -> Iterator[tuple[Any, dict[str, str]]]:
    """``(handle, metadata)`` of a safetensors file; tensors are read lazily from the handle,
    so metadata and shapes can be checked before anything is allocated. Errors raised in the
    ``with`` body that are not CheckpointErrors (a bad JSON entry, a missing key) become one
    line naming the file too."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            yield fh, fh.metadata() or {}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError,
            json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable {what} ({first_line(exc)})") from None
