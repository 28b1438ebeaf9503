"""Tasks: a class subset of a dataset, resized and normalized, with train/val/test tensors.

A :class:`TaskSpec` plus a dataset fingerprint determines a task exactly, so the pair's
:meth:`TaskSpec.key` can name cached results and the spec can be shipped to worker processes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from metanas.data.sources import ImageDataset, split_count
from metanas.errors import ConfigError, DatasetError

MIN_RESOLUTION = 4
MAX_RESOLUTION = 512
#: Images resized per interpolate call; bounds the float32 working memory.
_RESIZE_CHUNK = 1024
#: Part of every task key, bumped if task construction changes so old cached results miss.
_KEY_VERSION = 1
# Independent random streams per (seed, class): which images a class contributes does not
# depend on which other classes share the task. The leading tag keeps them apart from the
# streams of other modules (e.g. the sampler) that derive from the same seed.
_STREAM_TAG = 1
_STREAM_TRAIN, _STREAM_TEST, _STREAM_SHUFFLE = 0, 1, 2


@dataclass(frozen=True)
class TaskSpec:
    """Everything that determines a task; JSON-able so it can be stored and sent to workers.

    ``max_train_per_class`` caps the images a class takes from the source's train split, before
    the validation part is carved from them (so the cap is the labelled budget: train + val).
    """

    classes: tuple[int, ...]
    resolution: int
    max_train_per_class: int | None = None
    max_test_per_class: int | None = None
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        classes = tuple(_as_int(c, "classes") for c in self.classes)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "resolution", _as_int(self.resolution, "resolution"))
        object.__setattr__(self, "seed", _as_int(self.seed, "seed"))
        object.__setattr__(self, "val_fraction", float(self.val_fraction))
        if len(classes) < 2:
            raise DatasetError(f"a task needs at least 2 classes, got classes={list(classes)}")
        if len(set(classes)) != len(classes):
            dup = sorted({c for c in classes if classes.count(c) > 1})
            raise DatasetError(f"classes has duplicate class ids {dup}")
        if not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION:
            raise DatasetError(f"resolution must be in [{MIN_RESOLUTION}, {MAX_RESOLUTION}] px, "
                               f"got {self.resolution}")
        if not 0.0 < self.val_fraction < 1.0:
            raise DatasetError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.seed < 0:
            raise DatasetError(f"seed must be non-negative, got {self.seed}")
        for name, low in (("max_train_per_class", 2), ("max_test_per_class", 1)):
            value = getattr(self, name)
            if value is not None:
                value = _as_int(value, name)
                if value < low:
                    raise DatasetError(f"{name} must be at least {low}, got {value}")
                object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown TaskSpec fields {unknown} (known: {sorted(known)})")
        missing = sorted(k for k in ("classes", "resolution") if k not in d)
        if missing:
            raise ConfigError(f"TaskSpec dict is missing {missing}")
        return cls(**{**d, "classes": tuple(d["classes"])})

    def key(self, fingerprint: str) -> str:
        """sha256 hex naming this spec applied to the dataset with ``fingerprint``."""
        blob = json.dumps({"v": _KEY_VERSION, "fingerprint": fingerprint, "spec": self.to_dict()},
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class Task:
    """A dataset ready to train on: a class subset with remapped labels, resized and normalized.

    Tensors are float32 (N, C, R, R), normalized with the train split's per-channel mean/std
    (``mean``/``std`` are those statistics on the 0..1 pixel scale); labels are int64 task labels,
    task label ``i`` being source class ``spec.classes[i]``.
    """

    name: str
    spec: TaskSpec
    dataset_name: str
    fingerprint: str
    class_names: tuple[str, ...]
    channels: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def resolution(self) -> int:
        return self.spec.resolution

    @property
    def key(self) -> str:
        return self.spec.key(self.fingerprint)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for logs and knowledge-base records)."""
        return {
            "name": self.name,
            "dataset": self.dataset_name,
            "fingerprint": self.fingerprint,
            "key": self.key,
            "spec": self.spec.to_dict(),
            "channels": self.channels,
            "num_classes": self.num_classes,
            "resolution": self.resolution,
            "n_train": int(len(self.y_train)),
            "n_val": int(len(self.y_val)),
            "n_test": int(len(self.y_test)),
        }

    def __repr__(self) -> str:
        return (f"Task(name={self.name!r}, classes={self.num_classes}, train={len(self.y_train)}, "
                f"val={len(self.y_val)}, test={len(self.y_test)}, "
                f"image={self.resolution}x{self.resolution}x{self.channels})")


