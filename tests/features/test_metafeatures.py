from __future__ import annotations

import math

import numpy as np

from metanas.data import from_arrays, load_dataset
from metanas.features.metafeatures import FEATURE_NAMES, compute_meta_features, feature_vector
from metanas.tasks import make_task


def test_all_features_finite_and_deterministic():
    task = make_task(load_dataset("digits"), resolution=16, seed=0)
    a = compute_meta_features(task, seed=0)
    b = compute_meta_features(task, seed=0)
    assert list(a) == list(FEATURE_NAMES)
    assert a == b
    assert all(math.isfinite(v) for v in a.values())
    assert a["log2_classes"] == math.log2(10) and a["channels"] == 1.0
    assert a["log2_resolution"] == 4.0
    assert 0.9 < a["label_entropy"] <= 1.0
    assert feature_vector(a).shape == (len(FEATURE_NAMES),)


def test_difficulty_descriptors_separate_easy_from_random_labels():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
    for c in range(4):  # each class lights up its own quadrant
        r, q = divmod(c, 2)
        x[y == c, r * 4:(r + 1) * 4, q * 4:(q + 1) * 4] += 180
    easy = make_task(from_arrays(x, y, seed=0), resolution=8, seed=0)
    noise = make_task(from_arrays(x, rng.permutation(y), seed=0), resolution=8, seed=0)
    fe, fn = compute_meta_features(easy), compute_meta_features(noise)
    assert fe["centroid_acc"] > 0.8 and fe["knn1_acc"] > 0.8
    assert abs(fn["centroid_acc"]) < 0.25
    assert fe["fisher_ratio"] > 5 * fn["fisher_ratio"]


def test_class_balance_features():
    rng = np.random.default_rng(1)
    y = np.array([0] * 300 + [1] * 60)
    x = rng.integers(0, 255, (len(y), 8, 8)).astype(np.uint8)
    f = compute_meta_features(make_task(from_arrays(x, y, seed=0), resolution=8, seed=0))
    assert 0.15 < f["class_ratio"] < 0.25
    assert f["label_entropy"] < 0.8
