"""Loading labelled image collections (builtin, ``.npz``, ImageFolder directory or zip).

Every source ends up as an :class:`ImageDataset`: uint8 NHWC arrays with a fixed train/test
split and a content fingerprint, so that everything downstream (tasks, caches, knowledge bases)
can tell datasets apart without looking at the pixels again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from metanas.data import cache
from metanas.errors import DatasetError
from metanas.paths import shared_datasets_dir

BUILTIN_DATASETS: dict[str, str] = {
    "digits": "scikit-learn's bundled 8x8 handwritten digits: 1797 gray images, 10 classes "
    "(no download)",
}

#: Accepted file formats, for error messages and :func:`available_datasets`.
FORMATS: dict[str, str] = {
    ".npz": "numpy archive with x_train, y_train, x_test, y_test (optional class_names), "
    "or with x, y (split by seed); with a per-class class_split array, PATH[class_split=N] "
    "keeps the classes of split N (a number or a name in split_names)",
    "directory": "ImageFolder: train/<class>/*, test/<class>/* (or val/<class>/*), "
    "or only <class>/* (split by seed)",
    ".zip": "a zip of an ImageFolder directory",
}

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
_SPLIT_DIRS = ("train", "test", "val")
_PROGRESS_MIN_IMAGES = 2000
_GRAY_MODES = frozenset({"L", "1", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_CLASS_SPLIT = re.compile(r"^(?P<path>.+)\[class_split=(?P<split>[^\]]+)\]$")


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image collection in memory, uint8 NHWC, with a fixed train/test split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    fingerprint: str
    origin: str

    def __post_init__(self) -> None:
        # Cheap structural checks only; the loaders do the thorough, user-facing validation.
        for key in ("x_train", "x_test"):
            x = getattr(self, key)
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
                raise DatasetError(f"{key} must be uint8 (N, H, W, C) with C in (1, 3), got "
                                   f"{x.dtype} {x.shape} in {self.origin}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DatasetError(f"x_train and x_test image shapes differ "
                               f"({self.x_train.shape[1:]} vs {self.x_test.shape[1:]}) "
                               f"in {self.origin}")
        for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
            if len(getattr(self, x_key)) != len(getattr(self, y_key)):
                raise DatasetError(f"{x_key} and {y_key} have different lengths "
                                   f"in {self.origin}")
        # Read-only views: the dataset is shared (and cached), so nobody may edit it in place;
        # a view leaves the caller's own array writeable.
        for key in ("x_train", "y_train", "x_test", "y_test"):
            view = getattr(self, key).view()
            view.flags.writeable = False
            object.__setattr__(self, key, view)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x_train.shape[1]), int(self.x_train.shape[2])

    def train_counts(self) -> np.ndarray:
        """Number of train images per class id."""
        return np.bincount(self.y_train, minlength=self.num_classes)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for logs, the CLI and knowledge-base records)."""
        train = self.train_counts()
        test = np.bincount(self.y_test, minlength=self.num_classes)
        return {
            "name": self.name,
            "origin": self.origin,
            "fingerprint": self.fingerprint,
            "num_classes": self.num_classes,
            "channels": self.channels,
            "image_size": list(self.image_size),
            "n_train": int(len(self.y_train)),
            "n_test": int(len(self.y_test)),
            "train_per_class": {"min": int(train.min()), "max": int(train.max())},
            "test_per_class": {"min": int(test.min()), "max": int(test.max())},
        }

    def __repr__(self) -> str:
        return (f"ImageDataset(name={self.name!r}, classes={self.num_classes}, "
                f"train={len(self.y_train)}, test={len(self.y_test)}, "
                f"image={self.image_size[0]}x{self.image_size[1]}x{self.channels})")


# --------------------------------------------------------------------------------------------
# public entry points


