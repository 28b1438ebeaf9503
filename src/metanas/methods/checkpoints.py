"""Safe checkpoints shared by every meta-learned method: safetensors (no pickle), a format
string and the writing metanas version checked on load, metadata and tensor shapes checked
before any network is allocated, atomic writes, and one-line CheckpointErrors naming the file."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from metanas.errors import CheckpointError, MetanasError, first_line
from metanas.safefiles import open_safetensors, write_safetensors
from metanas.version import __version__

__all__ = ["check_shapes", "meta_json", "read_checkpoint", "write_checkpoint"]


def write_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor],
                     metadata: dict[str, str]) -> None:
    """Write atomically (tmp file + replace; parent folders created): a failed write leaves
    no half file behind."""
    write_safetensors(path, tensors, metadata, "checkpoint")


def read_checkpoint(path: str | Path, fmt: str | tuple[str, ...], what: str
                    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a checkpoint whose ``format`` is ``fmt`` (or one of them: the
    current format first, then older ones still read); ``what`` names the method in errors."""
    formats = (fmt,) if isinstance(fmt, str) else fmt
    path = Path(path)
    with open_safetensors(path, f"{what} checkpoint") as (fh, meta):
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    if meta.get("format") not in formats:
        raise CheckpointError(f"{path} is not a {what} checkpoint (format "
                              f"{str(meta.get('format'))[:80]!r}, expected {formats[0]!r})")
    _check_version(path, meta.get("metanas_version"))
    return tensors, meta


def _release(version: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?([.+-]?[0-9A-Za-z.+-]*)?", version)
    return (int(match[1]), int(match[2])) if match else None


def _check_version(path: Path, version: str | None) -> None:
    """A checkpoint written by a newer metanas release (major.minor) may mean things this
    one does not know; one without a version is from before versions were written."""
    if version is None:
        return
    theirs = _release(version)
    if theirs is None:
        raise CheckpointError(f"{path}: metanas_version {version[:40]!r} is not a version")
    if theirs > _release(__version__):
        raise CheckpointError(f"{path} was written by metanas {version}, newer than this "
                              f"metanas ({__version__}); upgrade metanas")


def meta_json(path: Path, meta: dict[str, str], key: str, what: str, default: Any = None,
              kind: type = dict) -> Any:
    """The metadata entry ``key`` decoded from JSON, of type ``kind`` (``default`` when the
    entry is missing and a default is given)."""
    if key not in meta:
        if default is not None:
            return default
        raise CheckpointError(f"{path}: incompatible {what} checkpoint (no {key!r} entry)")
    try:
        value = json.loads(meta[key])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: incompatible {what} checkpoint ({key!r} is not JSON: "
                              f"{exc})") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: incompatible {what} checkpoint ({key!r} is a "
                              f"{type(value).__name__}, not a {kind.__name__})")
    return value


def check_shapes(path: Path, what: str, build: Callable[[], torch.nn.Module],
                 tensors: dict[str, torch.Tensor], prefix: str = "",
                 state: Callable[[torch.nn.Module], dict] = lambda m: m.state_dict()) -> None:
    """Check that the checkpoint's ``prefix``-ed tensors are exactly those of the network its
    metadata declares, before that network takes memory: ``build`` runs on the meta device
    (no storage), so a declared hidden size of 10**6 is an error, not gigabytes. Once this
    passes, building the network for real takes about as much memory as the file holds."""
    try:
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in state(build()).items()}
    except MetanasError as exc:
        raise CheckpointError(f"{path}: incompatible {what} checkpoint ({first_line(exc)})"
                              ) from None
    except (RuntimeError, ValueError, TypeError, OverflowError, KeyError, IndexError) as exc:
        raise CheckpointError(f"{path}: incompatible {what} checkpoint (its config does not "
                              f"build: {first_line(exc)})") from None
    got = {k[len(prefix):]: tuple(v.shape) for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    wrong = [k for k in sorted(set(want) & set(got)) if want[k] != got[k]]
    if missing or unexpected or wrong:
        if wrong:
            k = wrong[0]
            detail = f"{prefix}{k} has shape {list(got[k])}, its config needs {list(want[k])}"
        elif missing:
            detail = f"no tensor {prefix}{missing[0]}"
        else:
            detail = f"unexpected tensor {prefix}{unexpected[0]}"
        more = len(missing) + len(unexpected) + len(wrong) - 1
        raise CheckpointError(f"{path}: incompatible {what} checkpoint, its tensors do not "
                              f"match its config ({detail}"
                              + (f"; {more} more" if more else "") + ")")
    for k, v in tensors.items():
        if k.startswith(prefix) and v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{path}: tensor {k} holds non-finite values")
