"""Safe checkpoints shared by every meta-learned method: safetensors (no pickle), a format
string checked on load, atomic writes, and one-line CheckpointErrors naming the file."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from metanas.errors import CheckpointError
from metanas.paths import atomic_write

__all__ = ["read_checkpoint", "write_checkpoint"]


def write_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor],
                     metadata: dict[str, str]) -> None:
    """Write atomically (tmp file + replace; parent folders created): a failed write leaves
    no half file behind."""
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from None


def read_checkpoint(path: str | Path, fmt: str, what: str
                    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a checkpoint whose ``format`` is ``fmt``; ``what`` names the
    method in errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors checkpoint: {exc}") from None
    if meta.get("format") != fmt:
        raise CheckpointError(f"{path} is not a {what} checkpoint (format "
                              f"{meta.get('format')!r}, expected {fmt!r})")
    return tensors, meta