def make_task(dataset: ImageDataset, spec: TaskSpec | None = None, **spec_kwargs: Any) -> Task:
    """Build the task ``spec`` describes (or one from ``spec_kwargs``) on ``dataset``.

    Defaults without a spec: all classes, the dataset's image height as resolution, seed 0.
    Non-square images are squashed to R x R. Sampling is deterministic in ``spec.seed``.
    """
    if spec is None:
        spec_kwargs.setdefault("classes", tuple(range(dataset.num_classes)))
        spec_kwargs.setdefault("resolution", dataset.image_size[0])
        spec = TaskSpec(**{**spec_kwargs, "classes": tuple(spec_kwargs["classes"])})
    elif spec_kwargs:
        raise TypeError(f"make_task() takes a spec or spec keywords, not both "
                        f"(got {sorted(spec_kwargs)})")
    bad = [c for c in spec.classes if not 0 <= c < dataset.num_classes]
    if bad:
        raise DatasetError(f"class ids {bad} out of range for {dataset.name} "
                           f"({dataset.num_classes} classes, ids 0..{dataset.num_classes - 1})")

    train_idx, val_idx, test_idx = [], [], []
    for c in spec.classes:
        rng = _rng(spec.seed, c, _STREAM_TRAIN)
        idx = rng.permutation(np.flatnonzero(dataset.y_train == c))
        if spec.max_train_per_class is not None:
            idx = idx[: spec.max_train_per_class]
        if len(idx) < 2:
            raise DatasetError(
                f"class {c} ({dataset.class_names[c]!r}) of {dataset.origin} has {len(idx)} train "
                f"image(s); a task needs at least 2 per class (one for train, one for val)")
        n_val = split_count(len(idx), spec.val_fraction)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
        rng = _rng(spec.seed, c, _STREAM_TEST)
        idx = rng.permutation(np.flatnonzero(dataset.y_test == c))
        if spec.max_test_per_class is not None:
            idx = idx[: spec.max_test_per_class]
        test_idx.append(idx)
    if not sum(len(i) for i in test_idx):
        raise DatasetError(f"none of classes {list(spec.classes)} has test images in "
                           f"{dataset.name}")

    remap = np.full(dataset.num_classes, -1, np.int64)
    remap[list(spec.classes)] = np.arange(len(spec.classes))
    shuffle = _rng(spec.seed, 0, _STREAM_SHUFFLE)
    splits = {}
    for split, parts, x, y in (("train", train_idx, dataset.x_train, dataset.y_train),
                               ("val", val_idx, dataset.x_train, dataset.y_train),
                               ("test", test_idx, dataset.x_test, dataset.y_test)):
        idx = shuffle.permutation(np.concatenate(parts))
        splits[split] = (_resize(x, idx, spec.resolution), torch.from_numpy(remap[y[idx]]))

    x_train = splits["train"][0]
    var, mean = torch.var_mean(x_train, dim=(0, 2, 3), correction=0)
    std = var.sqrt().clamp_min(1e-6)  # a constant channel stays constant instead of dividing by 0
    for xs, _ in splits.values():
        xs.sub_(mean[None, :, None, None]).div_(std[None, :, None, None])

    key = spec.key(dataset.fingerprint)
    name = f"{dataset.name}-{len(spec.classes)}way-{spec.resolution}px-{key[:8]}"
    return Task(
        name=name, spec=spec, dataset_name=dataset.name, fingerprint=dataset.fingerprint,
        class_names=tuple(dataset.class_names[c] for c in spec.classes),
        channels=dataset.channels,
        x_train=splits["train"][0], y_train=splits["train"][1],
        x_val=splits["val"][0], y_val=splits["val"][1],
        x_test=splits["test"][0], y_test=splits["test"][1],
        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
    )


def _resize(x: np.ndarray, idx: np.ndarray, resolution: int) -> torch.Tensor:
    """Selected uint8 NHWC images as float32 NCHW in [0, 1] at resolution x resolution."""
    n, h, w, c = len(idx), *x.shape[1:]
    out = torch.empty((n, c, resolution, resolution), dtype=torch.float32)
    for start in range(0, n, _RESIZE_CHUNK):
        sel = idx[start:start + _RESIZE_CHUNK]
        chunk = torch.from_numpy(np.ascontiguousarray(x[sel])).permute(0, 3, 1, 2).float()
        chunk.div_(255.0)
        if (h, w) != (resolution, resolution):
            chunk = F.interpolate(chunk, size=(resolution, resolution), mode="bilinear",
                                  antialias=True, align_corners=False)
        out[start:start + len(sel)] = chunk
    return out


def _rng(seed: int, cls: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM_TAG, cls, stream)))


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise DatasetError(f"{name} must be an integer, got {value!r}")
    return int(value)


def proxy_resolution(side: int, options: tuple[int, ...] | list[int] = (16, 32)) -> int:
    """The option closest (in log scale) to an image side: the resolution a method builds
    its task at (a rule about tasks, so it lives here, not with the methods)."""
    return min(options, key=lambda r: (abs(math.log2(r) - math.log2(side)), r))
