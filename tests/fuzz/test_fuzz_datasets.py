"""Datasets: .npz archives with random keys, shapes, dtypes and labels; zips with random
members (names, sizes, contents, nesting). Loaded through the public loader."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metanas.data import load_dataset

from .conftest import FUZZ, loads_cleanly

DTYPES = [np.uint8, np.int8, np.int64, np.float32, np.float64, np.bool_, np.complex64, "U3",
          object]
LABELS = st.one_of(st.integers(-3, 12), st.sampled_from([2**31, 2**40, 10**7, -(2**62)]))


def _array(draw, max_dims=5):
    shape = tuple(draw(st.lists(st.integers(0, 9), max_size=max_dims)))
    dtype = draw(st.sampled_from(DTYPES))
    n = int(np.prod(shape)) if shape else 1
    if dtype is object:
        return np.array([None] * n, dtype=object).reshape(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return rng.integers(-300, 300, n).astype(dtype).reshape(shape)


@st.composite
def npz_arrays(draw):
    arrays = {}
    style = draw(st.sampled_from(["xy", "split", "random"]))
    keys = {"xy": ["x", "y"], "split": ["x_train", "y_train", "x_test", "y_test"],
            "random": draw(st.lists(st.sampled_from(["x", "y", "x_train", "class_names",
                                                     "class_split", "z"]), max_size=4))}[style]
    for key in keys + draw(st.lists(st.sampled_from(["class_names", "split_names"]),
                                    max_size=1)):
        if key.startswith("y") and draw(st.booleans()):
            n = draw(st.integers(0, 12))
            arrays[key] = np.array(draw(st.lists(LABELS, min_size=n, max_size=n)), np.int64)
        elif key.startswith("x") and draw(st.booleans()):
            n, side = draw(st.integers(0, 12)), draw(st.sampled_from([1, 4, 8, 70000]))
            channels = draw(st.sampled_from([1, 3, 4, 5]))
            arrays[key] = np.zeros((n, min(side, 8), 8 if side < 70000 else 0, channels),
                                   np.uint8) if side < 70000 else np.zeros((n, 1, side, 1),
                                                                          np.uint8)
        else:
            arrays[key] = _array(draw)
    return arrays


@FUZZ
@given(npz_arrays(), st.booleans())
def test_npz_archives_load_or_fail_in_one_line(tmp_path_factory, arrays, truncate):
    path = tmp_path_factory.mktemp("npz") / "d.npz"
    np.savez(path, **arrays)
    if truncate:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    data = loads_cleanly(load_dataset, str(path), progress=False)
    if data is not None:
        assert data.num_classes >= 2 and len(data.x_train) == len(data.y_train)


def _png(side: int, colour: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (colour, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


@st.composite
def zip_members(draw):
    members = []
    for _ in range(draw(st.integers(0, 8))):
        folder = draw(st.sampled_from(["a/", "b/", "train/a/", "test/b/", "", "../", "x/y/z/",
                                       "/abs/", "c\u00e9/"]))
        name = draw(st.sampled_from(["0.png", "1.jpg", "2.PNG", ".hidden.png", "n.txt", "big.png",
                                     "x" * 200 + ".png"]))
        kind = draw(st.sampled_from(["png", "garbage", "empty", "huge-declared", "zeros"]))
        data = {"png": lambda: _png(draw(st.sampled_from([1, 4, 9])), draw(st.integers(0, 255))),
                "garbage": lambda: draw(st.binary(max_size=64)),
                "empty": lambda: b"",
                "huge-declared": lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 32,
                "zeros": lambda: b"\0" * draw(st.sampled_from([10, 10, 10, 65 * 2**20]))}[kind]()
        members.append((folder + name, data))
    return members


@pytest.mark.filterwarnings("ignore:Duplicate name")
@FUZZ
@given(zip_members(), st.sampled_from(["stored", "deflated", "truncated"]))
def test_zips_load_or_fail_in_one_line(tmp_path_factory, members, how):
    path = tmp_path_factory.mktemp("zip") / "d.zip"
    method = zipfile.ZIP_STORED if how == "stored" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size * 2 // 3)])
    data = loads_cleanly(load_dataset, str(path), progress=False)
    if data is not None:
        assert data.num_classes >= 2
