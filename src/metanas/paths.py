"""Where metanas keeps files: the user cache (decoded datasets) and the shipped assets."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_ENV = "METANAS_CACHE_DIR"
SHARED_ENV = "METANAS_SHARED_DIR"


def cache_dir() -> Path:
    """The user cache directory; ``$METANAS_CACHE_DIR`` overrides the platform default."""
    override = os.environ.get(CACHE_ENV)
    path = Path(override) if override else Path(platformdirs.user_cache_dir("metanas"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def assets_dir() -> Path:
    """Files shipped inside the package (meta-trained checkpoints, knowledge bases)."""
    return Path(__file__).resolve().parent / "assets"


def shared_datasets_dir() -> Path | None:
    """The development datasets folder (``../shared/datasets`` of a checkout), if present.

    Only tests, benchmarks and knowledge-base builds use it; the package never needs it.
    """
    override = os.environ.get(SHARED_ENV)
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "datasets" for p in here.parents[2:5]]
    candidates.append(Path.cwd().parent / "shared" / "datasets")
    for cand in candidates:
        if cand.is_dir():
            return cand
    return None


def give_default_mode(path: str | os.PathLike) -> None:
    """Give ``path`` the mode a plainly created file gets (0o666 minus the umask, usually
    0o644). ``tempfile.mkstemp`` and safetensors' ``save_file`` create files readable by their
    owner only (0o600); call this on such a temporary file before renaming it into place."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def atomic_write(path: str | os.PathLike, write) -> None:
    """``write(tmp)`` to a unique temporary file beside ``path`` (parents created), give it the
    default mode, then rename it into place: concurrent writers never share a temporary file
    and a failed write leaves nothing behind. OSErrors reach the caller, who names the file."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        give_default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
