"""Task-aware value network (Kokiopoulou et al., "Fast Task-Aware Architecture Inference").

A predictor f(task meta-features, architecture) of how well an architecture does on a task,
trained jointly over the knowledge base's tasks. The architecture enters as a continuous vector
(per-edge op probabilities, 6x5): one-hot when training, a softmax over free logits at search time,
so a new task is searched by gradient ascent on the logits with the network frozen (several
restarts, then argmax per edge). NB201 has only 15,625 cells, so exhaustive scoring is also
offered, both as a mode and as a check of the gradient search.

Choices made here (the paper leaves them open):

* target: per-task z-score of validation accuracy by default (``target="zscore"``). Ranking
  within a task is what search needs; the z-score removes task difficulty, which the meta-
  features would otherwise have to explain first. ``target="raw"`` predicts accuracy itself.
* loss: ``mse`` (paper), ``rank`` (pairwise logistic loss over pairs of the same task, from the
  follow-up "Ranking architectures using meta-learning") or ``mse+rank``.
* features with (near) zero variance over the knowledge base carry no information and would
  extrapolate arbitrarily, so they are masked out and the mask is stored in the checkpoint.
* candidates are deduplicated by functional equivalence (canonical form) and cells whose output
  does not depend on the input are never proposed.
* fidelity-aware (``fidelity_features=True``): the knowledge base mixes 12-epoch CPU proxies of
  a C=8, N=1 network with published 200-epoch trainings of the full NB201 network. Each
  evaluation's fidelity (:func:`metanas.kb.views.fidelity_of`) enters as three more task-side
  inputs (log2 epochs, log2 C, log2 N; resolution and images per class are already
  meta-features). A search ranks for a target fidelity: ``"proxy"`` (default; the knowledge
  base's own CPU proxy), ``"full"`` (a full NB201 training) or ``"mix"``. Measured on the
  leave-ImageNet16-120-out protocol (docs/value_net.md), ``full`` is worse (45.4 vs 46.6 top-1
  after re-ranking): with the table left out, full trainings in the knowledge base cover only
  good cells (MetaD2A's), so at full fidelity the network extrapolates over the bad ones;
  at proxy fidelity the full-fidelity sources still shape the shared architecture effect.
* re-rank (``rerank="nwot,zico"``, default): the ``shortlist`` (20) best cells are re-ordered
  by a rank vote of the network and zero-cost proxies computed on the target's own images
  (C=8, N=1 network, at most 16 px; :mod:`metanas.features.zero_cost`). ``rerank=""`` turns it
  off (0.1-0.4 s searches instead of ~2-4 s).
* tasks with fewer than 3 evaluated cells cannot be z-scored (MetaD2A's database has 2,696 such
  tasks of 1-2 records): with ``pool_small_tasks`` those of one source are pooled into one task
  (per cell the mean accuracy over them, features averaged), since they are draws of one kind
  of task (20-way ImageNet-32); otherwise they are dropped.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metanas.data import ImageDataset
from metanas.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    KnowledgeBaseError,
    first_line,
)
from metanas.features.metafeatures import FEATURE_NAMES, compute_meta_features, feature_vector
from metanas.features.zero_cost import (
    ZeroCostConfig,
    check_proxies,
    proxy_batch,
    rank_vote,
    score_cell,
)
from metanas.kb.views import (
    FULL_TRAINING,
    TARGET_METRICS,
    accuracy_table,
    fidelity_of,
    heldout_accuracy,
    top_architectures,
)
from metanas.methods.checkpoints import check_shapes, meta_json, read_checkpoint, write_checkpoint
from metanas.methods.interface import (
    Budget,
    Candidate,
    MetaLearnedMethod,
    SearchResult,
    config_from_options,
    proxy_resolution,
)
from metanas.methods.options import ValueNetOptions
from metanas.methods.validation import ranking_metrics, summarize, task_folds
from metanas.spaces.nb201 import NUM_EDGES, NUM_OPS, SPACE_SIZE, NB201Arch
from metanas.tasks import make_task
from metanas.threads import single_threaded
from metanas.training.trainer import resize
from metanas.version import __version__

CHECKPOINT_FORMAT = "metanas.value-net/1"
FEATURE_CLIP = 3.0

@dataclass
class ValueNetConfig:
    hidden: int = 128
    embed: int = 64
    dropout: float = 0.5
    loss: str = "rank"
    target: str = "zscore"
    epochs: int = 100
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    rank_pairs: int = 512
    seed: int = 0
    metric: str = "heldout"
    recipe: str | None = None
    fidelity_features: bool = True
    pool_small_tasks: bool = True
    exclude_sources: str = ""
    """Comma-separated task sources left out of meta-training (leave-one-source-out)."""

    def __post_init__(self) -> None:
        if self.loss not in ("mse", "rank", "mse+rank"):
            raise ConfigError(f"loss must be mse, rank or mse+rank, got {self.loss!r}")
        if self.target not in ("zscore", "raw"):
            raise ConfigError(f"target must be zscore or raw, got {self.target!r}")
        if self.metric not in TARGET_METRICS:
            raise ConfigError(f"metric must be one of {', '.join(TARGET_METRICS)}, got {self.metric!r}")
        for name in ("epochs", "batch_size", "hidden", "embed"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")


class ValueNetwork(nn.Module):
    """Architecture main effect plus a task x architecture interaction.

    ``value = base(a) + head([t, a, t * a])`` with ``t`` an embedding of the meta-features and
    ``a`` of the relaxed architecture. The main effect alone is the task-agnostic predictor;
    the interaction (with dropout on the task embedding) adds what the task changes, so few
    meta-training tasks cannot make the model much worse than ignoring the task.
    """

    def __init__(self, n_features: int, hidden: int = 128, embed: int = 64,
                 dropout: float = 0.0) -> None:
        super().__init__()
        n_arch = NUM_EDGES * NUM_OPS
        self.base = nn.Sequential(nn.Linear(n_arch, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.task = nn.Sequential(nn.Linear(n_features, embed), nn.SiLU(), nn.Dropout(dropout))
        self.arch = nn.Sequential(nn.Linear(n_arch, embed), nn.SiLU())
        self.head = nn.Sequential(
            nn.Linear(3 * embed, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, features: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        a_flat = arch.flatten(1)
        t = self.task(features)
        a = self.arch(a_flat)
        inter = self.head(torch.cat([t, a, t * a], dim=1))
        return (self.base(a_flat) + inter).squeeze(1)


@dataclass
class TrainingData:
    """Rows of (task index, architecture, target) gathered from a knowledge base."""

    task_keys: list[str]
    features: np.ndarray  # (T, F) raw meta-features
    task_index: np.ndarray  # (R,)
    archs: np.ndarray  # (R, 6, 5) one-hot
    target: np.ndarray  # (R,)
    accuracy: np.ndarray  # (R,) raw metric
    resolutions: list[int] = field(default_factory=list)
    fidelities: list[dict[str, Any]] = field(default_factory=list)
    """Distinct (epochs, C, N) of the evaluations, most evaluations first."""
    fidelity_inputs: bool = False
    """Whether ``features`` end with the :data:`FIDELITY_NAMES` inputs."""


FIDELITY_NAMES: tuple[str, ...] = ("log2_epochs", "log2_width", "log2_depth")


def fidelity_vector(fidelity: dict[str, Any]) -> np.ndarray:
    """The fidelity inputs of one evaluation group (unknown epochs: the NB201 recipe's 200)."""
    epochs = fidelity.get("epochs") or FULL_TRAINING["epochs"]
    width = fidelity.get("C") or FULL_TRAINING["C"]
    depth = fidelity.get("N") or FULL_TRAINING["N"]
    return np.log2(np.array([epochs, width, depth], dtype=np.float32))


def _excluded(config: ValueNetConfig) -> set[str]:
    return {s.strip() for s in config.exclude_sources.split(",") if s.strip()}


def load_training_data(kb, config: ValueNetConfig) -> TrainingData:
    """Average repeated seeds per (task, recipe); keep groups with meta-features and at least
    3 architectures (smaller ones pooled per source, see the module docstring)."""
    rows = kb.evaluations(recipe=config.recipe)
    tasks = {t["key"]: t for t in kb.tasks()}
    recipes = {r["hash"]: r.get("config") or {} for r in kb.recipes()}
    excluded = _excluded(config)
    groups: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in rows:
        task = tasks.get(r["task_key"])
        if task is None or not task.get("meta_features") or task["source"] in excluded:
            continue
        value = heldout_accuracy(r, task, config.metric)
        if value is None:
            continue
        groups.setdefault((r["task_key"], r["recipe_hash"]), {}).setdefault(
            r["arch"], []).append(float(value))

    counts: dict[tuple, int] = {}
    for (key, rhash), archs in groups.items():
        fid = fidelity_of(recipes.get(rhash), tasks[key])
        trio = tuple(fid.get(k) for k in ("epochs", "C", "N"))
        counts[trio] = counts.get(trio, 0) + sum(len(v) for v in archs.values())
    fidelities = [dict(zip(("epochs", "C", "N"), trio, strict=True))
                  for trio, _ in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))]

    # fidelity inputs only where the knowledge base mixes fidelities (constant ones add nothing)
    with_fidelity = config.fidelity_features and len(fidelities) > 1

    def features_of(key: str, rhash: str) -> np.ndarray:
        vec = feature_vector(tasks[key]["meta_features"])
        if with_fidelity:
            vec = np.concatenate([vec, fidelity_vector(fidelity_of(recipes.get(rhash), tasks[key]))])
        return vec

    recipes_per_task: dict[str, int] = {}
    for key, _ in groups:
        recipes_per_task[key] = recipes_per_task.get(key, 0) + 1
    entries: list[tuple[str, np.ndarray, dict[str, float], int | None]] = []
    pooled: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for (key, rhash), archs in sorted(groups.items()):
        if len(archs) >= 3:
            entries.append((key if recipes_per_task[key] == 1 else f"{key}:{rhash}",
                            features_of(key, rhash),
                            {a: float(np.mean(v)) for a, v in archs.items()},
                            tasks[key].get("resolution")))
        elif config.pool_small_tasks:
            pooled.setdefault((tasks[key]["source"], rhash), []).append((key, rhash))
    for (source, rhash), members in sorted(pooled.items()):
        per_arch: dict[str, list[float]] = {}
        for member in members:
            for a, v in groups[member].items():
                per_arch.setdefault(a, []).append(float(np.mean(v)))
        if len(per_arch) < 3:
            continue
        feats = np.mean([features_of(*m) for m in members], axis=0)
        entries.append((f"pooled:{source}:{rhash}", feats,
                        {a: float(np.mean(v)) for a, v in per_arch.items()},
                        tasks[members[0][0]].get("resolution")))
    if len(entries) < 2:
        raise KnowledgeBaseError(
            "the knowledge base needs at least 2 tasks with meta-features and >= 3 evaluated "
            f"architectures each (metric {config.metric}, recipe {config.recipe or 'any'}); "
            f"found {len(entries)}"
        )
    feats, t_idx, archs, target, acc, keys = [], [], [], [], [], []
    for i, (key, vec, per_arch, _res) in enumerate(entries):
        keys.append(key)
        feats.append(vec)
        names = sorted(per_arch)
        values = np.array([per_arch[a] for a in names])
        if config.target == "zscore":
            tgt = (values - values.mean()) / (values.std() + 1e-6)
        else:
            tgt = values
        for a, v, tv in zip(names, values, tgt, strict=True):
            t_idx.append(i)
            archs.append(NB201Arch.from_string(a).one_hot())
            target.append(tv)
            acc.append(v)
    resolutions = sorted({int(res) for *_x, res in entries if res})
    return TrainingData(
        task_keys=keys,
        features=np.stack(feats),
        task_index=np.array(t_idx),
        archs=np.stack(archs).astype(np.float32),
        target=np.array(target, dtype=np.float32),
        accuracy=np.array(acc, dtype=np.float32),
        resolutions=resolutions,
        fidelities=fidelities,
        fidelity_inputs=with_fidelity,
    )