def load_dataset(spec: str | os.PathLike[str], *, seed: int = 0, test_fraction: float = 0.2,
                 progress: bool = True) -> ImageDataset:
    """Load a builtin dataset by name, or a ``.npz`` / ImageFolder directory / ``.zip`` by path.

    A bare builtin name (no path separator) wins over a same-named file in the working directory;
    write ``./digits`` to load that instead. ``seed`` and ``test_fraction`` only matter for sources
    without their own test split. Decoded zips and directories are cached (see ``cache.py``).

    ``PATH.npz[class_split=N]`` keeps only the classes whose entry in the archive's per-class
    ``class_split`` array is ``N`` (or whose split is named ``N`` in ``split_names``), e.g. the
    Omniglot evaluation alphabets: ``omniglot-28px.npz[class_split=evaluation]``.
    """
    _check_split_args(seed, test_fraction)
    text = os.fspath(spec)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if isinstance(spec, str) and text in BUILTIN_DATASETS:
        return _load_builtin(text, seed, test_fraction)
    class_split = None
    selector = _CLASS_SPLIT.match(text)
    if selector and not Path(text).expanduser().exists():
        text, class_split = selector["path"], selector["split"].strip()
    path = Path(text).expanduser()
    if not path.exists():
        looks_like_name = isinstance(spec, str) and os.sep not in text and "/" not in text \
            and not path.suffix
        what = "not a builtin dataset name and no such file or directory" if looks_like_name \
            else "no such file or directory"
        raise DatasetError(f"dataset {text!r}: {what}. {_accepted_help()}")
    suffix = path.suffix.lower()
    if class_split is not None and (path.is_dir() or suffix != ".npz"):
        raise DatasetError(f"dataset {os.fspath(spec)!r}: [class_split=...] applies to .npz "
                           f"archives with a class_split array, not to {path.name}")
    if path.is_dir():
        return _load_tree(path, seed, test_fraction, progress)
    if suffix == ".npz":
        return _load_npz(path, seed, test_fraction, class_split)
    if suffix == ".zip":
        return _load_tree(path, seed, test_fraction, progress)
    raise DatasetError(f"unsupported dataset file {path} (suffix {path.suffix or 'none'!r}). "
                       f"{_accepted_help()}")


def from_arrays(x_train: Any, y_train: Any, x_test: Any = None, y_test: Any = None, *,
                class_names: Sequence[str] | None = None, name: str = "arrays", seed: int = 0,
                test_fraction: float = 0.2) -> ImageDataset:
    """Wrap in-memory arrays as an :class:`ImageDataset` (same validation as files).

    Labels may be any integers; they are remapped to 0..K-1 in sorted order, and ``class_names``
    (one per distinct label, in that order) defaults to the original labels as strings. Without
    ``x_test``/``y_test`` a stratified test split is drawn with ``seed``/``test_fraction``.
    """
    where = "from_arrays()"
    _check_split_args(seed, test_fraction)
    if (x_test is None) != (y_test is None):
        raise DatasetError(f"pass both x_test and y_test or neither (in {where})")
    xs = {"x_train": _as_images(x_train, "x_train", where)}
    ys = {"y_train": _as_labels(y_train, "y_train", where)}
    if x_test is not None:
        xs["x_test"] = _as_images(x_test, "x_test", where)
        ys["y_test"] = _as_labels(y_test, "y_test", where)
    for split in ys:
        _check_lengths(xs["x" + split[1:]], ys[split], "x" + split[1:], split, where)
    original = np.unique(np.concatenate(list(ys.values())))
    if class_names is None:
        names = tuple(str(v) for v in original)
    else:
        names = _as_class_names(class_names, "class_names", where)
        if len(names) != len(original):
            raise DatasetError(f"class_names has {len(names)} entries but the labels have "
                               f"{len(original)} distinct values (in {where})")
    ys = {k: np.searchsorted(original, v).astype(np.int64) for k, v in ys.items()}
    if "x_test" not in xs:
        tr, te = stratified_split(ys["y_train"], test_fraction, seed)
        x, y = xs.pop("x_train"), ys.pop("y_train")
        xs.update(x_train=x[tr], x_test=x[te])
        ys.update(y_train=y[tr], y_test=y[te])
    arrays = _checked(xs["x_train"], ys["y_train"], xs["x_test"], ys["y_test"], names, where)
    return ImageDataset(name=name, **arrays, class_names=names,
                        fingerprint=_hash_arrays(arrays, names), origin="<arrays>")


