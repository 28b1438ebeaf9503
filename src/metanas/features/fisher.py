"""Fisher task embedding and the Fisher task distance (Le, Soltani, Ravier, Tarokh 2021).

A task is described by how one fixed *probe* network uses its weights on that task: the probe
(a fixed NB201 cell, fixed size, fixed initialisation seed) is trained briefly on the task, then
the diagonal of its empirical Fisher information is accumulated, normalized to sum 1. Two tasks
are close when the same weights matter for both. The distance between embeddings ``F_a`` and
``F_b`` is ``1/sqrt(2) * ||sqrt(F_a) - sqrt(F_b)||`` (the Hellinger distance of the two
normalized diagonals), which lies in [0, 1]: 0 for identical embeddings, 1 for disjoint support.

Choices (the paper leaves them open; see docs/fisher.md):

* probe: NB201Network of :data:`PROBE_CELL` with C=4, N=1, at the task's own resolution (the
  resolution it is searched or was measured at, so resolution is part of what is compared);
  gray images are repeated to 3 channels, so gray and colour tasks share one stem;
* the classifier depends on the number of classes and is excluded: only the shared feature
  layers (stem, cells, reductions, final BN) are embedded. Building the classifier last keeps
  the feature layers' initialisation identical for every class count;
* *empirical* Fisher, per sample: squared gradients of the cross-entropy with the true labels,
  one sample at a time (``torch.func.vmap``), in eval mode (BatchNorm uses its running
  statistics, so samples do not interact), summed over ``samples`` training images;
* training: ``steps`` SGD steps (momentum, cosine), no augmentation, batch order from ``seed``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metanas.errors import CheckpointError, ConfigError
from metanas.paths import atomic_write
from metanas.spaces.nb201 import NB201Network, parse
from metanas.tasks import Task
from metanas.threads import single_threaded

__all__ = [
    "PROBE_CELL", "EmbeddingCache", "ProbeConfig", "fisher_distance", "fisher_distances",
    "fisher_embedding", "probe_network",
]

PROBE_CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
"""Every op type but ``none``, so the Fisher sees 3x3 and 1x1 convolutions, skip and pooling."""
PROBE_CHANNELS = 3
CACHE_FORMAT = "metanas.fisher-cache/1"


@dataclass(frozen=True)
class ProbeConfig:
    """Everything that determines a task's embedding (hashed into cache keys): the fixed
    probe network (``cell``, ``C``, ``N``; its weights from ``init_seed``, the same for every
    task, so embeddings compare), ``steps`` of SGD that fit it to the task, and the
    ``samples`` images whose per-sample gradients give the diagonal Fisher information
    (``seed``: batch order and samples)."""

    cell: str = PROBE_CELL
    C: int = 4
    N: int = 1
    steps: int = 200
    """SGD steps that fit the probe to the task (0: the Fisher of the initial weights)."""
    batch_size: int = 64
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 5e-4
    samples: int = 256
    """Images whose per-sample gradients are averaged into the diagonal Fisher information."""
    init_seed: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        parse(self.cell)
        for name in ("C", "N", "batch_size", "samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"probe {name} must be >= 1, got {getattr(self, name)!r}")
        if self.steps < 0:
            raise ConfigError(f"probe steps must be >= 0, got {self.steps!r}")
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"probe lr must be > 0, got {self.lr!r}")

    @property
    def hash(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict) -> ProbeConfig:
        try:
            return cls(**d)
        except TypeError as exc:
            raise ConfigError(f"bad probe config {d!r}: {exc}") from None


def probe_network(config: ProbeConfig, num_classes: int) -> NB201Network:
    """The probe with its fixed initialisation (feature layers independent of the class count)."""
    torch.manual_seed(config.init_seed)
    return NB201Network(config.cell, C=config.C, N=config.N, in_channels=PROBE_CHANNELS,
                        num_classes=num_classes)


def _three_channels(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, PROBE_CHANNELS, -1, -1) if x.shape[1] == 1 else x


def _feature_params(model: NB201Network) -> dict[str, torch.Tensor]:
    return {k: p for k, p in model.named_parameters() if not k.startswith("classifier.")}


def fisher_embedding(task: Task, config: ProbeConfig | None = None) -> np.ndarray:
    """The normalized diagonal empirical Fisher of the probe's feature layers on ``task``.

    Deterministic in ``config`` (CPU, one thread); returns float64, non-negative, sum 1.
    """
    config = config or ProbeConfig()
    if task.channels not in (1, PROBE_CHANNELS):
        raise ConfigError(f"the Fisher probe takes 1- or 3-channel images, got {task.channels}")
    x, y = _three_channels(task.x_train), task.y_train
    if len(y) < 2:
        raise ConfigError(f"task {task.name} has {len(y)} training images; the probe needs 2")
    with single_threaded():  # small convolutions: a busy pool only waits (metanas.threads)
        model = probe_network(config, task.num_classes)
        _train_probe(model, x, y, config)
        fisher = _empirical_fisher(model, x, y, config)
    total = fisher.sum()
    if not np.isfinite(total) or total <= 0:
        raise ConfigError(f"the Fisher embedding of {task.name} is degenerate (sum {total})")
    return fisher / total


def _train_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: ProbeConfig) -> None:
    if config.steps == 0:
        return
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)
    gen = torch.Generator().manual_seed(config.seed)
    batch = min(config.batch_size, len(y))
    order = torch.randperm(len(y), generator=gen)
    pos = 0
    model.train()
    for _ in range(config.steps):
        if pos + batch > len(y):
            order, pos = torch.randperm(len(y), generator=gen), 0
        idx = order[pos:pos + batch]
        pos += batch
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


def _empirical_fisher(model: NB201Network, x: torch.Tensor, y: torch.Tensor,
                      config: ProbeConfig, chunk: int = 64) -> np.ndarray:
    """Sum over samples of the squared per-sample gradient of the true-label cross-entropy."""
    from torch.func import functional_call, grad, vmap

    model.eval()
    params = {k: p.detach() for k, p in _feature_params(model).items()}
    rest = {k: p.detach() for k, p in model.named_parameters() if k not in params}
    buffers = {k: b.detach() for k, b in model.named_buffers()}

    def loss(p, xi, yi):
        out = functional_call(model, ({**p, **rest}, buffers), (xi[None],))
        return F.cross_entropy(out, yi[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    gen = torch.Generator().manual_seed(config.seed + 1)
    pick = torch.randperm(len(y), generator=gen)[: config.samples]
    total = {k: torch.zeros_like(p, dtype=torch.float64) for k, p in params.items()}
    for start in range(0, len(pick), chunk):
        idx = pick[start:start + chunk]
        grads = per_sample(params, x[idx], y[idx])
        for k, g in grads.items():
            total[k] += g.double().pow(2).sum(0)
    return torch.cat([total[k].flatten() for k in sorted(total)]).numpy()


def fisher_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1/sqrt(2) * ||sqrt(a) - sqrt(b)||`` for normalized embeddings: in [0, 1], symmetric."""
    return float(fisher_distances(np.asarray(a)[None], b)[0])


