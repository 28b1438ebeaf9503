"""Loading datasets: builtin, npz, ImageFolder directory/zip, arrays; caching; error messages."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metanas.data import (
    BUILTIN_DATASETS,
    ImageDataset,
    available_datasets,
    cache,
    from_arrays,
    load_dataset,
    sources,
    stratified_split,
)
from metanas.errors import DatasetError, MetanasError
from metanas.paths import shared_datasets_dir

SHARED = shared_datasets_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/datasets not present")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache, so nothing leaks between tests or into ~/.cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("METANAS_CACHE_DIR", str(path))
    return path


def _image(value: int, size: tuple[int, int] = (6, 5), mode: str = "RGB") -> Image.Image:
    """A small image whose pixels encode ``value`` (so tests can check which file went where)."""
    h, w = size
    if mode == "L":
        return Image.fromarray(np.full((h, w), value, np.uint8), "L")
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = value
    arr[..., 1] = 255 - value
    arr[..., 2] = 7
    return Image.fromarray(arr, "RGB")


def _tree(per_class: dict[str, int], *, splits: tuple[str, ...] = ("train", "test"),
          mode: str = "RGB", size: tuple[int, int] = (6, 5)) -> dict[str, bytes]:
    """Relative path -> PNG bytes of an ImageFolder tree; classes encoded by pixel value."""
    files: dict[str, bytes] = {}
    for ci, (cls, n) in enumerate(sorted(per_class.items())):
        for split in splits or ("",):
            count = n if split not in ("test", "val") else max(1, n // 2)
            for i in range(count):
                buf = io.BytesIO()
                _image(40 * ci + 10, size, mode).save(buf, format="PNG")
                rel = f"{split}/{cls}/{i:03d}.png" if split else f"{cls}/{i:03d}.png"
                files[rel] = buf.getvalue()
    return files


def _write_dir(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def _write_zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for rel, data in files.items():
            z.writestr(prefix + rel, data)
    return path


def _class_of_pixels(ds: ImageDataset, x: np.ndarray) -> np.ndarray:
    """Invert the pixel encoding of :func:`_image`: the class index each image was drawn as."""
    return (x[:, 0, 0, 0].astype(int) - 10) // 40


# -------------------------------------------------------------------------------------------
# digits


def test_digits_loads_as_10_class_8x8_gray() -> None:
    ds = load_dataset("digits")
    assert ds.num_classes == 10 and ds.class_names == tuple(str(i) for i in range(10))
    assert ds.channels == 1 and ds.image_size == (8, 8)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (8, 8, 1)
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert len(ds.y_test) == pytest.approx(0.2 * 1797, abs=10)
    # stratified: every class is in both splits, in about the same proportion
    frac = np.bincount(ds.y_test) / (np.bincount(ds.y_test) + np.bincount(ds.y_train))
    assert np.all(np.abs(frac - 0.2) < 0.02)
    desc = ds.describe()
    assert desc["n_train"] == len(ds.y_train) and desc["image_size"] == [8, 8]
    assert desc["train_per_class"]["min"] > 100


def test_digits_split_is_deterministic_in_seed() -> None:
    a, b, c = load_dataset("digits", seed=1), load_dataset("digits", seed=1), load_dataset(
        "digits", seed=2)
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_train, b.y_train)
    assert a.fingerprint == b.fingerprint
    assert not np.array_equal(a.x_test, c.x_test)
    assert a.fingerprint != c.fingerprint
    d = load_dataset("digits", seed=1, test_fraction=0.5)
    assert len(d.y_test) == pytest.approx(1797 / 2, abs=10)


def test_dataset_arrays_are_read_only() -> None:
    ds = load_dataset("digits")
    with pytest.raises(ValueError):
        ds.x_train[0, 0, 0, 0] = 1


# -------------------------------------------------------------------------------------------
# npz


def _arrays(n_classes: int = 3, n: int = 8, shape: tuple[int, ...] = (5, 4)) -> tuple:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), n)
    x = rng.integers(0, 256, size=(len(y), *shape), dtype=np.uint8)
    return x, y


def test_npz_with_fixed_split_round_trips(tmp_path: Path) -> None:
    x, y = _arrays(shape=(5, 4, 3))
    path = tmp_path / "set.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:6], y_test=y[:6],
             class_names=np.array(["a", "b", "c"]))
    ds = load_dataset(path)
    assert ds.name == "set" and ds.class_names == ("a", "b", "c")
    assert np.array_equal(ds.x_train, x) and np.array_equal(ds.y_test, y[:6])
    assert ds.y_train.dtype == np.int64 and ds.channels == 3 and ds.image_size == (5, 4)
    assert ds.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ds.origin == str(path.resolve())
    # the fixed split ignores seed
    assert np.array_equal(load_dataset(path, seed=5).x_train, x)


def test_npz_with_x_y_is_split_by_seed_and_ignores_class_split(tmp_path: Path) -> None:
    x, y = _arrays(n_classes=4, n=10)
    path = tmp_path / "omni.npz"
    np.savez(path, x=x, y=y.astype(np.int16), class_names=np.array(["p", "q", "r", "s"]),
             class_split=np.array([0, 0, 1, 1], np.int8))
    a, b = load_dataset(path, seed=3), load_dataset(path, seed=4)
    assert a.channels == 1 and a.num_classes == 4
    assert np.bincount(a.y_test).tolist() == [2, 2, 2, 2]
    assert len(a.y_train) + len(a.y_test) == len(y)
    assert not np.array_equal(a.x_test, b.x_test)
    assert a.fingerprint != b.fingerprint  # same file, other split: other data
    again = load_dataset(path, seed=3)
    assert np.array_equal(a.x_test, again.x_test) and a.fingerprint == again.fingerprint


def test_npz_float_images_become_uint8_and_names_default_to_ids(tmp_path: Path) -> None:
    x = np.linspace(0, 1, 6 * 2 * 2).reshape(6, 2, 2).astype(np.float32)
    y = np.array([0, 0, 0, 1, 1, 1])
    path = tmp_path / "f.npz"
    np.savez(path, x=x, y=y)
    ds = load_dataset(path)
    assert ds.x_train.dtype == np.uint8 and ds.class_names == ("0", "1")
    allx = np.concatenate([ds.x_train, ds.x_test]).ravel()
    assert allx.min() == 0 and allx.max() == 255


def test_stratified_split_keeps_one_on_each_side() -> None:
    y = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2])
    kept, held = stratified_split(y, 0.2, seed=0)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(len(y)))
    assert np.bincount(y[held], minlength=3).tolist() == [1, 2, 0]


# -------------------------------------------------------------------------------------------
# ImageFolder directories and zips


def test_imagefolder_directory_with_test_split(tmp_path: Path) -> None:
    files = _tree({"cat": 4, "dog": 6, "emu": 2})
    files["classes.tsv"] = b"cat\tfeline\n"  # non-image files are ignored
    root = _write_dir(tmp_path / "pets", files)
    ds = load_dataset(root)
    assert ds.name == "pets" and ds.class_names == ("cat", "dog", "emu")
    assert ds.channels == 3 and ds.image_size == (6, 5)
    assert np.bincount(ds.y_train).tolist() == [4, 6, 2]
    assert np.bincount(ds.y_test).tolist() == [2, 3, 1]
    assert np.array_equal(_class_of_pixels(ds, ds.x_train), ds.y_train)
    assert np.array_equal(_class_of_pixels(ds, ds.x_test), ds.y_test)


def test_imagefolder_gray_class_folders_only_are_split_by_seed(tmp_path: Path) -> None:
    root = _write_dir(tmp_path / "g", _tree({"a": 5, "b": 5}, splits=(), mode="L"))
    ds = load_dataset(root, seed=0)
    assert ds.channels == 1 and ds.num_classes == 2
    assert np.bincount(ds.y_test).tolist() == [1, 1]
    assert ds.x_train[0, 0, 0, 0] in (10, 50)
    other = load_dataset(root, seed=1)
    assert ds.fingerprint != other.fingerprint


def test_zip_with_wrapper_folder_and_val_split(tmp_path: Path) -> None:
    files = _tree({"x": 3, "y": 3}, splits=("train", "val"))
    files["__MACOSX/._junk.png"] = b"not an image"
    path = _write_zip(tmp_path / "wrapped.zip", files, prefix="mydata/")
    ds = load_dataset(path)
    assert ds.name == "wrapped" and ds.class_names == ("x", "y")
    assert len(ds.y_train) == 6 and len(ds.y_test) == 2
    assert np.array_equal(_class_of_pixels(ds, ds.x_train), ds.y_train)
    assert ds.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


def test_zip_gray_without_split(tmp_path: Path) -> None:
    path = _write_zip(tmp_path / "g.zip", _tree({"a": 4, "b": 4, "c": 4}, splits=(), mode="L"))
    ds = load_dataset(path)
    assert ds.channels == 1 and ds.num_classes == 3 and len(ds.y_test) == 3


def test_train_folder_alone_is_split_by_seed(tmp_path: Path) -> None:
    ds = load_dataset(_write_dir(tmp_path / "t", _tree({"a": 5, "b": 5}, splits=("train",))))
    assert ds.class_names == ("a", "b") and np.bincount(ds.y_test).tolist() == [1, 1]
    assert np.array_equal(_class_of_pixels(ds, ds.x_train), ds.y_train)


def test_mixed_modes_become_rgb_and_odd_sizes_are_resized(tmp_path: Path) -> None:
    files = _tree({"a": 3, "b": 3})
    buf = io.BytesIO()
    _image(10, (12, 10), "L").save(buf, format="PNG")  # gray, twice the common size
    files["train/a/big.PNG"] = buf.getvalue()
    ds = load_dataset(_write_dir(tmp_path / "m", files))
    assert ds.channels == 3 and ds.image_size == (6, 5)
    assert len(ds.y_train) == 7
    # the gray image was replicated to 3 equal channels
    assert any(np.all(img[..., 0] == img[..., 1]) for img in ds.x_train)


def test_second_load_hits_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    _isolated_cache: Path) -> None:
    path = _write_zip(tmp_path / "c.zip", _tree({"a": 3, "b": 3}))
    first = load_dataset(path)
    entries = list((_isolated_cache / "datasets").glob("*.npz"))
    assert [e.stem for e in entries] == [first.fingerprint]
    assert not list((_isolated_cache / "datasets").glob(".*"))  # no temp files left behind

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again despite a cache entry")

    monkeypatch.setattr(sources, "_decode_folder_tree", boom)
    second = load_dataset(path)
    assert np.array_equal(first.x_train, second.x_train)
    assert second.class_names == first.class_names and second.fingerprint == first.fingerprint


def test_directory_cache_is_keyed_by_content(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = _write_dir(tmp_path / "d", _tree({"a": 3, "b": 3}))
    first = load_dataset(root)
    calls = []
    real = sources._decode_folder_tree
    monkeypatch.setattr(sources, "_decode_folder_tree",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    load_dataset(root)
    assert calls == []
    buf = io.BytesIO()
    _image(200).save(buf, format="PNG")
    (root / "train" / "a" / "000.png").write_bytes(buf.getvalue())
    changed = load_dataset(root)
    assert calls == [1] and changed.fingerprint != first.fingerprint


def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        _isolated_cache: Path) -> None:
    path = _write_zip(tmp_path / "c.zip", _tree({"a": 3, "b": 3}))
    first = load_dataset(path)
    entry = _isolated_cache / "datasets" / f"{first.fingerprint}.npz"
    entry.write_bytes(entry.read_bytes()[:100])  # as if a copy was truncated
    calls = []
    real = sources._decode_folder_tree
    monkeypatch.setattr(sources, "_decode_folder_tree",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    again = load_dataset(path)
    assert calls == [1] and np.array_equal(again.x_test, first.x_test)
    assert cache.load_arrays(first.fingerprint) is not None


def test_cache_write_is_atomic(monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path) -> None:
    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.save_arrays("k" * 64, {"a": np.zeros(3)})
    assert list((_isolated_cache / "datasets").iterdir()) == []


def test_unwritable_cache_dir_only_warns(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("METANAS_CACHE_DIR", str(blocker / "cache"))
    path = _write_zip(tmp_path / "c.zip", _tree({"a": 3, "b": 3}))
    with pytest.warns(RuntimeWarning, match="cannot write dataset cache"):
        ds = load_dataset(path)
    assert ds.num_classes == 2


# -------------------------------------------------------------------------------------------
# from_arrays and the listing


def test_from_arrays_remaps_labels_in_sorted_order() -> None:
    x, _ = _arrays(n_classes=3, n=6)
    y = np.repeat(np.array([7, -2, 3]), 6)
    ds = from_arrays(x, y, name="mine")
    assert ds.class_names == ("-2", "3", "7") and ds.name == "mine"
    assert sorted(np.unique(ds.y_train).tolist()) == [0, 1, 2]
    assert x.flags.writeable  # the caller's array is not frozen by the dataset


def test_from_arrays_with_test_split_and_names() -> None:
    x, y = _arrays(n_classes=2, n=4)
    ds = from_arrays(x, y + 10, x[:2], y[:2] + 10, class_names=["lo", "hi"])
    assert ds.class_names == ("lo", "hi") and ds.y_test.tolist() == [0, 0]
    assert np.array_equal(ds.x_test[..., 0], x[:2])
    assert ds.fingerprint == from_arrays(x, y + 10, x[:2], y[:2] + 10,
                                         class_names=["lo", "hi"]).fingerprint


def test_available_datasets_lists_builtins_and_formats() -> None:
    listing = available_datasets()
    names = {(d["kind"], d["name"]) for d in listing}
    assert ("builtin", "digits") in names and ("format", ".npz") in names
    assert set(BUILTIN_DATASETS) == {d["name"] for d in listing if d["kind"] == "builtin"}
    if SHARED is not None:
        assert ("shared", "mnist") in names


# -------------------------------------------------------------------------------------------
# errors: each one a DatasetError naming the file or argument


def _png(value: int = 10) -> bytes:
    buf = io.BytesIO()
    _image(value).save(buf, format="PNG")
    return buf.getvalue()


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _err(tmp_path: Path, case: str) -> tuple[object, str]:
    """Build the bad input for ``case``; returns (spec, text the message must contain)."""
    x, y = _arrays()
    if case == "missing path":
        return tmp_path / "nope.npz", "nope.npz"
    if case == "unknown name":
        return "imagenet-9000", "digits"
    if case == "unsupported suffix":
        p = tmp_path / "data.csv"
        p.write_text("1,2\n")
        return p, "data.csv"
    if case == "corrupt zip":
        p = tmp_path / "bad.zip"
        p.write_bytes(b"PK\x03\x04 definitely not a zip")
        return p, "bad.zip"
    if case == "corrupt npz":
        p = tmp_path / "bad.npz"
        p.write_bytes(b"garbage" * 20)
        return p, "not an .npz archive"
    if case == "npy named npz":
        p = tmp_path / "array.npz"
        with open(p, "wb") as fh:
            np.save(fh, x)
        return p, "single .npy array"
    if case == "pickled npz":
        p = tmp_path / "pick.npz"
        np.savez(p, x=np.array([object()], dtype=object), y=y)
        return p, "pickled"
    if case == "unreadable image":
        files = _tree({"a": 2, "b": 2})
        files["train/b/broken.jpg"] = b"\xff\xd8\xff not really a jpeg"
        return _write_zip(tmp_path / "img.zip", files), "image train/b/broken.jpg"
    if case == "length mismatch":
        return _npz(tmp_path / "len.npz", x_train=x, y_train=y[:-1], x_test=x, y_test=y), \
            "x_train and y_train have different lengths (24 vs 23)"
    if case == "missing keys":
        return _npz(tmp_path / "keys.npz", x_train=x, y_train=y), "x_test, y_test"
    if case == "one class":
        return _npz(tmp_path / "one.npz", x=x, y=np.zeros_like(y)), "fewer than 2 classes"
    if case == "one class folder":
        return _write_dir(tmp_path / "onecls", _tree({"solo": 3})), "fewer than 2 classes"
    if case == "label out of range":
        return _npz(tmp_path / "oor.npz", x=x, y=y, class_names=np.array(["a", "b"])), \
            "out of range"
    if case == "negative label":
        return _npz(tmp_path / "neg.npz", x=x, y=y - 1), "negative"
    if case == "zero images":
        return _npz(tmp_path / "empty.npz", x=x[:0], y=y[:0]), "empty.npz"
    if case == "zero images folder":
        (tmp_path / "nothing" / "a").mkdir(parents=True)
        (tmp_path / "nothing" / "a" / "readme.txt").write_text("hi")
        return tmp_path / "nothing", "zero images"
    if case == "test class not in train":
        files = _tree({"a": 2, "b": 2})
        files["test/zebra/0.png"] = _png()
        return _write_dir(tmp_path / "stray", files), "zebra"
    if case == "bad image shape":
        return _npz(tmp_path / "shape.npz", x=x[..., None].repeat(2, -1), y=y), "shape"
    if case == "float out of range":
        return _npz(tmp_path / "float.npz", x=x.astype(np.float32), y=y), "[0, 1]"
    raise AssertionError(case)


ERROR_CASES = [
    "missing path", "unknown name", "unsupported suffix", "corrupt zip", "corrupt npz",
    "npy named npz", "pickled npz", "unreadable image", "length mismatch", "missing keys", "one class",
    "one class folder", "label out of range", "negative label", "zero images",
    "zero images folder", "test class not in train", "bad image shape", "float out of range",
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_bad_sources_raise_dataset_error_naming_the_source(tmp_path: Path, case: str) -> None:
    spec, needle = _err(tmp_path, case)
    with pytest.raises(DatasetError) as info:
        load_dataset(spec, progress=False)  # type: ignore[arg-type]
    message = str(info.value)
    assert isinstance(info.value, MetanasError)
    assert needle in message, message
    if isinstance(spec, Path):
        assert str(spec) in message, message


@pytest.mark.parametrize("kwargs, needle", [
    ({"seed": -1}, "seed"), ({"test_fraction": 0.0}, "test_fraction"),
    ({"test_fraction": 1.5}, "test_fraction"),
])
def test_bad_split_arguments_are_named(kwargs: dict, needle: str) -> None:
    with pytest.raises(DatasetError, match=needle):
        load_dataset("digits", **kwargs)


def test_from_arrays_errors_name_the_argument() -> None:
    x, y = _arrays()
    with pytest.raises(DatasetError, match="x_train and y_train have different lengths"):
        from_arrays(x, y[:-1])
    with pytest.raises(DatasetError, match="x_test and y_test"):
        from_arrays(x, y, x_test=x)
    with pytest.raises(DatasetError, match="class_names has 2 entries"):
        from_arrays(x, y, class_names=["a", "b"])
    with pytest.raises(DatasetError, match="y_train must hold integer labels"):
        from_arrays(x, y + 0.5)
    with pytest.raises(DatasetError, match="channels-first"):
        from_arrays(np.zeros((4, 3, 8, 8), np.uint8), [0, 0, 1, 1])
    with pytest.raises(DatasetError, match="fewer than 2 classes"):
        from_arrays(x, np.zeros_like(y))


# -------------------------------------------------------------------------------------------
# the shared development datasets


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize("stem", ["mnist", "fashion-mnist"])
def test_shared_mnist_style_npz_loads(stem: str) -> None:
    ds = load_dataset(SHARED / f"{stem}.npz")  # type: ignore[operator]
    assert ds.num_classes == 10 and ds.image_size == (28, 28) and ds.channels == 1
    assert len(ds.y_train) == 20000 and len(ds.y_test) == 5000


@needs_shared
@pytest.mark.shared
def test_shared_omniglot_loads_with_names() -> None:
    ds = load_dataset(SHARED / "omniglot-28px.npz")  # type: ignore[operator]
    assert ds.num_classes == 1623 and "/" in ds.class_names[0]
    assert ds.train_counts().min() >= 2


def test_a_huge_label_is_refused_before_allocating_names(tmp_path):
    import numpy as np
    import pytest

    from metanas.data import load_dataset
    from metanas.errors import DatasetError

    path = tmp_path / "big.npz"
    np.savez(path, x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 2**40]))
    with pytest.raises(DatasetError, match="more than 100,000 classes"):
        load_dataset(path)


def test_a_zip_bomb_is_refused_before_inflating(tmp_path):
    import zipfile

    import pytest

    from metanas.data import load_dataset
    from metanas.errors import DatasetError

    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/x.png", b"\0" * (65 * 2**20))  # 65 MiB of zeros, ~65 KB compressed
        z.writestr("b/y.png", b"\0" * 10)
    with pytest.raises(DatasetError, match="inflates to"):
        load_dataset(path)