def available_datasets() -> list[dict[str, str]]:
    """Builtin datasets, accepted file formats, and files in the shared datasets folder."""
    out = [{"kind": "builtin", "name": n, "description": d} for n, d in BUILTIN_DATASETS.items()]
    out += [{"kind": "format", "name": n, "description": d} for n, d in FORMATS.items()]
    shared = shared_datasets_dir()
    if shared is not None:
        for p in sorted(shared.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_dir() or p.suffix.lower() in (".npz", ".zip"):
                out.append({"kind": "shared", "name": p.stem if p.is_file() else p.name,
                            "path": str(p)})
    return out


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) with ``round(n_c * fraction)`` of each class held out.

    Each class keeps at least one image, and holds out at least one when it has two or more.
    Both index arrays are sorted, so the original order survives inside each split.
    """
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n_out = split_count(len(idx), fraction)
        held.append(rng.permutation(idx)[:n_out])
    out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    mask = np.ones(len(y), bool)
    mask[out] = False
    return np.flatnonzero(mask), out


def split_count(n: int, fraction: float) -> int:
    """How many of ``n`` items go to the held-out side: rounded, but leaving 1 on each side."""
    if n < 2:
        return 0
    return min(max(int(np.floor(n * fraction + 0.5)), 1), n - 1)


MAX_CLASSES = 100_000
"""Labels beyond this are refused before any per-class structure is allocated."""
MAX_MEMBER_BYTES = 64 * 2**20
"""An image file inside a zip may inflate to at most this (64 MiB), and one in an ImageFolder
directory may be at most this large."""
MAX_ZIP_BYTES = 8 * 2**30
"""All members of a zip together may inflate to at most this (8 GiB)."""


# --------------------------------------------------------------------------------------------
# builtin


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits ((1797, 8, 8) pixel values 0-16, labels), read from its
    data file directly: ``sklearn.datasets`` imports scipy.stats, 1.9 s of a 6 s search."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():  # an unusual install: the public loader
        from sklearn.datasets import load_digits

        d = load_digits()
        return np.asarray(d.images, np.float64), np.asarray(d.target, np.int64)
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


def _load_builtin(name: str, seed: int, test_fraction: float) -> ImageDataset:
    images, target = _digits()
    x = np.rint(images * (255.0 / 16.0))
    x = np.clip(x, 0, 255).astype(np.uint8)[..., None]
    y = target
    names = tuple(str(n) for n in range(10))
    tr, te = stratified_split(y, test_fraction, seed)
    arrays = _checked(x[tr], y[tr], x[te], y[te], names, name)
    return ImageDataset(name=name, **arrays, class_names=names,
                        fingerprint=_hash_arrays(arrays, names), origin=name)


# --------------------------------------------------------------------------------------------
# npz


def _load_npz(path: Path, seed: int, test_fraction: float,
              class_split: str | None = None) -> ImageDataset:
    where = str(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a bare array: nothing to close
            raise DatasetError(f"{where} is a single .npy array, not an .npz archive")
        with data:
            keys = set(data.files)
            fixed = ("x_train", "y_train", "x_test", "y_test")
            if set(fixed) <= keys:
                wanted = list(fixed)
            elif {"x", "y"} <= keys:
                wanted = ["x", "y"]
            else:
                style = ("x", "y") if keys & {"x", "y"} and not keys & set(fixed) else fixed
                missing = [k for k in style if k not in keys]
                raise DatasetError(
                    f"missing keys {', '.join(missing)} in {where} (found: "
                    f"{', '.join(sorted(keys)) or 'none'}; expected x_train, y_train, x_test, "
                    f"y_test or x, y, optionally class_names)")
            raw = {k: data[k] for k in wanted}
            names_raw = data["class_names"] if "class_names" in keys else None
            if class_split is not None:
                if "class_split" not in keys:
                    raise DatasetError(f"{where} has no class_split array, so "
                                       f"[class_split={class_split}] cannot select classes")
                split_of = np.asarray(data["class_split"])
                split_names = data["split_names"] if "split_names" in keys else None
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error,
            pickle.UnpicklingError) as exc:
        if not zipfile.is_zipfile(path):
            raise DatasetError(f"{where} is corrupt or not an .npz archive") from exc
        if "allow_pickle" in str(exc):
            raise DatasetError(f"{where} holds pickled object arrays, which are refused for "
                               f"safety; save plain numeric/string arrays instead") from exc
        raise DatasetError(f"{where} is a corrupt .npz archive ({exc})") from exc

    xs = {k: _as_images(v, k, where) for k, v in raw.items() if k.startswith("x")}
    ys = {k: _as_labels(v, k, where) for k, v in raw.items() if k.startswith("y")}
    for yk in ys:
        _check_lengths(xs["x" + yk[1:]], ys[yk], "x" + yk[1:], yk, where)
    if names_raw is not None:
        names = _as_class_names(names_raw, "class_names", where)
    else:
        top = max((int(v.max()) for v in ys.values() if len(v)), default=-1)
        if top >= MAX_CLASSES:  # checked before the names are built (2**40 took 23 GB)
            raise DatasetError(f"{where}: label {top} implies more than {MAX_CLASSES:,} "
                               "classes; labels must be 0..K-1")
        names = tuple(str(i) for i in range(top + 1))
    _check_label_range(ys, len(names), where)
    fingerprint = cache.hash_file(path)
    name = path.stem
    if class_split is not None:
        keep, value, label = _split_classes(split_of, split_names, class_split, len(names),
                                            where)
        remap = np.full(len(names), -1, np.int64)
        remap[keep] = np.arange(len(keep))
        for yk in ys:
            rows = remap[ys[yk]] >= 0
            ys[yk] = remap[ys[yk][rows]]
            xs["x" + yk[1:]] = xs["x" + yk[1:]][rows]
        names = tuple(names[i] for i in keep)
        fingerprint = hashlib.sha256(f"{fingerprint}:class_split={value}".encode()).hexdigest()
        name = f"{path.stem}-{label}"
    arrays, fingerprint = _final_splits(xs, ys, names, where, fingerprint, seed, test_fraction)
    return ImageDataset(name=name, **arrays, class_names=names, fingerprint=fingerprint,
                        origin=str(path.resolve()))


def _split_classes(split_of: np.ndarray, split_names: np.ndarray | None, wanted: str,
                   n_classes: int, where: str) -> tuple[np.ndarray, int, str]:
    """Class ids whose ``class_split`` entry is ``wanted`` (a number or a split name), the
    split's number and its label (its name when the archive names its splits)."""
    if split_of.ndim != 1 or len(split_of) != n_classes:
        raise DatasetError(f"{where}: class_split must have one entry per class ({n_classes}), "
                           f"got shape {split_of.shape}")
    names = [str(n) for n in split_names] if split_names is not None else []
    if wanted in names:
        value = names.index(wanted)
    else:
        try:
            value = int(wanted)
        except ValueError:
            value = None
    keep = np.flatnonzero(split_of == value) if value is not None else np.zeros(0, np.int64)
    if not len(keep):
        known = sorted({int(v) for v in split_of}) + names
        raise DatasetError(f"{where}: no class has class_split {wanted!r}; known: "
                           f"{', '.join(map(str, known))}")
    label = names[value] if 0 <= value < len(names) else str(value)
    return keep, int(value), label


