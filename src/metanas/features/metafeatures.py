"""Task meta-features: a fixed-length description of a task computed without training a model.

Used by the task-aware value network (and available to any method). Three groups:

* size and shape: training images, classes, images per class, resolution, channels;
* pixel statistics and class balance: raw pixel mean/std, label entropy, min/max class ratio;
* training-free difficulty/structure descriptors, all closed-form on a seeded subsample of at
  most ``max_samples`` training images downsampled to 16x16 and projected on their top principal
  components: the fraction of components needed for 90% of the variance (intrinsic
  dimension), the Fisher discriminant ratio trace(S_b)/trace(S_w), the chance-normalized
  accuracy of a nearest-class-mean classifier and of a 1-nearest-neighbour classifier on the
  validation split, and image roughness (mean absolute difference of neighbouring pixels in
  standardized images; high for texture-like data, low for smooth strokes).

The nearest-mean and 1-NN accuracies capture how separable the classes are in pixel space,
which is what makes some tasks favour wider receptive fields or more convolutions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from metanas.tasks import Task
from metanas.threads import single_threaded

FEATURE_NAMES: tuple[str, ...] = (
    "log10_n_train",
    "log2_classes",
    "log10_per_class",
    "log2_resolution",
    "channels",
    "pixel_mean",
    "pixel_std",
    "label_entropy",
    "class_ratio",
    "pca_dim90",
    "fisher_ratio",
    "centroid_acc",
    "knn1_acc",
    "roughness",
)


def _flat(x: torch.Tensor, side: int = 16) -> np.ndarray:
    if x.shape[-1] != side:
        x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
    return x.flatten(1).double().numpy()


def _chance_normalized(acc: float, k: int) -> float:
    return (acc - 1.0 / k) / (1.0 - 1.0 / k)


def compute_meta_features(task: Task, *, max_samples: int = 1000, seed: int = 0) -> dict[str, float]:
    """All of :data:`FEATURE_NAMES` for ``task`` (deterministic in ``seed``); small linear
    algebra, so it runs single-threaded (see :mod:`metanas.threads`)."""
    with single_threaded():
        return _compute(task, max_samples, seed)


def _principal_axes(x: np.ndarray, n_comp: int) -> tuple[np.ndarray, np.ndarray]:
    """Squared singular values of the centred ``x`` (n, d), largest first, and its top
    ``n_comp`` right singular vectors (rows): the SVD's, from the eigendecomposition of the
    smaller Gram matrix (3-8x faster than ``np.linalg.svd`` for a search's 1,000 x 256)."""
    x = x.astype(np.float64, copy=False)
    n, d = x.shape
    if d <= n:
        var, vecs = np.linalg.eigh(x.T @ x)
        var, vecs = np.clip(var[::-1], 0.0, None), vecs[:, ::-1]
        return var, vecs[:, :n_comp].T
    var, u = np.linalg.eigh(x @ x.T)
    var, u = np.clip(var[::-1], 0.0, None), u[:, ::-1]
    k = min(n_comp, int((var > var[0] * 1e-12).sum()) if var[0] > 0 else 0)
    v = (x.T @ u[:, :k]) / np.sqrt(var[:k])  # right singular vectors of the kept components
    return var, v.T


def _compute(task: Task, max_samples: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    k = task.num_classes
    y_tr = task.y_train.numpy()
    counts = np.bincount(y_tr, minlength=k).astype(float)
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum() / math.log(k))

    idx_tr = np.sort(rng.permutation(len(y_tr))[:max_samples])
    idx_va = np.sort(rng.permutation(len(task.y_val))[: max_samples // 2])
    xtr = _flat(task.x_train[idx_tr])
    xva = _flat(task.x_val[idx_va])
    ytr, yva = y_tr[idx_tr], task.y_val.numpy()[idx_va]

    mu = xtr.mean(0)
    xtr_c, xva_c = xtr - mu, xva - mu
    var, vt = _principal_axes(xtr_c, 50)
    if var.sum() > 0:
        cum = np.cumsum(var) / var.sum()
        pca_dim90 = float((np.searchsorted(cum, 0.9) + 1) / len(var))
    else:  # constant images: no variance to explain
        pca_dim90 = 0.0
    ztr, zva = xtr_c @ vt.T, xva_c @ vt.T

    classes = np.unique(ytr)
    centroids = np.stack([ztr[ytr == c].mean(0) for c in classes])
    between = sum((ytr == c).sum() * ((centroids[i]) ** 2).sum() for i, c in enumerate(classes))
    within = sum(((ztr[ytr == c] - centroids[i]) ** 2).sum() for i, c in enumerate(classes))
    fisher = float(between / max(within, 1e-12))

    d_cent = ((zva[:, None, :] - centroids[None]) ** 2).sum(-1)
    centroid_acc = float((classes[d_cent.argmin(1)] == yva).mean()) if len(yva) else 0.0
    d_nn = (zva**2).sum(1)[:, None] - 2 * zva @ ztr.T + (ztr**2).sum(1)[None]
    knn1_acc = float((ytr[d_nn.argmin(1)] == yva).mean()) if len(yva) else 0.0

    x_img = task.x_train[idx_tr]
    rough = 0.5 * (
        (x_img[..., 1:, :] - x_img[..., :-1, :]).abs().mean()
        + (x_img[..., :, 1:] - x_img[..., :, :-1]).abs().mean()
    )
    n_train = len(y_tr)
    return {
        "log10_n_train": math.log10(n_train),
        "log2_classes": math.log2(k),
        "log10_per_class": math.log10(n_train / k),
        "log2_resolution": math.log2(task.resolution),
        "channels": float(task.channels),
        "pixel_mean": float(np.mean(task.mean)),
        "pixel_std": float(np.mean(task.std)),
        "label_entropy": entropy,
        "class_ratio": float(counts.min() / counts.max()),
        "pca_dim90": pca_dim90,
        "fisher_ratio": fisher,
        "centroid_acc": _chance_normalized(centroid_acc, k),
        "knn1_acc": _chance_normalized(knn1_acc, k),
        "roughness": float(rough),
    }


def feature_vector(features: dict[str, float], names: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
    """The features in a fixed order; a missing name is a programming error, not user input."""
    return np.array([features[n] for n in names], dtype=np.float32)