def _zero_cost_config(size: str, seed: int) -> ZeroCostConfig:
    try:
        c, n = (int(v) for v in str(size).split(","))
    except ValueError:
        raise ConfigError(f"value-net rerank_size must be 'C,N' (e.g. 8,1), got {size!r}") from None
    return ZeroCostConfig(C=c, N=n, seed=seed)


def _rerank(candidates: list[Candidate], task, proxies: tuple[str, ...],
            config: ZeroCostConfig, resolution: int,
            weights: list[float] | None = None) -> list[Candidate]:
    """Re-order a shortlist by a rank vote of the value network and zero-cost proxies
    computed on the target task's own images, at most ``resolution`` px (each ranking counts
    once; ties by the value network). ``score`` becomes the mean normalised rank (higher =
    better, 1 = first on all)."""
    x, y = proxy_batch(task, config.batch_size, config.seed)
    if x.shape[-1] > resolution:
        x = resize(x, resolution)
    results = [score_cell(c.arch, x, y, num_classes=task.num_classes, proxies=proxies,
                          config=config) for c in candidates]
    votes = rank_vote(results, proxies, prior_order=True, weights=weights)
    out = [Candidate(c.arch, float(v), {"value": c.score, **{
        p: (r["scores"][p] if np.isfinite(r["scores"][p]) else None) for p in proxies}})
        for c, r, v in zip(candidates, results, votes, strict=True)]
    return [out[i] for i in sorted(range(len(out)), key=lambda i: (-votes[i], i))]


