"""Fisher task embedding and distance: properties, and that similar tasks come out closer."""

from __future__ import annotations

import numpy as np
import pytest

from metanas.data import from_arrays, load_dataset
from metanas.errors import ConfigError
from metanas.features.fisher import (
    EmbeddingCache,
    ProbeConfig,
    fisher_distance,
    fisher_distances,
    fisher_embedding,
    probe_network,
)
from metanas.tasks import make_task

PROBE = ProbeConfig(steps=40, samples=96)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _digits_subset(ds, classes, seed):
    """The given digit classes as their own dataset, split differently from ``digits``."""
    m, mt = np.isin(ds.y_train, classes), np.isin(ds.y_test, classes)
    x = np.concatenate([ds.x_train[m], ds.x_test[mt]])
    y = np.concatenate([ds.y_train[m], ds.y_test[mt]])
    return from_arrays(x, y, seed=seed)


def _normalized(rng, n):
    v = rng.random(n)
    return v / v.sum()


def test_distance_is_symmetric_zero_on_identical_and_bounded():
    rng = np.random.default_rng(0)
    a, b = _normalized(rng, 50), _normalized(rng, 50)
    assert fisher_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    assert fisher_distance(a, b) == pytest.approx(fisher_distance(b, a))
    assert 0.0 < fisher_distance(a, b) < 1.0
    disjoint_a = np.r_[np.full(5, 0.2), np.zeros(5)]
    disjoint_b = np.r_[np.zeros(5), np.full(5, 0.2)]
    assert fisher_distance(disjoint_a, disjoint_b) == pytest.approx(1.0)
    rows = np.stack([_normalized(rng, 50) for _ in range(20)])
    d = fisher_distances(rows, a)
    assert d.shape == (20,) and np.all((d >= 0) & (d <= 1))
    with pytest.raises(ConfigError, match="same probe"):
        fisher_distances(rows, a[:10])


def test_embedding_is_normalized_deterministic_and_ignores_the_classifier(digits):
    three = make_task(digits, classes=(0, 1, 2), resolution=8, max_train_per_class=40, seed=0)
    five = make_task(digits, classes=(0, 1, 2, 3, 4), resolution=8, max_train_per_class=40,
                     seed=0)
    quick = ProbeConfig(steps=5, samples=32)
    e3, e5 = fisher_embedding(three, quick), fisher_embedding(five, quick)
    net = probe_network(quick, 3)
    features = sum(p.numel() for k, p in net.named_parameters() if not k.startswith("classifier"))
    assert e3.shape == e5.shape == (features,)  # comparable across class counts
    assert np.all(e3 >= 0) and e3.sum() == pytest.approx(1.0)
    assert np.array_equal(e3, fisher_embedding(three, quick))
    # the feature layers start from the same weights whatever the class count
    a, b = probe_network(PROBE, 3), probe_network(PROBE, 7)
    assert all(np.array_equal(pa.detach(), pb.detach()) for (ka, pa), (_, pb)
               in zip(a.named_parameters(), b.named_parameters(), strict=True)
               if not ka.startswith("classifier"))


@pytest.mark.slow
def test_tasks_of_the_same_classes_are_closer_than_other_data(digits):
    rng = np.random.default_rng(0)
    same_a = make_task(digits, classes=(3, 4, 5), resolution=8, max_train_per_class=60, seed=0)
    same_b = make_task(_digits_subset(digits, (3, 4, 5), seed=1), resolution=8, seed=1)
    other = make_task(digits, classes=(6, 7, 8), resolution=8, max_train_per_class=60, seed=0)
    x = rng.integers(0, 256, (240, 8, 8, 1)).astype(np.uint8)
    noise = make_task(from_arrays(x, rng.integers(0, 3, 240), seed=0), resolution=8, seed=0)
    ea, eb, eo, en = (fisher_embedding(t, PROBE) for t in (same_a, same_b, other, noise))
    same = fisher_distance(ea, eb)
    assert same < fisher_distance(ea, en)
    assert same < fisher_distance(ea, eo)
    assert same < fisher_distance(eb, en)


def test_cache_round_trip_and_other_probe_starts_empty(tmp_path):
    path = tmp_path / "c.safetensors"
    cache = EmbeddingCache(path, PROBE)
    vec = _normalized(np.random.default_rng(1), 30)
    cache.put("task-a", vec)
    again = EmbeddingCache(path, PROBE)
    assert np.allclose(again.get("task-a"), vec, atol=1e-7)
    assert again.get("task-b") is None
    assert EmbeddingCache(path, ProbeConfig(steps=41)).get("task-a") is None
    path.write_bytes(b"not a safetensors file")
    assert EmbeddingCache(path, PROBE).get("task-a") is None


def test_probe_config_validation_and_hash():
    assert ProbeConfig().hash == ProbeConfig().hash != ProbeConfig(steps=1).hash
    with pytest.raises(ConfigError):
        ProbeConfig(samples=0)
    with pytest.raises(ConfigError):
        ProbeConfig(lr=0)
