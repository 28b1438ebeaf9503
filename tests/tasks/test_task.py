"""Tasks built from datasets (labels, sizes, caps, normalization, determinism) and the sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metanas.data import ImageDataset, from_arrays, load_dataset
from metanas.errors import ConfigError, DatasetError
from metanas.paths import shared_datasets_dir
from metanas.tasks import Task, TaskSampler, TaskSpec, make_task

SHARED = shared_datasets_dir()


def _dataset(n_classes: int = 6, n_train: int = 20, n_test: int = 10, size: int = 12,
             channels: int = 3) -> ImageDataset:
    """Class k's images are all near gray level 20 + 30k (plus noise): the class can be read back
    from the pixels of a task image, whatever resizing or normalization happened to it."""
    rng = np.random.default_rng(0)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(n_classes), n)
        base = (20 + 30 * y).astype(np.int64)[:, None, None, None]
        noise = rng.integers(-5, 6, size=(len(y), size, size, channels))
        return np.clip(base + noise, 0, 255).astype(np.uint8), y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return from_arrays(x_train, y_train, x_test, y_test, name="synth",
                       class_names=[f"c{k}" for k in range(n_classes)])


@pytest.fixture(scope="module")
def ds() -> ImageDataset:
    return _dataset()


def _source_class(task: Task, x: torch.Tensor) -> np.ndarray:
    """The source class of each task image, read from its mean gray level."""
    mean = torch.tensor(task.mean)[None, :, None, None]
    std = torch.tensor(task.std)[None, :, None, None]
    level = (x * std + mean).mean(dim=(1, 2, 3)).numpy() * 255.0
    return np.rint((level - 20) / 30).astype(int)


# -------------------------------------------------------------------------------------------
# make_task


def test_labels_are_remapped_to_task_order(ds: ImageDataset) -> None:
    task = make_task(ds, classes=(4, 1, 3), resolution=8)
    assert task.num_classes == 3 and task.class_names == ("c4", "c1", "c3")
    for x, y in ((task.x_train, task.y_train), (task.x_val, task.y_val),
                 (task.x_test, task.y_test)):
        assert y.dtype == torch.int64 and set(y.tolist()) == {0, 1, 2}
        source = np.array(task.spec.classes)[y.numpy()]
        assert np.array_equal(_source_class(task, x), source)


def test_sizes_and_stratified_val_split(ds: ImageDataset) -> None:
    task = make_task(ds, classes=(0, 2, 5), resolution=16, val_fraction=0.25)
    assert task.x_train.shape == (45, 3, 16, 16) and task.x_train.dtype == torch.float32
    assert task.x_val.shape == (15, 3, 16, 16) and task.x_test.shape == (30, 3, 16, 16)
    assert torch.bincount(task.y_train).tolist() == [15, 15, 15]
    assert torch.bincount(task.y_val).tolist() == [5, 5, 5]
    assert torch.bincount(task.y_test).tolist() == [10, 10, 10]
    assert task.channels == 3 and task.resolution == 16
    # splits are shuffled, not grouped by class
    assert task.y_train[:15].unique().numel() > 1


def test_defaults_use_all_classes_at_native_size(ds: ImageDataset) -> None:
    task = make_task(ds)
    assert task.spec.classes == tuple(range(6)) and task.resolution == 12
    assert task.spec.seed == 0 and task.x_train.shape[-2:] == (12, 12)


def test_caps_limit_images_per_class(ds: ImageDataset) -> None:
    task = make_task(ds, classes=(0, 1), resolution=8, max_train_per_class=8,
                     max_test_per_class=3)
    assert torch.bincount(task.y_train).tolist() == [6, 6]  # cap is train + val
    assert torch.bincount(task.y_val).tolist() == [2, 2]
    assert torch.bincount(task.y_test).tolist() == [3, 3]


def test_normalization_uses_train_statistics(ds: ImageDataset) -> None:
    task = make_task(ds, classes=(0, 3, 5), resolution=8)
    mean = task.x_train.mean(dim=(0, 2, 3))
    std = task.x_train.std(dim=(0, 2, 3), correction=0)
    assert torch.allclose(mean, torch.zeros(3), atol=1e-4)
    assert torch.allclose(std, torch.ones(3), atol=1e-4)
    assert len(task.mean) == len(task.std) == 3
    # the stored statistics are those of the 0..1 train pixels (3 levels near 20, 110, 170)
    assert task.mean[0] == pytest.approx((20 + 110 + 170) / 3 / 255, abs=0.01)
    # val/test use the same statistics, so their mean is near (not exactly) zero
    assert task.x_test.mean().abs() < 0.2


def test_resize_matches_torch_interpolate(ds: ImageDataset) -> None:
    task = make_task(ds, classes=(0, 1), resolution=5, seed=3)
    # recover a raw image by undoing normalization, then compare with interpolating it directly
    mean = torch.tensor(task.mean)[:, None, None]
    std = torch.tensor(task.std)[:, None, None]
    got = task.x_test * std + mean
    raw = torch.from_numpy(np.array(ds.x_test)).permute(0, 3, 1, 2).float() / 255
    want = F.interpolate(raw, size=(5, 5), mode="bilinear", antialias=True, align_corners=False)
    # every task test image equals one of the directly resized source test images
    diff = (got.flatten(1)[:, None] - want.flatten(1)[None]).abs().amax(dim=2)
    assert diff.min(dim=1).values.max() < 1e-5


def test_gray_dataset_gives_one_channel() -> None:
    digits = load_dataset("digits")
    task = make_task(digits, classes=(0, 1, 2), resolution=16)
    assert task.channels == 1 and task.x_train.shape[1:] == (1, 16, 16)


def test_same_spec_same_task_other_seed_other_task(ds: ImageDataset) -> None:
    a = make_task(ds, classes=(0, 1, 2), resolution=8, seed=1)
    b = make_task(ds, TaskSpec(classes=(0, 1, 2), resolution=8, seed=1))
    c = make_task(ds, classes=(0, 1, 2), resolution=8, seed=2)
    for key in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(a, key), getattr(b, key))
    assert a.key == b.key and a.name == b.name and a.key != c.key
    assert not torch.equal(a.x_val, c.x_val)


def test_a_class_contributes_the_same_images_whatever_its_companions(ds: ImageDataset) -> None:
    a = make_task(ds, classes=(0, 1), resolution=12, seed=4)
    b = make_task(ds, classes=(5, 0, 3), resolution=12, seed=4)

    def rows(task: Task, label: int) -> set[bytes]:
        return {(r * torch.tensor(task.std)[:, None, None] + torch.tensor(task.mean)[:, None, None])
                .mul(255).round().to(torch.uint8).numpy().tobytes()
                for r in task.x_val[task.y_val == label]}

    assert rows(a, 0) == rows(b, 1)


def test_describe_is_json_able(ds: ImageDataset) -> None:
    task = make_task(ds, classes=(1, 2), resolution=8)
    d = json.loads(json.dumps(task.describe()))
    assert d["dataset"] == "synth" and d["fingerprint"] == ds.fingerprint
    assert d["spec"]["classes"] == [1, 2] and d["num_classes"] == 2
    assert d["n_train"] + d["n_val"] == 40 and d["n_test"] == 20


# -------------------------------------------------------------------------------------------
# TaskSpec


def test_spec_round_trips_through_json_and_keys_are_stable() -> None:
    spec = TaskSpec(classes=(3, 1, 2), resolution=16, max_train_per_class=50, seed=7)
    back = TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and isinstance(back.classes, tuple)
    assert spec.key("abc") == back.key("abc")
    assert len(spec.key("abc")) == 64 and spec.key("abc") != spec.key("abd")
    assert spec.key("abc") != TaskSpec(classes=(1, 2, 3), resolution=16,
                                       max_train_per_class=50, seed=7).key("abc")
    with pytest.raises(ConfigError, match="unknown TaskSpec fields"):
        TaskSpec.from_dict({**spec.to_dict(), "colour": "red"})


@pytest.mark.parametrize("kwargs, needle", [
    ({"classes": (1,)}, "at least 2 classes"),
    ({"classes": (1, 2, 1)}, "duplicate class ids"),
    ({"classes": (0, 6)}, "out of range"),
    ({"classes": (0, -1)}, "out of range"),
    ({"resolution": 3}, "resolution"),
    ({"resolution": 513}, "resolution"),
    ({"val_fraction": 0.0}, "val_fraction"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"max_train_per_class": 1}, "max_train_per_class"),
])
def test_bad_specs_raise_dataset_error(ds: ImageDataset, kwargs: dict, needle: str) -> None:
    kwargs = {"classes": (0, 1), "resolution": 8, **kwargs}
    with pytest.raises(DatasetError, match=needle):
        make_task(ds, **kwargs)


def test_class_with_too_few_train_images_is_named() -> None:
    x = np.zeros((7, 4, 4), np.uint8)
    y = np.array([0, 0, 0, 1, 2, 2, 2])
    small = from_arrays(x, y, x, y, class_names=["a", "lonely", "c"])
    make_task(small, classes=(0, 2), resolution=4)
    with pytest.raises(DatasetError, match=r"class 1 \('lonely'\).* has 1 train image"):
        make_task(small, classes=(0, 1), resolution=4)


def test_class_with_too_few_train_images_names_the_file(tmp_path) -> None:
    path = tmp_path / "few.npz"
    np.savez(path, x_train=np.zeros((4, 4, 4), np.uint8), y_train=np.array([0, 0, 0, 1]),
             x_test=np.zeros((2, 4, 4), np.uint8), y_test=np.array([0, 1]))
    with pytest.raises(DatasetError, match=r"class 1 \('1'\) of .*few\.npz has 1 train image"):
        make_task(load_dataset(path), resolution=4)


def test_spec_and_keywords_together_are_refused(ds: ImageDataset) -> None:
    with pytest.raises(TypeError):
        make_task(ds, TaskSpec(classes=(0, 1), resolution=8), seed=2)


# -------------------------------------------------------------------------------------------
# TaskSampler


def test_sampler_is_deterministic_and_tasks_differ(ds: ImageDataset) -> None:
    a = TaskSampler(ds, n_way=3, resolutions=(8, 12), seed=5)
    b = TaskSampler(ds, n_way=3, resolutions=(8, 12), seed=5)
    specs = a.specs(40)
    assert specs == b.specs(40) and specs[7] == b.spec(7) == a.specs(3, start=6)[1]
    assert len({(s.classes, s.resolution, s.seed) for s in specs}) == 40
    assert {s.resolution for s in specs} == {8, 12}
    for s in specs:
        assert len(s.classes) == 3 and len(set(s.classes)) == 3
        assert all(0 <= c < ds.num_classes for c in s.classes)
    # every class gets drawn, and the draw order is kept (not always sorted)
    assert {c for s in specs for c in s.classes} == set(range(ds.num_classes))
    assert any(list(s.classes) != sorted(s.classes) for s in specs)
    assert TaskSampler(ds, n_way=3, resolutions=(8, 12), seed=6).specs(40) != specs


def test_sampler_sample_builds_the_spec(ds: ImageDataset) -> None:
    sampler = TaskSampler(ds, n_way=2, resolutions=(8,), max_train_per_class=6, seed=1)
    task = sampler.sample(3)
    ref = make_task(ds, sampler.spec(3))
    assert task.spec == sampler.spec(3) and task.key == ref.key
    assert torch.equal(task.x_train, ref.x_train)
    assert len(task.y_train) + len(task.y_val) == 12
    assert sampler.sample(4).key != task.key


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"n_way": 1}, ConfigError, "n_way"),
    ({"n_way": 7}, DatasetError, "n_way=7"),
    ({"resolutions": ()}, ConfigError, "resolutions"),
    ({"resolutions": (8, 2)}, ConfigError, "resolutions"),
    ({"seed": -1}, ConfigError, "seed"),
    ({"val_fraction": 1.5}, DatasetError, "val_fraction"),
])
def test_sampler_validates_arguments(ds: ImageDataset, kwargs: dict, error: type,
                                     needle: str) -> None:
    with pytest.raises(error, match=needle):
        TaskSampler(ds, **{"n_way": 3, **kwargs})


@pytest.mark.skipif(SHARED is None, reason="../shared/datasets not present")
@pytest.mark.shared
def test_sampler_on_shared_mnist() -> None:
    mnist = load_dataset(SHARED / "mnist.npz")  # type: ignore[operator]
    sampler = TaskSampler(mnist, n_way=5, resolutions=(16, 32), max_train_per_class=100,
                          max_test_per_class=50)
    task = sampler.sample(0)
    assert task.num_classes == 5 and len(task.y_train) + len(task.y_val) == 500
    assert len(task.y_test) == 250 and task.x_train.shape[1] == 1