# --------------------------------------------------------------------------------------------
# ImageFolder directory or zip


@dataclass(frozen=True)
class _Entry:
    """One image file of an ImageFolder tree: where it is, which split and class it belongs to."""

    member: str  # zip member name, or path relative to the directory root
    split: str  # "train", "test" or "all" (no split folders)
    cls: str


def _load_tree(path: Path, seed: int, test_fraction: float, progress: bool) -> ImageDataset:
    """Load an ImageFolder directory or zip, through the decoded-array cache."""
    where = str(path)
    if path.is_dir():
        members = _list_directory(path)
        key = cache.hash_tree(path, members)

        def read(member: str) -> bytes:
            return (path / member).read_bytes()

        archive: zipfile.ZipFile | None = None
    else:
        try:
            archive = zipfile.ZipFile(path)
            infos = [i for i in archive.infolist() if not i.is_dir()]
            members = [i.filename for i in infos]
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DatasetError(f"{where} is not a readable zip file ({exc})") from exc
        # sizes from the central directory, checked before anything is inflated; reads are
        # capped too, since a member may understate its size
        big = next((i for i in infos if i.file_size > MAX_MEMBER_BYTES), None)
        total = sum(i.file_size for i in infos)
        if big is not None or total > MAX_ZIP_BYTES:
            archive.close()
            what = (f"member {big.filename[:80]!r} inflates to {big.file_size:,} bytes"
                    if big is not None else f"its members inflate to {total:,} bytes")
            raise DatasetError(f"{where}: {what}; the limits are {MAX_MEMBER_BYTES:,} per "
                               f"image and {MAX_ZIP_BYTES:,} in all")
        key = cache.hash_file(path)

        def read(member: str) -> bytes:
            with archive.open(member) as fh:
                data = fh.read(MAX_MEMBER_BYTES + 1)
            if len(data) > MAX_MEMBER_BYTES:
                raise DatasetError(f"{where}: member {member[:80]!r} inflates beyond "
                                   f"{MAX_MEMBER_BYTES:,} bytes")
            return data
    try:
        arrays = cache.load_arrays(key)
        if arrays is None or not _valid_cached(arrays):
            entries = _parse_layout(members, where)
            arrays = _decode_folder_tree(entries, read, where, progress=progress)
            cache.save_arrays(key, arrays)
    finally:
        if archive is not None:
            archive.close()

    names = tuple(str(n) for n in arrays["class_names"])
    checked, fingerprint = _final_splits(arrays, arrays, names, where, key, seed, test_fraction)
    name = path.name if path.is_dir() else path.stem
    return ImageDataset(name=name, **checked, class_names=names, fingerprint=fingerprint,
                        origin=str(path.resolve()))


