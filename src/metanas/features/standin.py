"""Meta-features for knowledge-base tasks that come without images (published tables).

A published source (:mod:`metanas.kb.sources`) has accuracies but no images, so its tasks'
meta-features are computed on a stand-in: a seeded subset of classes of another dataset at the
source's resolution (Tiny-ImageNet for ImageNet-derived sources). The size features
(``log10_n_train``, ``log2_classes``, ``log10_per_class``) are then set to the source's own
sizes, since those are known and matter most (how much data a cell is trained on).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from metanas.data import ImageDataset
from metanas.errors import DatasetError
from metanas.features.metafeatures import compute_meta_features
from metanas.kb.sources import PublishedSource
from metanas.tasks import make_task

__all__ = ["standin_classes", "standin_describer"]


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def standin_classes(num_classes: int, source: str, task: str, k: int, *,
                    seed: int = 0) -> tuple[tuple[int, ...], int]:
    """The ``k`` stand-in classes (of ``num_classes``) of published task ``task`` of
    ``source``, sorted, and the task's seed; deterministic, so the value network's
    meta-features and MetaD2A's image sets of one published task see the same classes."""
    if k > num_classes:
        raise DatasetError(f"the stand-in has {num_classes} classes; {source} tasks have {k}")
    s = _seed(seed, source, task)
    rng = np.random.default_rng(s)
    return tuple(int(c) for c in np.sort(rng.choice(num_classes, k, replace=False))), s


def standin_describer(
    dataset: ImageDataset, *, seed: int = 0, max_train_per_class: int = 100,
) -> Callable[[PublishedSource, dict[str, Any]], dict[str, float]]:
    """A ``describe(source, task)`` for :func:`metanas.kb.sources.import_source`.

    The stand-in task of a published task draws ``num_classes`` classes of ``dataset`` seeded
    by (``seed``, source, task name), at most ``max_train_per_class`` images each, at the
    source's resolution; deterministic, so a rebuilt knowledge base has the same features.
    """

    def describe(src: PublishedSource, task: dict[str, Any]) -> dict[str, float]:
        k = int(task["num_classes"])
        try:
            classes, s = standin_classes(dataset.num_classes, src.name, task["name"], k,
                                         seed=seed)
        except DatasetError as exc:
            raise DatasetError(f"stand-in {dataset.name}: {exc}") from None
        stand = make_task(dataset, classes=classes, resolution=int(task["resolution"]),
                          max_train_per_class=max_train_per_class, seed=s % 2**31)
        features = compute_meta_features(stand, seed=seed)
        n_train = src.sizes.get("train")
        if n_train:
            features["log10_n_train"] = math.log10(n_train)
            features["log10_per_class"] = math.log10(n_train / k)
        features["log2_classes"] = math.log2(k)
        return features

    return describe
