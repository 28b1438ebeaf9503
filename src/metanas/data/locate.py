"""Where a source dataset named in a knowledge base lives: one resolver for every method that
meta-trains on the images behind its tasks (BASE, MetaD2A, the transfer methods)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metanas.data.sources import BUILTIN_DATASETS
from metanas.errors import DatasetError
from metanas.paths import shared_datasets_dir

SOURCE_SUFFIXES = (".zip", ".npz", "")
"""How a source dataset named ``n`` is stored: ``n.zip``, ``n.npz`` or a folder ``n/``."""


def find_source(name: str, source: str | Path | None = None, *, what: str = "") -> Path | str:
    """The dataset called ``name`` (a knowledge base's task source, e.g.
    ``tiny-imagenet-200-64px``): ``source`` itself when it is a dataset (a file, or an
    ImageFolder with ``train/``), else ``<source>/<name>{.zip,.npz,/}``, else the same in the
    shared datasets folder; ``<archive>-<split>`` is that class split of ``<archive>.npz``
    (``omniglot-28px-background``); builtin names (``digits``) are themselves. ``what`` says
    in the error who needed it."""
    name = str(name).removesuffix(".zip").removesuffix(".npz")
    if source is not None:
        path = Path(source).expanduser()
        if not path.exists():
            raise DatasetError(f"source {path}: no such file or directory")
        if not path.is_dir() or (path / "train").is_dir():  # the dataset itself
            return path
        folders = [path]
    else:
        if name in BUILTIN_DATASETS:
            return name
        shared = shared_datasets_dir()
        folders = [shared] if shared is not None else []
    for folder in folders:
        for suffix in SOURCE_SUFFIXES:
            cand = folder / f"{name}{suffix}"
            if cand.exists():
                return cand
        # a class split of an archive is named <archive>-<split> (metanas.data.sources)
        base, _, split = name.rpartition("-")
        if base and split and _has_class_split(folder / f"{base}.npz"):
            return f"{folder / base}.npz[class_split={split}]"
    where = ", ".join(str(f) for f in folders) or "no shared datasets folder found"
    raise DatasetError(f"{what + ': ' if what else ''}source dataset {name!r} is not in "
                       f"{where}; pass source=PATH (the dataset, or the folder holding it; "
                       "or set METANAS_SHARED_DIR)")


def _has_class_split(path: Path) -> bool:
    """Whether ``path`` is an .npz archive with a ``class_split`` array (read lazily)."""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as archive:
            return "class_split" in archive.files
    except (OSError, ValueError):
        return False