def _valid_cached(arrays: dict[str, np.ndarray]) -> bool:
    keys = set(arrays)
    return "class_names" in keys and (
        {"x_train", "y_train", "x_test", "y_test"} <= keys or {"x", "y"} <= keys)


def _list_directory(root: Path) -> list[str]:
    """Relative posix paths of the image files under ``root`` (hidden entries skipped).

    Each is checked before anything reads it: a broken or looping symlink, a FIFO or device
    (which would be read forever) or a file over the per-image limit is a one-line error."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(root)
        for f in filenames:
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                rel = (rel_dir / f).as_posix()
                _check_image_file(root, rel)
                out.append(rel)
    return sorted(out)


def _check_image_file(root: Path, rel: str) -> None:
    try:
        info = (root / rel).stat()
    except OSError as exc:  # a broken symlink, a symlink loop, no permission
        raise DatasetError(f"{root}: cannot read image {rel[:120]!r} "
                           f"({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise DatasetError(f"{root}: image {rel[:120]!r} is not a regular file")
    if info.st_size > MAX_MEMBER_BYTES:
        raise DatasetError(f"{root}: image {rel[:120]!r} has {info.st_size:,} bytes; the limit "
                           f"is {MAX_MEMBER_BYTES:,} per image")


def _parse_layout(members: Sequence[str], where: str) -> list[_Entry]:
    """Assign each image member a split and class from its folders.

    Layouts: ``train/<class>/...`` with ``test/<class>/...`` (preferred) or ``val/<class>/...``;
    or just ``<class>/...``. A single wrapping folder (``mydata/train/...``) is looked through.
    Images not inside a class folder, and non-image files, are ignored. With both test/ and val/,
    test/ is the test split and val/ is ignored. With train/ alone, train/ is split by seed.
    """
    parts = []
    for m in members:
        p = PurePosixPath(m).parts
        if any(s.startswith(".") or s == "__MACOSX" for s in p):
            continue
        if PurePosixPath(m).suffix.lower() in IMAGE_EXTENSIONS:
            parts.append((m, p))
    # Look through single wrapping folders such as "cifar10/train/cat/1.png".
    depth = 0
    while parts:
        tops = {p[depth] for _, p in parts}
        if len(tops) == 1 and tops.isdisjoint(_SPLIT_DIRS) and \
                all(len(p) - depth >= 3 for _, p in parts):
            depth += 1
        else:
            break
    parts = [(m, p[depth:]) for m, p in parts]
    tops = {p[0] for _, p in parts if len(p) >= 2}
    if "train" in tops and any(p[0] == "train" and len(p) >= 3 for _, p in parts):
        test_dir = "test" if "test" in tops else ("val" if "val" in tops else None)
        entries = [_Entry(m, "train" if p[0] == "train" else "test", p[1])
                   for m, p in parts if len(p) >= 3 and p[0] in ("train", test_dir)]
        if test_dir is None:
            entries = [_Entry(e.member, "all", e.cls) for e in entries]
    elif tops & {"test", "val"} and any(p[0] in ("test", "val") and len(p) >= 3
                                        for _, p in parts):
        raise DatasetError(f"{where} has test/ or val/ class folders but no train/ folder")
    else:
        entries = [_Entry(m, "all", p[0]) for m, p in parts if len(p) >= 2]
    if not entries:
        raise DatasetError(f"{where} contains zero images in class folders (looked for "
                           f"{', '.join(sorted(IMAGE_EXTENSIONS))} files in <class>/ or "
                           f"train/<class>/ folders)")
    train_classes = {e.cls for e in entries if e.split != "test"}
    stray = sorted({e.cls for e in entries if e.split == "test"} - train_classes)
    if stray:
        shown = ", ".join(stray[:5]) + (", ..." if len(stray) > 5 else "")
        raise DatasetError(f"{where}: {len(stray)} class(es) in the test split have no train "
                           f"folder: {shown}")
    if len(train_classes) < 2:
        raise DatasetError(f"{where} has fewer than 2 classes ({len(train_classes)} found)")
    return entries


def _decode_folder_tree(entries: Sequence[_Entry], read: Callable[[str], bytes], where: str,
                        *, progress: bool = True) -> dict[str, np.ndarray]:
    """Decode every image into uint8 arrays (the slow step that the cache avoids).

    Images become RGB, or gray (C=1) if every image is gray. Images whose size differs from the
    most common size are resized to it (bilinear, antialiased); ties go to the larger size.
    """
    names = sorted({e.cls for e in entries})
    index = {n: i for i, n in enumerate(names)}
    entries = sorted(entries, key=lambda e: (e.split, e.member))
    images: list[np.ndarray | None] = []
    show = progress and len(entries) > _PROGRESS_MIN_IMAGES
    with _progress_bar(show, len(entries), f"decoding {Path(where).name}") as advance:
        for i, e in enumerate(entries):
            images.append(_decode_image(read, e.member, where))
            if i % 256 == 255:
                advance(256)
        advance(len(entries) % 256)

    sizes = Counter(im.shape[:2] for im in images if im is not None)
    h, w = max(sizes, key=lambda s: (sizes[s], s[0] * s[1], s))
    gray = all(im.ndim == 2 for im in images if im is not None)
    channels = 1 if gray else 3
    out = np.empty((len(images), h, w, channels), np.uint8)
    for i in range(len(images)):
        im = images[i]
        images[i] = None  # free as we go: peak memory stays near one copy of the data
        assert im is not None
        if im.shape[:2] != (h, w):
            im = _resize(im, h, w)
        if gray:
            out[i, ..., 0] = im
        elif im.ndim == 2:
            out[i] = im[..., None]
        else:
            out[i] = im
    y = np.array([index[e.cls] for e in entries], np.int64)
    class_names = np.array(names, dtype=str)
    if entries[0].split == "all":
        return {"x": out, "y": y, "class_names": class_names}
    # Entries are sorted by split, so test and train are contiguous blocks: slice, don't copy.
    n_test = sum(e.split == "test" for e in entries)
    return {"x_train": out[n_test:], "y_train": y[n_test:], "x_test": out[:n_test],
            "y_test": y[:n_test], "class_names": class_names}


def _decode_image(read: Callable[[str], bytes], member: str, where: str) -> np.ndarray:
    """One image as (H, W) gray or (H, W, 3) RGB uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = read(member)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DatasetError(f"cannot read {member} in {where} ({exc})") from exc
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            mode = img.mode
            if mode in ("L", "RGB"):
                return np.array(img, np.uint8)
            if mode in ("1", "LA"):
                return np.array(img.convert("L"), np.uint8)
            if mode in _GRAY_MODES:  # 16-bit / int / float gray
                a = np.asarray(img, np.float64)
                if a.max(initial=0) > 255:
                    a = a / 257.0
                return np.clip(np.rint(a), 0, 255).astype(np.uint8)
            if mode in ("P", "PA") and "transparency" in img.info:
                img = img.convert("RGBA")
            return np.array(img.convert("RGB"), np.uint8)
    except UnidentifiedImageError as exc:
        raise DatasetError(f"cannot decode image {member} in {where}: not a valid image file "
                           f"of a format Pillow supports") from exc
    except Exception as exc:  # Pillow raises many types for bad data; all mean "unreadable"
        raise DatasetError(f"cannot decode image {member} in {where} "
                           f"({type(exc).__name__}: {exc})") from exc