def fisher_distances(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Distance of ``query`` to each row of ``matrix`` (rows: normalized embeddings)."""
    m = np.sqrt(np.clip(np.asarray(matrix, np.float64), 0, None))
    q = np.sqrt(np.clip(np.asarray(query, np.float64), 0, None))
    if m.ndim != 2 or q.shape != m.shape[1:]:
        raise ConfigError(f"embeddings of different sizes ({q.shape} vs rows of {m.shape}); "
                          "were they made with the same probe?")
    d = np.sqrt(0.5 * np.sum((m - q[None]) ** 2, axis=1))
    return np.clip(d, 0.0, 1.0)


class EmbeddingCache:
    """Embeddings of knowledge-base tasks by task key, for one probe config, in one file.

    ``cache_dir()/fisher/<probe hash>.safetensors`` by default: meta-training computes a task's
    embedding once, and every later meta-training (another method, a rerun after an
    interruption) reuses it. Entries are float32; the file is rewritten atomically.
    """

    def __init__(self, path: str | os.PathLike, config: ProbeConfig) -> None:
        self.path = Path(path)
        self.config = config
        self.entries: dict[str, np.ndarray] = {}
        if self.path.is_file():
            self._read()

    @classmethod
    def default(cls, config: ProbeConfig) -> EmbeddingCache:
        from metanas.paths import cache_dir

        return cls(cache_dir() / "fisher" / f"{config.hash}.safetensors", config)

    def _read(self) -> None:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(self.path), framework="np") as fh:
                meta = fh.metadata() or {}
                if meta.get("format") != CACHE_FORMAT or meta.get("probe_hash") != self.config.hash:
                    return  # another probe or format: start empty, overwrite on save
                self.entries = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError):
            self.entries = {}  # unreadable cache entry: a miss, rebuilt

    def get(self, key: str) -> np.ndarray | None:
        value = self.entries.get(key)
        return None if value is None else value.astype(np.float64)

    def put(self, key: str, embedding: np.ndarray) -> None:
        self.entries[key] = np.asarray(embedding, np.float32)
        self.save()

    def save(self) -> None:
        from safetensors import SafetensorError
        from safetensors.numpy import save_file

        meta = {"format": CACHE_FORMAT, "probe_hash": self.config.hash,
                "probe": json.dumps(asdict(self.config))}
        try:
            atomic_write(self.path, lambda tmp: save_file(dict(self.entries), tmp,
                                                          metadata=meta))
        except (OSError, SafetensorError) as exc:
            raise CheckpointError(f"cannot write Fisher cache {self.path}: {exc}") from None