def published_top_cells(kb, *, exclude: set[str] = frozenset(), n: int = 20) -> list[str]:
    """The ``n`` best cells of the knowledge base's published (fully trained) sources by
    shrunken mean per-task z-score: candidates a gradient search may never reach."""
    sources = sorted({t["source"] for t in kb.tasks()
                      if (t.get("spec") or {}).get("kind") == "published"} - set(exclude))
    table: dict[str, dict[str, float]] = {}
    for source in sources:
        table.update(accuracy_table(kb, source=source))
    return [a for a, _, _ in top_architectures(table, n)]


@functools.cache
def _all_one_hots() -> torch.Tensor:
    """One-hot encodings of all cells in index order (built once per process)."""
    return torch.as_tensor(np.stack([a.one_hot() for a in NB201Arch.enumerate_all()]))


def _pairwise_rank_loss(pred, target, task_idx, n_pairs, gen) -> torch.Tensor:
    """Logistic loss on score differences of random pairs drawn from the same task."""
    n = len(pred)
    i = torch.randint(0, n, (n_pairs * 4,), generator=gen)
    j = torch.randint(0, n, (n_pairs * 4,), generator=gen)
    keep = (task_idx[i] == task_idx[j]) & (target[i] != target[j])
    i, j = i[keep][:n_pairs], j[keep][:n_pairs]
    if len(i) == 0:
        return pred.sum() * 0.0
    sign = torch.sign(target[i] - target[j])
    return nn.functional.softplus(-sign * (pred[i] - pred[j])).mean()