def _resize(im: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR), np.uint8)


@contextmanager
def _progress_bar(show: bool, total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (:class:`metanas.progress.Bars`: progress lines when stderr is
    not a terminal), or a no-op; yields an ``advance(n)`` callable."""
    if not show:
        yield lambda n: None
        return
    from metanas.progress import Bars

    with Bars(transient=True) as bars:
        bar = bars.add(description, total)
        yield lambda n: bars.advance(bar, amount=n)


# --------------------------------------------------------------------------------------------
# validation helpers


def _accepted_help() -> str:
    return (f"Builtin datasets: {', '.join(BUILTIN_DATASETS)}. Accepted files: .npz (x_train, "
            f"y_train, x_test, y_test or x, y), an ImageFolder directory (train/<class>/* and "
            f"test/<class>/* or val/<class>/*, or <class>/*), or a .zip of one")


def _check_split_args(seed: int, test_fraction: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction!r}")


def _as_images(x: Any, key: str, where: str) -> np.ndarray:
    """Validate images and return them as uint8 (N, H, W, C)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        hint = ""
        if x.ndim == 4 and x.shape[1] in (1, 3):
            hint = " (looks channels-first; transpose to (N, H, W, C))"
        raise DatasetError(f"{key} must have shape (N, H, W) or (N, H, W, C) with C 1 or 3, got "
                           f"{x.shape}{hint} in {where}")
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise DatasetError(f"{key} has empty images (shape {x.shape}) in {where}")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind in "iu":
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DatasetError(f"{key} integer pixel values must be in [0, 255], got "
                               f"[{x.min()}, {x.max()}] in {where}")
        return x.astype(np.uint8)
    if x.dtype.kind == "f":
        if x.size and not np.isfinite(x).all():
            raise DatasetError(f"{key} contains NaN or infinite values in {where}")
        if x.size and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
            raise DatasetError(f"{key} float pixel values must be in [0, 1], got "
                               f"[{x.min():g}, {x.max():g}] in {where} (pass uint8 for 0..255)")
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    raise DatasetError(f"{key} must be uint8 or float in [0, 1], got dtype {x.dtype} in {where}")


def _as_labels(y: Any, key: str, where: str) -> np.ndarray:
    """Validate labels and return them as int64 (N,)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"{key} must be one label per image, shape (N,), got {y.shape} "
                           f"in {where}")
    if y.dtype.kind in "biu":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        return y.astype(np.int64)
    raise DatasetError(f"{key} must hold integer labels, got dtype {y.dtype} in {where}")


def _as_class_names(names: Any, key: str, where: str) -> tuple[str, ...]:
    arr = np.asarray(names)
    if arr.ndim != 1 or arr.dtype.kind not in "USO":
        raise DatasetError(f"{key} must be a 1-D list of strings, got {arr.dtype} {arr.shape} "
                           f"in {where}")
    out = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in arr.tolist())
    if len(set(out)) != len(out):
        dup = sorted(n for n, c in Counter(out).items() if c > 1)
        raise DatasetError(f"{key} has duplicate names ({', '.join(dup[:5])}) in {where}")
    return out


def _check_lengths(x: np.ndarray, y: np.ndarray, xk: str, yk: str, where: str) -> None:
    if len(x) != len(y):
        raise DatasetError(f"{xk} and {yk} have different lengths ({len(x)} vs {len(y)}) "
                           f"in {where}")


def _check_label_range(ys: dict[str, np.ndarray], k: int, where: str) -> None:
    for key, y in ys.items():
        if not len(y):
            continue
        if y.min() < 0:
            raise DatasetError(f"{key} has negative labels (min {y.min()}) in {where}")
        if y.max() >= k:
            raise DatasetError(f"{key} has label {y.max()} out of range for {k} classes "
                               f"(labels must be in [0, {k})) in {where}")


def _checked(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             names: tuple[str, ...], where: str) -> dict[str, np.ndarray]:
    """The final consistency checks every source goes through."""
    _check_lengths(x_train, y_train, "x_train", "y_train", where)
    _check_lengths(x_test, y_test, "x_test", "y_test", where)
    if len(x_train) == 0:
        raise DatasetError(f"zero training images in {where}")
    if len(x_test) == 0:
        raise DatasetError(f"zero test images in {where} (too few images to split off a test "
                           f"set; each class needs at least 2)")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(f"train and test images differ in shape ({x_train.shape[1:]} vs "
                           f"{x_test.shape[1:]}) in {where}")
    if len(names) < 2:
        raise DatasetError(f"fewer than 2 classes ({len(names)}) in {where}")
    _check_label_range({"y_train": y_train, "y_test": y_test}, len(names), where)
    counts = np.bincount(y_train, minlength=len(names))
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        shown = ", ".join(repr(names[i]) for i in empty[:5]) + (", ..." if len(empty) > 5 else "")
        raise DatasetError(f"{len(empty)} class(es) have no training images ({shown}) in {where}")
    return {"x_train": np.ascontiguousarray(x_train), "y_train": y_train.astype(np.int64),
            "x_test": np.ascontiguousarray(x_test), "y_test": y_test.astype(np.int64)}


def _hash_arrays(arrays: dict[str, np.ndarray], names: Sequence[str]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}\0".encode())
        h.update(memoryview(a).cast("B"))
    h.update(json.dumps(list(names)).encode())
    return h.hexdigest()


def _final_splits(xs: dict[str, np.ndarray], ys: dict[str, np.ndarray],
                  names: tuple[str, ...], where: str, fingerprint: str, seed: int,
                  test_fraction: float) -> tuple[dict[str, np.ndarray], str]:
    """The checked train and test arrays, and the dataset's fingerprint: a single pool
    (``x``, ``y``) is split seeded and stratified (the fingerprint then names the split);
    given ``x_train`` ... ``y_test`` are kept as they are."""
    if "x" in xs:
        tr, te = stratified_split(ys["y"], test_fraction, seed)
        x, y = xs["x"], ys["y"]
        return (_checked(x[tr], y[tr], x[te], y[te], names, where),
                _derived_fingerprint(fingerprint, seed, test_fraction))
    return _checked(xs["x_train"], ys["y_train"], xs["x_test"], ys["y_test"], names,
                    where), fingerprint


def _derived_fingerprint(content: str, seed: int, test_fraction: float) -> str:
    """Fingerprint of a split drawn from a file: the same file split differently is other data."""
    blob = json.dumps({"content": content, "seed": int(seed),
                       "test_fraction": float(test_fraction)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
