"""On-disk cache of decoded image arrays, keyed by a hash of the source's content.

Decoding an ImageFolder zip of tens of thousands of JPEGs takes seconds to minutes; loading the
decoded uint8 arrays back from an uncompressed ``.npz`` takes well under a second. Files are
written atomically (temp file + ``os.replace``) so a killed run never leaves a half-written entry
under the final name, and an unreadable entry is treated as a miss and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from metanas.paths import cache_dir

#: Bumped when the decoded layout changes, so entries written by older code are rebuilt.
CACHE_FORMAT = 1
_FORMAT_KEY = "__metanas_cache_format__"
_CHUNK = 1 << 20
_STALE_TMP_SECONDS = 24 * 3600


def hash_file(path: str | os.PathLike[str]) -> str:
    """sha256 hex of a file's bytes, read in chunks so large archives never sit in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(root: str | os.PathLike[str], relpaths: Iterable[str]) -> str:
    """sha256 hex of a directory's content: sorted relative paths, each with its size and bytes.

    The size prefix makes the byte stream unambiguous (no two trees hash the same by shifting
    bytes between files or names).
    """
    root = Path(root)
    h = hashlib.sha256()
    for rel in sorted(relpaths):
        p = root / rel
        h.update(rel.encode("utf-8") + b"\0")
        h.update(p.stat().st_size.to_bytes(8, "little"))
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def datasets_cache_dir() -> Path:
    """``cache_dir()/datasets``, created on demand."""
    path = cache_dir() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_path(key: str) -> Path:
    """Where the entry for ``key`` lives (whether or not it exists)."""
    return datasets_cache_dir() / f"{key}.npz"


def load_arrays(key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``key``, or None when absent, unreadable or from another format."""
    try:
        path = cache_path(key)
    except OSError:  # the cache folder cannot be created: a miss, and save_arrays warns
        return None
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        if int(arrays.pop(_FORMAT_KEY)) != CACHE_FORMAT:
            return None
    except Exception:  # any failure to read means "not cached": rebuild and overwrite
        path.unlink(missing_ok=True)
        return None
    return arrays


def save_arrays(key: str, arrays: Mapping[str, np.ndarray]) -> Path | None:
    """Store ``arrays`` under ``key`` atomically; warn and return None if the cache is unwritable."""
    try:
        directory = datasets_cache_dir()
        _remove_stale_temp_files(directory)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key[:16]}-", suffix=".tmp")
    except OSError as exc:
        warnings.warn(f"metanas: cannot write dataset cache ({exc}); continuing without it",
                      RuntimeWarning, stacklevel=2)
        return None
    final = directory / f"{key}.npz"
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{_FORMAT_KEY: np.asarray(CACHE_FORMAT)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        warnings.warn(f"metanas: cannot write dataset cache {final} ({exc}); "
                      f"continuing without it", RuntimeWarning, stacklevel=2)
        return None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def _remove_stale_temp_files(directory: Path) -> None:
    """Delete temp files left by killed runs (old enough that no live writer still owns them)."""
    cutoff = time.time() - _STALE_TMP_SECONDS
    for tmp in directory.glob(".*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except OSError:
            pass
