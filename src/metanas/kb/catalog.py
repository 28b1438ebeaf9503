"""Shipped knowledge bases, found by name (``--kb default``), versioned and checksummed.

A shipped knowledge base is an xz-compressed SQLite file in ``metanas/assets/kb`` listed in
``catalog.json`` with the SHA-256 of the compressed and of the decompressed file. On first
use it is decompressed into the user cache and verified; later uses verify the cached copy's
checksum (a few milliseconds) so a corrupted or edited cache is never read silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import lzma
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from metanas.errors import KnowledgeBaseError
from metanas.kb.store import KnowledgeBase, open_for_writing
from metanas.paths import assets_dir, atomic_write, cache_dir

__all__ = ["CATALOG_FORMAT", "catalog", "kb_names", "open_kb", "pack_kb", "resolve_kb"]

CATALOG_FORMAT = "metanas.kb-catalog/1"
DEFAULT = "default"


def _catalog_path(root: Path | None = None) -> Path:
    return (root or assets_dir() / "kb") / "catalog.json"


def catalog(root: Path | None = None) -> dict[str, Any]:
    """The catalog: ``{"format", "default", "entries": {name: entry}}`` (empty when none)."""
    path = _catalog_path(root)
    if not path.is_file():
        return {"format": CATALOG_FORMAT, "default": None, "entries": {}}
    data = json.loads(path.read_text())
    if data.get("format") != CATALOG_FORMAT:
        raise KnowledgeBaseError(f"{path}: unknown catalog format {data.get('format')!r}")
    return data


def kb_names(root: Path | None = None) -> list[str]:
    data = catalog(root)
    return ([DEFAULT] if data.get("default") else []) + sorted(data["entries"])


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((".db", ".sqlite")) or Path(text).exists()


def resolve_kb(name_or_path: str | os.PathLike, *, root: Path | None = None) -> Path:
    """The SQLite file for a shipped knowledge base name, or the path itself.

    Names are those of :func:`kb_names`; anything that looks like a path is returned as is
    (the caller opens it and reports a missing file).
    """
    text = os.fspath(name_or_path)
    if _looks_like_path(text):
        return Path(text).expanduser()
    data = catalog(root)
    name = data.get("default") if text == DEFAULT else text
    entry = data["entries"].get(name) if name else None
    if entry is None:
        known = ", ".join(kb_names(root)) or "none shipped"
        raise KnowledgeBaseError(f"--kb {text!r} is neither a file nor a shipped knowledge base "
                                 f"(shipped: {known})")
    source = (root or assets_dir() / "kb") / entry["file"]
    target = cache_dir() / "kb" / f"{name}-{entry['db_sha256'][:16]}.db"
    if target.is_file() and sha256_file(target) == entry["db_sha256"]:
        return target
    if not source.is_file():
        raise KnowledgeBaseError(f"shipped knowledge base file {source} is missing")
    if sha256_file(source) != entry["sha256"]:
        raise KnowledgeBaseError(f"{source}: checksum mismatch (corrupted or edited file)")
    def extract(tmp: str) -> None:
        with open(tmp, "wb") as out, lzma.open(source) as src:
            shutil.copyfileobj(src, out)
        if sha256_file(Path(tmp)) != entry["db_sha256"]:
            raise KnowledgeBaseError(f"{source}: decompressed file does not match its checksum")

    atomic_write(target, extract)
    return target


def open_kb(name_or_path: str | os.PathLike) -> KnowledgeBase:
    """A shipped knowledge base by name, or a file, opened read-only."""
    return KnowledgeBase(resolve_kb(name_or_path), readonly=True)


def writable_kb(path: str | os.PathLike) -> contextlib.AbstractContextManager[KnowledgeBase]:
    """Open (or create) a knowledge base file for writing, holding its lock: a second writer
    on the same file fails at once. A file this call created is removed again when the work
    fails on a user error before any evaluation is stored, so a bad option or input leaves no
    stray knowledge base behind (:func:`metanas.kb.store.open_for_writing`)."""
    return open_for_writing(path)


def pack_kb(db: Path, name: str, *, root: Path | None = None, description: str = "",
            make_default: bool = False) -> dict[str, Any]:
    """Compact ``db`` (VACUUM, rollback journal), compress it with xz and list it in the
    catalog under ``name``; returns the catalog entry."""
    root = root or assets_dir() / "kb"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        compact = Path(tmpdir) / "kb.db"
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(compact)
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.execute("VACUUM")
            dst.close()
        finally:
            src.close()
        with KnowledgeBase(compact, readonly=True) as packed:
            counts, per_source = packed.counts(), packed.source_counts()
        out = root / f"{name}.db.xz"

        def compress(tmp: str) -> None:
            with open(compact, "rb") as fh, lzma.open(tmp, "wb", preset=9) as xz:
                shutil.copyfileobj(fh, xz)

        atomic_write(out, compress)
        entry = {
            "file": out.name,
            "sha256": sha256_file(out),
            "bytes": out.stat().st_size,
            "db_sha256": sha256_file(compact),
            "db_bytes": compact.stat().st_size,
            **counts,
            "sources": per_source,
            "description": description,
        }
    data = catalog(root)
    data["entries"][name] = entry
    if make_default or not data.get("default"):
        data["default"] = name
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(_catalog_path(root), lambda tmp: Path(tmp).write_text(text))
    return entry