class ValueNetMethod(MetaLearnedMethod):
    """Search by a meta-learned value network; see the module docstring."""

    name = "value-net"
    Options = ValueNetOptions

    def __init__(
        self,
        net: ValueNetwork,
        *,
        feature_mean: np.ndarray,
        feature_std: np.ndarray,
        feature_mask: np.ndarray,
        config: ValueNetConfig,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.net = net.eval()
        self.feature_mean = np.asarray(feature_mean, dtype=np.float32)
        self.feature_std = np.asarray(feature_std, dtype=np.float32)
        self.feature_mask = np.asarray(feature_mask, dtype=np.float32)
        self.config = config
        self.info = info or {}

    # ----- meta-training ------------------------------------------------------------------
    @classmethod
    def meta_train(cls, kb, *, progress: bool = False, **options) -> ValueNetMethod:
        config = config_from_options(ValueNetConfig, options, "value-net")
        data = load_training_data(kb, config)
        model = cls.fit(data, config, progress=progress)
        model.info["prior_cells"] = published_top_cells(kb, exclude=_excluded(config))
        return model

    @classmethod
    def fit(cls, data: TrainingData, config: ValueNetConfig, progress: bool = False,
            use_features: bool = True) -> ValueNetMethod:
        """Train on gathered rows; ``use_features=False`` masks all meta-features (ablation)."""
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        mean = data.features.mean(0)
        std = data.features.std(0)
        mask = (std > 1e-6 * np.maximum(1.0, np.abs(mean))).astype(np.float32) * use_features
        std = np.where(mask > 0, std, 1.0)
        feats = torch.tensor((data.features - mean) / std * mask, dtype=torch.float32)
        x_f = feats[torch.as_tensor(data.task_index)]
        x_a = torch.as_tensor(data.archs)
        y = torch.as_tensor(data.target)
        t_idx = torch.as_tensor(data.task_index)
        net = ValueNetwork(feats.shape[1], config.hidden, config.embed, config.dropout)
        opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
        n = len(y)
        start = time.perf_counter()
        epochs = range(config.epochs)
        if progress:
            from rich.progress import track

            epochs = track(epochs, description="meta-train value-net", transient=True)
        for _ in epochs:
            net.train()
            order = torch.randperm(n, generator=gen)
            for b in range(0, n, config.batch_size):
                idx = order[b : b + config.batch_size]
                pred = net(x_f[idx], x_a[idx])
                loss = pred.sum() * 0.0
                if "mse" in config.loss:
                    loss = loss + nn.functional.mse_loss(pred, y[idx])
                if "rank" in config.loss:
                    loss = loss + _pairwise_rank_loss(
                        pred, y[idx], t_idx[idx], config.rank_pairs, gen
                    )
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        info = {
            "tasks": len(data.task_keys),
            "evaluations": int(n),
            "train_seconds": round(time.perf_counter() - start, 2),
            "resolutions": data.resolutions,
            "feature_names": list(FEATURE_NAMES),
            "fidelity_names": list(FIDELITY_NAMES) if data.fidelity_inputs else [],
            "fidelities": data.fidelities,
            "excluded_sources": sorted(_excluded(config)),
        }
        return cls(net, feature_mean=mean, feature_std=std, feature_mask=mask, config=config,
                   info=info)

    # ----- scoring ------------------------------------------------------------------------
    def target_fidelity(self, fidelity: str | dict[str, Any] = "full") -> dict[str, Any]:
        """``"full"``: a full NB201 training; ``"proxy"``: the most common fidelity of the
        meta-training evaluations below a full training (the knowledge base's own CPU proxy);
        or a dict with ``epochs``, ``C``, ``N``. (``"mix"`` is resolved in :meth:`search`.)"""
        if isinstance(fidelity, dict):
            return fidelity
        if fidelity == "full":
            return dict(FULL_TRAINING)
        if fidelity == "proxy":  # the most common fidelity below a full training
            seen = [f for f in self.info.get("fidelities") or []
                    if f.get("epochs") and f["epochs"] < FULL_TRAINING["epochs"]]
            return dict(seen[0]) if seen else dict(FULL_TRAINING)
        raise ConfigError(f"value-net fidelity must be full, proxy or mix, got {fidelity!r}")

    def encode_features(self, features: dict[str, float],
                        fidelity: str | dict[str, Any] = "full") -> torch.Tensor:
        """Standardize with the knowledge base's statistics, clipped to +-FEATURE_CLIP so a
        dataset unlike every meta-training task is treated as the nearest edge of the data
        rather than extrapolated. A fidelity-aware network also gets the target fidelity."""
        raw = feature_vector(features)
        if self.info.get("fidelity_names"):
            raw = np.concatenate([raw, fidelity_vector(self.target_fidelity(fidelity))])
        return self.encode_vector(raw)

    def encode_vector(self, raw: np.ndarray) -> torch.Tensor:
        """A raw input row (meta-features, then fidelity inputs) as the network's input."""
        vec = (raw - self.feature_mean) / self.feature_std * self.feature_mask
        vec = np.clip(vec, -FEATURE_CLIP, FEATURE_CLIP)
        return torch.tensor(vec, dtype=torch.float32)[None]

    @torch.no_grad()
    def score(self, features: dict[str, float] | torch.Tensor, archs: list[NB201Arch]) -> np.ndarray:
        """Predicted value of each architecture on a task with these meta-features."""
        f = features if isinstance(features, torch.Tensor) else self.encode_features(features)
        onehots = torch.as_tensor(np.stack([a.one_hot() for a in archs]))
        return self.net(f.expand(len(archs), -1), onehots).numpy()

    @torch.no_grad()
    def score_all(self, f: torch.Tensor) -> np.ndarray:
        """Scores of all 15,625 cells, indexed by :attr:`NB201Arch.index`."""
        onehots = _all_one_hots()
        return self.net(f.expand(len(onehots), -1), onehots).numpy()

    def gradient_ascent(
        self, f: torch.Tensor, *, restarts: int = 8, steps: int = 100, lr: float = 1.0,
        seed: int = 0,
    ) -> list[NB201Arch]:
        """Maximize the frozen network over per-edge softmax relaxations; argmax each restart.

        Plain gradient ascent on the logits (``torch.autograd.grad``): the objective is tiny
        and smooth, and avoiding an optimizer object keeps a cold search fast.
        """
        gen = torch.Generator().manual_seed(seed)
        logits = 0.5 * torch.randn(restarts, NUM_EDGES, NUM_OPS, generator=gen)
        feats = f.expand(restarts, -1)
        for _ in range(steps):
            logits.requires_grad_(True)
            value = self.net(feats, torch.softmax(logits, dim=-1)).sum()
            (grad,) = torch.autograd.grad(value, logits)
            logits = (logits + lr * grad).detach()
        probs = torch.softmax(logits, dim=-1).numpy()
        return [NB201Arch.from_probabilities(p) for p in probs]

    # ----- search -------------------------------------------------------------------------
    def rerank_weights(self, proxies: tuple[str, ...], given: str = "") -> list[float] | None:
        """Vote weights of the network's ranking and of each proxy: ``given`` (a comma list),
        else those learned at meta-training for exactly these proxies, else None (equal)."""
        if given:
            try:
                weights = [float(v) for v in given.split(",")]
            except ValueError:
                raise ConfigError(f"value-net rerank_weights must be comma-separated numbers, "
                                  f"got {given!r}") from None
            if len(weights) != len(proxies) + 1 or not all(
                    math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
                raise ConfigError(f"value-net rerank_weights needs {len(proxies) + 1} numbers "
                                  f">= 0, not all 0 (the network, then {', '.join(proxies)}), "
                                  f"got {given!r}")
            return weights
        learned = self.info.get("rerank_weights") or {}
        if learned.get("proxies") == list(proxies):
            return [float(w) for w in learned["weights"]]
        return None

    def task_resolution(self, dataset: ImageDataset) -> int:
        """The knowledge-base resolution closest to the dataset's own image side."""
        return proxy_resolution(max(dataset.image_size), self.info.get("resolutions") or (16, 32))

    def _search(
        self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
        progress: bool,
        mode: str,
        restarts: int,
        max_train_per_class: int | None,
        fidelity: str,
        resolution: int | None,
        prior_pool: bool,
        rerank: str,
        shortlist: int,
        rerank_size: str,
        rerank_resolution: int,
        rerank_weights: str,
    ) -> SearchResult:
        proxies = check_proxies(rerank) if rerank else ()
        zc_config = _zero_cost_config(rerank_size, seed) if proxies else None
        weights = self.rerank_weights(proxies, rerank_weights) if proxies else None
        targets = ([self.target_fidelity(x) for x in ("full", "proxy")] if fidelity == "mix"
                   else [self.target_fidelity(fidelity)])
        t0 = time.perf_counter()
        task = make_task(
            dataset, resolution=resolution or self.task_resolution(dataset),
            max_train_per_class=max_train_per_class, seed=seed,
        )
        t_task = time.perf_counter()
        features = compute_meta_features(task, seed=seed)
        inputs = [self.encode_features(features, t) for t in targets]
        t_feat = time.perf_counter()
        with single_threaded():  # a small MLP: threads only add waiting on a busy machine
            per_target = [self.score_all(f) for f in inputs]
            if not all(np.isfinite(sc).all() for sc in per_target):
                raise CheckpointError("value-net produced non-finite scores for this dataset: "
                                      "the checkpoint is damaged (no ranking returned)")
            # "mix": the mean of the per-fidelity z-scores over all cells
            all_scores = per_target[0] if len(per_target) == 1 else np.mean(
                [(sc - sc.mean()) / (sc.std() + 1e-9) for sc in per_target], axis=0)
            picks = [] if mode != "gradient" else [
                p for f in inputs
                for p in self.gradient_ascent(f, restarts=max(1, restarts // len(inputs)),
                                              seed=seed)]
        if mode == "gradient":
            pool = {a for p in picks for a in [p, *p.neighbours()]}
            if prior_pool:  # the published sources' best cells compete too
                pool |= {NB201Arch.from_string(a) for a in self.info.get("prior_cells", [])}
            pool_idx = np.array(sorted(a.index for a in pool))
        else:
            pool_idx = np.arange(SPACE_SIZE)
        ranked = pool_idx[np.argsort(-all_scores[pool_idx], kind="stable")]
        candidates, seen = [], set()
        want = max(top, shortlist) if proxies else top
        for i in ranked:
            arch = NB201Arch.from_index(int(i))
            if not arch.is_connected or arch.canonical_form in seen:
                continue
            seen.add(arch.canonical_form)
            candidates.append(Candidate(arch.to_string(), float(all_scores[i])))
            if len(candidates) >= want:
                break
        t_shortlist = time.perf_counter()
        rerank_skipped = None
        if proxies:
            try:
                candidates = _rerank(candidates, task, proxies, zc_config, rerank_resolution,
                                     weights)
            except DatasetError as exc:  # e.g. constant images: no signal, keep the network's
                rerank_skipped = str(exc)
            candidates = candidates[:top]
        t_rank = time.perf_counter()
        order = np.argsort(-all_scores, kind="stable")
        rank_of = np.empty(SPACE_SIZE, dtype=np.int64)
        rank_of[order] = np.arange(1, SPACE_SIZE + 1)
        top_index = NB201Arch.from_string(candidates[0].arch).index
        return SearchResult(
            method=self.name,
            dataset=dataset.name,
            candidates=candidates,
            search_seconds=t_rank - t0,
            timings={
                "task_seconds": t_task - t0,
                "features_seconds": t_feat - t_task,
                "rank_seconds": t_shortlist - t_feat,
                "rerank_seconds": t_rank - t_shortlist,
            },
            details={
                "mode": mode,
                "resolution": task.resolution,
                "fidelity": targets[0] if len(targets) == 1 else {"mix": targets},
                "meta_features": features,
                "gradient_picks": [p.to_string() for p in picks],
                "exhaustive_rank_of_top": int(rank_of[top_index]),
                "rerank": list(proxies) if rerank_skipped is None else [],
                "rerank_weights": weights,
                "rerank_skipped": rerank_skipped,
            },
        )

    # ----- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        tensors = {f"net.{k}": v.contiguous() for k, v in self.net.state_dict().items()}
        tensors["feature_mean"] = torch.as_tensor(self.feature_mean)
        tensors["feature_std"] = torch.as_tensor(self.feature_std)
        tensors["feature_mask"] = torch.as_tensor(self.feature_mask)
        meta = {
            "format": CHECKPOINT_FORMAT,
            "metanas_version": __version__,
            "config": json.dumps(asdict(self.config)),
            "info": json.dumps(self.info),
            "n_features": str(len(self.feature_mean)),
        }
        write_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> ValueNetMethod:
        """Read a checkpoint; the network is small, so it always runs on the CPU."""
        path = Path(path)
        tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "value-net")
        what = "value-net"
        info = meta_json(path, meta, "info", what, default={})
        try:
            config = ValueNetConfig(**meta_json(path, meta, "config", what))
            n_inputs = int(meta["n_features"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{path}: incompatible value-net checkpoint "
                                  f"({first_line(exc)})") from None
        if info.get("feature_names", list(FEATURE_NAMES)) != list(FEATURE_NAMES):
            raise CheckpointError(f"{path} was trained on other meta-features")
        fidelity_names = info.get("fidelity_names") or []
        if fidelity_names and fidelity_names != list(FIDELITY_NAMES):
            raise CheckpointError(f"{path} was trained on other fidelity inputs")
        if n_inputs != len(FEATURE_NAMES) + len(fidelity_names):
            raise CheckpointError(f"{path}: n_features {meta['n_features'][:20]} does not "
                                  f"match its {len(FEATURE_NAMES) + len(fidelity_names)} inputs")

        def build() -> ValueNetwork:
            return ValueNetwork(n_inputs, config.hidden, config.embed, config.dropout)

        check_shapes(path, what, build, tensors, prefix="net.")
        net = build()
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        try:
            stats = {k: tensors[f"feature_{k}"].float().numpy() for k in ("mean", "std", "mask")}
        except KeyError as exc:
            raise CheckpointError(f"{path}: incompatible value-net checkpoint (no {exc})") from None
        if any(v.shape != (n_inputs,) for v in stats.values()):
            raise CheckpointError(f"{path}: feature statistics do not have {n_inputs} entries")
        if not (np.isfinite(stats["mean"]).all() and np.isfinite(stats["std"]).all()
                and (stats["std"] > 0).all()):
            raise CheckpointError(f"{path}: feature statistics are not finite and positive "
                                  "(a ranking from them would be NaN)")
        if not all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point()):
            raise CheckpointError(f"{path}: the network holds non-finite weights")
        return cls(
            net,
            feature_mean=stats["mean"],
            feature_std=stats["std"],
            feature_mask=stats["mask"],
            config=config,
            info=info,
        )


def _subset(data: TrainingData, task_ids: np.ndarray) -> TrainingData:
    rows = np.isin(data.task_index, task_ids)
    remap = {int(t): i for i, t in enumerate(task_ids)}
    return TrainingData(
        task_keys=[data.task_keys[t] for t in task_ids],
        features=data.features[task_ids],
        task_index=np.array([remap[int(t)] for t in data.task_index[rows]]),
        archs=data.archs[rows],
        target=data.target[rows],
        accuracy=data.accuracy[rows],
        resolutions=data.resolutions,
        fidelities=data.fidelities,
        fidelity_inputs=data.fidelity_inputs,
    )


def cross_validate(kb, *, folds: int = 5, progress: bool = False, **options) -> dict[str, Any]:
    """Leave-tasks-out validation: Spearman and Kendall tau per held-out task.

    Tasks (never single evaluations) are split into ``folds`` groups; each group is held out
    while the network is trained on the rest, then the held-out tasks' measured accuracies are
    correlated with the predictions. Also reports the same network with its meta-features
    masked (task-agnostic), which measures what task-awareness adds.
    """
    config = config_from_options(ValueNetConfig, options, "value-net")
    data = load_training_data(kb, config)
    n_tasks = len(data.task_keys)
    per_task: list[dict[str, Any]] = []
    splits = list(task_folds(n_tasks, folds, config.seed))
    for held, train_ids in splits:
        for aware in (True, False):
            model = ValueNetMethod.fit(_subset(data, train_ids), config, use_features=aware)
            for t in held:
                rows = data.task_index == t
                archs = [NB201Arch.from_probabilities(a) for a in data.archs[rows]]
                pred = model.score(model.encode_vector(data.features[t]), archs)
                per_task.append({"task": data.task_keys[t], "aware": aware,
                                 "n": int(rows.sum()),
                                 **ranking_metrics(pred, data.accuracy[rows])})
    folds = len(splits)

    def summary(aware: bool) -> dict[str, float]:
        return summarize([r for r in per_task if r["aware"] is aware])

    return {
        "folds": folds,
        "tasks": n_tasks,
        "evaluations": int(len(data.target)),
        "config": asdict(config),
        "task_aware": summary(True),
        "task_agnostic": summary(False),
        "per_task": per_task,
    }
