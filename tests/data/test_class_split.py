"""``PATH.npz[class_split=N]``: keep the classes of one split (e.g. Omniglot's evaluation set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metanas.data import load_dataset
from metanas.errors import DatasetError
from metanas.paths import shared_datasets_dir


def _archive(tmp_path: Path, **extra) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10).astype(np.int16)
    x = rng.integers(0, 255, (len(y), 6, 6)).astype(np.uint8)
    x[:, 0, 0] = y * 40  # each image remembers its class
    path = tmp_path / "omni.npz"
    np.savez(path, x=x, y=y, class_names=np.array(["a", "b", "c", "d"]), **extra)
    return path


def test_class_split_keeps_and_relabels_one_split(tmp_path: Path) -> None:
    path = _archive(tmp_path, class_split=np.array([0, 1, 0, 1], np.int8),
                    split_names=np.array(["background", "evaluation"]))
    by_number = load_dataset(f"{path}[class_split=1]")
    by_name = load_dataset(f"{path}[class_split=evaluation]")
    assert by_number.class_names == by_name.class_names == ("b", "d")
    assert by_number.name == by_name.name == "omni-evaluation"
    assert by_number.fingerprint == by_name.fingerprint != load_dataset(path).fingerprint
    assert len(by_number.y_train) + len(by_number.y_test) == 20
    # labels 0, 1 are the kept classes b (1) and d (3), in order
    for x, y in ((by_number.x_train, by_number.y_train), (by_number.x_test, by_number.y_test)):
        assert np.array_equal(x[:, 0, 0, 0], np.where(y == 0, 40, 120))
    background = load_dataset(f"{path}[class_split=0]")
    assert background.class_names == ("a", "c")


def test_class_split_errors_name_the_problem(tmp_path: Path) -> None:
    path = _archive(tmp_path, class_split=np.array([0, 1, 0, 1], np.int8))
    with pytest.raises(DatasetError, match="no class has class_split '7'; known: 0, 1"):
        load_dataset(f"{path}[class_split=7]")
    (tmp_path / "plain").mkdir()
    plain = _archive(tmp_path / "plain")
    with pytest.raises(DatasetError, match="has no class_split array"):
        load_dataset(f"{plain}[class_split=1]")
    with pytest.raises(DatasetError, match=r"applies to \.npz"):
        load_dataset(f"{tmp_path}[class_split=1]")


@pytest.mark.shared
@pytest.mark.skipif(shared_datasets_dir() is None, reason="needs ../shared/datasets")
def test_omniglot_evaluation_split() -> None:
    ds = load_dataset(f"{shared_datasets_dir()}/omniglot-28px.npz[class_split=evaluation]")
    assert ds.num_classes == 659 and ds.name == "omniglot-28px-evaluation"
    assert len(ds.y_train) + len(ds.y_test) == 659 * 20


def test_a_kb_source_named_after_a_class_split_is_found(tmp_path: Path) -> None:
    from metanas.data.locate import find_source

    path = _archive(tmp_path, class_split=np.array([0, 1, 0, 1], np.int8),
                    split_names=np.array(["background", "evaluation"]))
    data = load_dataset(f"{path}[class_split=evaluation]")
    found = find_source(data.name, tmp_path)  # "omni-evaluation", as a KB task stores it
    assert load_dataset(found).fingerprint == data.fingerprint
    with pytest.raises(DatasetError, match="source=PATH"):
        find_source("other-evaluation", tmp_path)
    np.savez(tmp_path / "plain.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.arange(2))
    with pytest.raises(DatasetError, match="source=PATH"):  # no class_split: not a split name
        find_source("plain-64px", tmp_path)
