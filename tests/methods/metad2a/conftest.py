"""A tiny knowledge base of *image* tasks whose best cell depends on the images.

Source: 12 classes of 16x16 gray images, 6 smooth (low-frequency waves) and 6 rough (pixel
noise textures). A task draws 4 classes; its roughness is the fraction of rough classes, and
its cells' accuracies follow the rule of ``tests/methods/conftest.py``: rough tasks reward 3x3
convolutions, smooth ones pooling and skips. A hand-made 8-d feature function (brightness,
contrast, gradients, quadrant means) stands in for the image extractor, which keeps the tests
fast and exercises the pluggable-extractor path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metanas.data import load_dataset
from metanas.kb import KnowledgeBase
from metanas.methods.metad2a import FeatureExtractor
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import TaskSpec
from metanas.threads import single_threaded

N_CLASSES = 12
ROUGH = set(range(6, 12))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: on a busy machine a thread pool only spin-waits (10x slower)."""
    with single_threaded():
        yield


def accuracy_rule(arch: NB201Arch, roughness: float) -> float:
    ops = np.array(arch.op_indices)
    conv = np.sum(ops == 3) + 0.5 * np.sum(ops == 2)
    smooth = np.sum(ops == 4) + 0.5 * np.sum(ops == 1)
    w = np.tanh(3 * (roughness - 0.5))
    return float(0.5 + 0.04 * w * (conv - smooth) - 0.01 * np.sum(ops == 0))


def _images(c: int, n: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:16, 0:16] / 16.0
    out = []
    for _ in range(n):
        if c in ROUGH:
            base = rng.uniform(0, 1, (16, 16)) * (0.5 + 0.08 * (c - 6))
            img = 0.25 + base
        else:
            f = 0.5 + 0.25 * c
            img = 0.5 + 0.3 * np.sin(2 * np.pi * (f * xx + 0.3 * c * yy) + rng.uniform(0, 6))
        out.append(np.clip(img, 0, 1))
    return (np.stack(out)[..., None] * 255).astype(np.uint8)


def stats_features(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) in [0, 1] -> (N, 8): mean, std, |dx|, |dy|, four quadrant means."""
    g = x.mean(1)
    s = g.shape[-1] // 2
    quads = [g[:, :s, :s], g[:, :s, s:], g[:, s:, :s], g[:, s:, s:]]
    cols = [g.mean((1, 2)), g.std((1, 2)), (g[:, :, 1:] - g[:, :, :-1]).abs().mean((1, 2)),
            (g[:, 1:] - g[:, :-1]).abs().mean((1, 2)), *[q.mean((1, 2)) for q in quads]]
    return torch.stack(cols, 1) * 4


def stats_extractor() -> FeatureExtractor:
    return FeatureExtractor(stats_features, input_size=16, name="test-stats")


@pytest.fixture(scope="session")
def image_source(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    xs, ys, xt, yt = [], [], [], []
    for c in range(N_CLASSES):
        xs.append(_images(c, 30, rng))
        ys += [c] * 30
        xt.append(_images(c, 6, rng))
        yt += [c] * 6
    path = tmp_path_factory.mktemp("src") / "synthetic-images.npz"
    np.savez(path, x_train=np.concatenate(xs), y_train=np.array(ys),
             x_test=np.concatenate(xt), y_test=np.array(yt))
    return str(path)


@pytest.fixture(scope="session")
def image_kb(tmp_path_factory, image_source) -> str:
    ds = load_dataset(image_source, progress=False)
    path = tmp_path_factory.mktemp("kb") / "images.db"
    rng = np.random.default_rng(1)
    with KnowledgeBase(path) as kb:
        for t in range(24):
            n_rough = int(rng.choice([0, 1, 3, 4]))
            classes = [int(c) for c in rng.choice(6, 4 - n_rough, replace=False)]
            classes += [int(c) + 6 for c in rng.choice(6, n_rough, replace=False)]
            spec = TaskSpec(classes=tuple(classes), resolution=16, max_train_per_class=20, seed=t)
            tid = kb.add_task(spec.key(ds.fingerprint), name=f"img-{t}",
                              source="synthetic-images", fingerprint=ds.fingerprint,
                              classes=classes, resolution=16, channels=1, num_classes=4,
                              sizes={"train": 64, "val": 16, "test": 24}, seed=t,
                              spec=spec.to_dict())
            for _ in range(20):
                arch = NB201Arch.sample(rng)
                aid = kb.add_architecture(arch.to_string(), canonical=arch.canonical_hash())
                acc = accuracy_rule(arch, n_rough / 4) + rng.normal(0, 0.004)
                kb.add_evaluation(tid, aid, recipe="synthetic", recipe_hash="s", seed=0,
                                  metrics={"val_acc": acc, "test_acc": acc})
    return str(path)


TINY = dict(hidden=16, heads=2, latent=16, gen_hidden=16, graph_hidden=16, graph_out=16,
            head=32, images_per_class=5, pool_per_class=10, gen_epochs=20, pred_epochs=80,
            eval_every=10, eval_resamples=2, holdout=0.2, refit=False, pred_lr=3e-3,
            tasks_per_batch=4, gen_lr=3e-3)
