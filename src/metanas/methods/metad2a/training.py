"""Meta-training MetaD2A on a knowledge base: data, the two training loops, scoring, metrics.

Choices made here (the paper leaves them open or its data differ; all in :class:`MetaD2AConfig`):

* generator pairs (task -> good architectures): each task's ``gen_top_k`` best measured cells by
  held-out accuracy (:func:`metanas.kb.views.accuracy_table`), one training pair per cell;
* predictor target: per-task z-score of held-out accuracy (``target="zscore"``; ``"global"``
  standardizes over all rows). Search ranks cells for one dataset, so only the order within a
  task matters, and the z-score removes task difficulty, which the dataset embedding would
  otherwise have to explain first; ``loss`` = ``mse`` (paper), ``rank`` (pairwise logistic loss
  within a task) or ``mse+rank``;
* model selection: ``holdout`` of the tasks (never single evaluations) is held out; the
  predictor's epoch with the best mean per-task correlation (``select``: Pearson as the paper)
  on them is kept; with ``refit`` both networks are then retrained on all tasks for the chosen
  epochs;
* every training step draws fresh ``images_per_class`` features per class from each task's
  pool, so the encoders never see the same image set twice.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from metanas.errors import ConfigError, KnowledgeBaseError
from metanas.kb.views import TARGET_METRICS, accuracy_table, source_names
from metanas.methods.interface import config_from_options
from metanas.methods.metad2a.data import kb_task_pools, sample_sets
from metanas.methods.metad2a.extractor import FeatureExtractor
from metanas.methods.metad2a.graph import dag_batch, fixed_adjacency
from metanas.methods.metad2a.models import Generator, Predictor
from metanas.methods.metad2a.set_encoder import pad_sets
from metanas.methods.validation import ranking_metrics, summarize
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Arch


@dataclass
class MetaD2AConfig:
    # dataset encoding (shared by both networks)
    hidden: int = 56
    heads: int = 4
    block: str = "sab"
    """Set-transformer block: ``sab`` (full self-attention) or ``isab`` (inducing points)."""
    inducing: int = 16
    layer_norm: bool = False
    images_per_class: int = 20
    """Images per class in one sampled set (the encoder's input)."""
    pool_per_class: int = 40
    """Images per class kept per task, from which the sets are resampled."""
    # generator
    latent: int = 56
    gen_hidden: int = 56
    beta: float = 0.005
    """Weight of the VAE's KL term."""
    noise: float = 0.01
    gen_top_k: int = 5
    """Cells per source task the generator learns to reconstruct (its best measured ones)."""
    gen_epochs: int = 100
    gen_batch: int = 32
    gen_lr: float = 1e-3
    # predictor
    graph_hidden: int = 128
    """Width of the graph encoder's node states (the cell side of the predictor)."""
    graph_out: int = 56
    head: int = 512
    """Width of the MLP that joins the cell and dataset embeddings into the prediction."""
    loss: str = "mse"
    """``mse``, ``rank`` (pairwise within a task) or ``mse+rank``."""
    target: str = "zscore"
    """``zscore``: accuracies standardised per task; ``global``: as measured."""
    pred_epochs: int = 80
    tasks_per_batch: int = 8
    pred_lr: float = 1e-3
    weight_decay: float = 1e-4
    rank_weight: float = 1.0
    task_aware: bool = True
    """False: the predictor ignores the dataset embedding (an ablation)."""
    # selection and data
    holdout: float = 0.2
    """Share of the tasks (never of single evaluations) held out for model selection."""
    select: str = "pearson"
    """Per-task correlation that selects the predictor's epoch (Pearson, as the paper)."""
    eval_every: int = 10
    eval_resamples: int = 5
    refit: bool = True
    """Retrain both networks on all tasks for the selected number of epochs."""
    metric: str = "heldout"
    recipe: str | None = None
    exclude_sources: str = ""
    """Knowledge-base sources left out (comma list), e.g. a published table held out."""
    generator_sources: str = ""
    """Sources whose tasks teach the generator (comma list; empty: every source). Measured:
    MetaD2A's database for the generator with KB v1 for the predictor is worse than KB v1 for
    both (docs/metad2a.md)."""
    predictor_sources: str = ""
    """Sources whose tasks teach the predictor (comma list; empty: every source)."""
    gen_min_cells: int = 1
    """Tasks with at least this many measured cells teach the generator (a published task
    with one real training still says which cell was trained for it)."""
    pred_min_cells: int = 2
    """Tasks with at least this many measured cells teach the predictor (one cell has no
    order within its task)."""
    pruned_inputs: bool = False
    """The predictor reads each measured cell as its pruned form (:meth:`NB201Arch.pruned`), as
    a search with ``pruned`` scores it."""
    max_cells_per_task: int = 512
    """Cells of one task in one predictor step, drawn afresh each step: a dense table
    (15,625 cells) would otherwise dominate its batch and the step's cost."""
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "loss": ("mse", "rank", "mse+rank"), "target": ("zscore", "global"),
            "block": ("sab", "isab"), "select": ("pearson", "spearman", "kendall"),
            "metric": TARGET_METRICS,
        }
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got "
                                  f"{getattr(self, name)!r}")
        for name in ("hidden", "heads", "images_per_class", "pool_per_class", "latent",
                     "gen_hidden", "gen_top_k", "gen_batch", "graph_hidden", "graph_out",
                     "head", "tasks_per_batch", "eval_every", "eval_resamples", "inducing",
                     "gen_min_cells", "max_cells_per_task"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("gen_epochs", "pred_epochs"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.hidden % self.heads:
            raise ConfigError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError(f"holdout must be in [0, 1), got {self.holdout}")
        if int(self.pred_min_cells) < 2:
            raise ConfigError(f"pred_min_cells must be >= 2, got {self.pred_min_cells!r}")
        if self.pool_per_class < self.images_per_class:
            raise ConfigError(f"pool_per_class ({self.pool_per_class}) must be >= "
                              f"images_per_class ({self.images_per_class})")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> MetaD2AConfig:
        """Options by name; ``epochs`` (the CLI's ``--epochs``) sets both networks' epochs
        unless ``gen_epochs`` / ``pred_epochs`` are given too."""
        options = dict(options)
        if "epochs" in options:
            epochs = options.pop("epochs")
            options.setdefault("gen_epochs", epochs)
            options.setdefault("pred_epochs", epochs)
        return config_from_options(cls, options, "metad2a",
                                   also=("epochs", "source", "extractor", "cache"))


@dataclass
class MetaTrainData:
    """Knowledge-base tasks as MetaD2A sees them: feature pools and measured cells."""

    task_keys: list[str]
    pools: list[list[torch.Tensor]]
    archs: list[list[NB201Arch]]
    accuracy: list[np.ndarray]
    resolutions: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    """Each task's knowledge source (empty: not recorded, every task counts as any source)."""

    @property
    def feature_dim(self) -> int:
        return int(self.pools[0][0].shape[1])

    def __len__(self) -> int:
        return len(self.task_keys)

    def with_cells(self, ids, min_cells: int, sources: str = "") -> np.ndarray:
        """The tasks of ``ids`` with at least ``min_cells`` measured cells, of ``sources``
        (comma list; empty: any)."""
        named = source_names(sources)
        return np.array([int(t) for t in ids if len(self.archs[int(t)]) >= min_cells
                         and (not named or not self.sources or self.sources[int(t)] in named)],
                        dtype=np.int64)


def load_meta_data(kb, extractor: FeatureExtractor, config: MetaD2AConfig, *, source=None,
                   cache: bool = True, progress: bool = False) -> MetaTrainData:
    """Tasks with >= ``gen_min_cells`` measured cells (those with >= ``pred_min_cells`` also
    teach the predictor; at least 3 such tasks are needed), their accuracies and their image
    feature pools; tasks of ``exclude_sources`` are left out."""
    table = accuracy_table(kb, metric=config.metric, recipe=config.recipe)
    excluded = source_names(config.exclude_sources)
    tasks = {t["key"]: t for t in kb.tasks() if t["source"] not in excluded}
    keys = sorted(k for k, archs in table.items()
                  if len(archs) >= min(config.gen_min_cells, config.pred_min_cells)
                  and k in tasks)
    ranked = sum(len(table[k]) >= config.pred_min_cells for k in keys)
    if ranked < 3:
        raise KnowledgeBaseError(
            f"MetaD2A needs at least 3 tasks with >= {config.pred_min_cells} evaluated "
            f"architectures each (metric {config.metric}, recipe {config.recipe or 'any'}"
            f"{', without ' + ', '.join(sorted(excluded)) if excluded else ''}); found {ranked}")
    for name, min_cells in (("generator_sources", config.gen_min_cells),
                            ("predictor_sources", config.pred_min_cells)):
        usable = {tasks[k]["source"] for k in keys if len(table[k]) >= min_cells}
        missing = source_names(getattr(config, name)) - usable
        if missing:  # checked before the images are encoded
            raise KnowledgeBaseError(
                f"MetaD2A {name}: no task of {', '.join(sorted(missing))} with >= {min_cells} "
                f"evaluated architectures in the knowledge base (sources with such tasks: "
                f"{', '.join(sorted(usable)) or 'none'})")
    pools = kb_task_pools([tasks[k] for k in keys], extractor, source=source,
                          per_class=config.pool_per_class, seed=config.seed, cache=cache,
                          progress=progress)
    archs, accs = [], []
    for k in keys:
        names = sorted(table[k])
        archs.append([NB201Arch.from_string(a) for a in names])
        accs.append(np.array([table[k][a] for a in names], dtype=np.float64))
    resolutions = sorted({int(tasks[k]["resolution"]) for k in keys if tasks[k].get("resolution")})
    return MetaTrainData(keys, [pools[k] for k in keys], archs, accs, resolutions,
                         [tasks[k]["source"] for k in keys])


def split_tasks(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Task indices (train, held out); at least 2 held out when ``holdout`` > 0."""
    order = np.random.default_rng(seed).permutation(n)
    n_out = 0 if holdout <= 0 else min(n - 2, max(2, round(holdout * n)))
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def encode_batch(pools: list[list[torch.Tensor]], n: int, gen: torch.Generator):
    """One fresh image set per dataset, padded: (feats, image_mask, class_mask)."""
    return pad_sets([sample_sets(p, n, 1, gen)[0] for p in pools])


def pooled_features(data: MetaTrainData, ids) -> torch.Tensor:
    """All pooled image features of tasks ``ids`` (for input standardization)."""
    return torch.cat([c for t in ids for c in data.pools[t]])


def top_k_targets(data: MetaTrainData, ids, k: int) -> list[tuple[int, NB201Arch]]:
    """(task index, cell) pairs: each task's ``k`` best measured cells."""
    out = []
    for t in ids:
        order = np.argsort(-data.accuracy[t], kind="stable")[:k]
        out += [(int(t), data.archs[t][i]) for i in order]
    return out


def _taught(data: MetaTrainData, ids, min_cells: int, sources: str, network: str) -> np.ndarray:
    """The tasks of ``ids`` that teach ``network``; none left is one clear error."""
    taught = data.with_cells(ids, min_cells, sources)
    if not len(taught):
        raise KnowledgeBaseError(
            f"MetaD2A {network}: no training task with >= {min_cells} evaluated architectures"
            f"{' of ' + sources if sources else ''} (after the holdout split; lower holdout or "
            f"name more {network}_sources)")
    return taught


# ----- generator -----------------------------------------------------------------------------
def new_generator(feature_dim: int, c: MetaD2AConfig) -> Generator:
    return Generator(feature_dim, hidden=c.hidden, latent=c.latent, graph_hidden=c.gen_hidden,
                     heads=c.heads, block=c.block, inducing=c.inducing, ln=c.layer_norm)


def fit_generator(data: MetaTrainData, config: MetaD2AConfig, ids, *, epochs: int | None = None,
                  progress: bool = False) -> tuple[Generator, dict[str, Any]]:
    """Train the set-to-graph VAE on the tasks ``ids``' top-k cells (fixed epochs)."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed + 1)
    model = new_generator(data.feature_dim, config)
    ids = _taught(data, ids, config.gen_min_cells, config.generator_sources, "generator")
    model.encoder.set_feature_stats(pooled_features(data, ids))
    pairs = top_k_targets(data, ids, config.gen_top_k)
    types = dag_batch([a for _, a in pairs])
    adj = fixed_adjacency(len(pairs))
    opt = torch.optim.Adam(model.parameters(), lr=config.gen_lr)
    epochs = epochs or config.gen_epochs
    history = []
    start = time.perf_counter()
    with Bars(progress, transient=True) as bars:
        bar = bars.add("metad2a: generator", epochs)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(pairs), generator=gen)
            tot, parts = 0.0, {"type_ce": 0.0, "edge_bce": 0.0, "kl": 0.0}
            for b in range(0, len(pairs), config.gen_batch):
                idx = order[b:b + config.gen_batch]
                feats, im, cm = encode_batch([data.pools[pairs[i][0]] for i in idx],
                                             config.images_per_class, gen)
                loss, logs = model.loss(feats, im, cm, types[idx], adj[idx], beta=config.beta,
                                        noise=config.noise, gen=gen)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += loss.item() * len(idx)
                for k in parts:
                    parts[k] += logs[k] * len(idx)
            history.append({"loss": tot / len(pairs), **{k: v / len(pairs)
                                                          for k, v in parts.items()}})
            bars.advance(bar, status=f"loss {history[-1]['loss']:.3f}")
    model.eval()
    info = {"tasks": len(ids), "pairs": len(pairs), "epochs": epochs, "final": history[-1],
            "seconds": round(time.perf_counter() - start, 1)}
    return model, info


# ----- predictor -----------------------------------------------------------------------------
def new_predictor(feature_dim: int, c: MetaD2AConfig) -> Predictor:
    return Predictor(feature_dim, hidden=c.hidden, graph_hidden=c.graph_hidden,
                     graph_out=c.graph_out, head=c.head, heads=c.heads, block=c.block,
                     inducing=c.inducing, ln=c.layer_norm, task_aware=c.task_aware)


def predictor_inputs(archs: list[NB201Arch], config: MetaD2AConfig) -> torch.Tensor:
    """The predictor's graph input of measured cells (pruned with ``pruned_inputs``)."""
    return dag_batch([a.pruned() for a in archs] if config.pruned_inputs else archs)


def task_targets(data: MetaTrainData, ids, config: MetaD2AConfig) -> dict[int, torch.Tensor]:
    if config.target == "zscore":
        return {int(t): torch.tensor((data.accuracy[t] - data.accuracy[t].mean())
                                     / (data.accuracy[t].std() + 1e-6), dtype=torch.float32)
                for t in ids}
    allacc = np.concatenate([data.accuracy[t] for t in ids])
    mean, std = allacc.mean(), allacc.std() + 1e-6
    return {int(t): torch.tensor((data.accuracy[t] - mean) / std, dtype=torch.float32)
            for t in ids}


def _cell_draw(n: int, cap: int, gen: torch.Generator) -> torch.Tensor | slice:
    """All of a task's ``n`` cells, or ``cap`` of them drawn afresh."""
    if n <= cap:
        return slice(None)
    return torch.randperm(n, generator=gen)[:cap]


def _rank_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pairwise logistic loss over all ordered pairs of one task's cells."""
    diff_t = target[:, None] - target[None, :]
    mask = diff_t > 0
    if not mask.any():
        return pred.sum() * 0.0
    diff_p = pred[:, None] - pred[None, :]
    return nn.functional.softplus(-diff_p[mask]).mean()


def fit_predictor(data: MetaTrainData, config: MetaD2AConfig, train_ids, val_ids=(), *,
                  epochs: int | None = None, progress: bool = False,
                  ) -> tuple[Predictor, dict[str, Any]]:
    """Train the predictor on tasks ``train_ids``; keep the epoch best on ``val_ids`` (tasks
    with fewer than ``pred_min_cells`` cells are skipped in both)."""
    torch.manual_seed(config.seed)
    train_ids = _taught(data, train_ids, config.pred_min_cells, config.predictor_sources,
                        "predictor")
    val_ids = data.with_cells(val_ids, config.pred_min_cells, config.predictor_sources)
    gen = torch.Generator().manual_seed(config.seed + 2)
    model = new_predictor(data.feature_dim, config)
    model.encoder.set_feature_stats(pooled_features(data, train_ids))
    targets = task_targets(data, train_ids, config)
    types = {int(t): predictor_inputs(data.archs[t], config) for t in train_ids}
    opt = torch.optim.AdamW(model.parameters(), lr=config.pred_lr,
                            weight_decay=config.weight_decay)
    epochs = epochs or config.pred_epochs
    steps = epochs * math.ceil(len(train_ids) / config.tasks_per_batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    best = {"epoch": epochs, "score": -math.inf, "state": None, "metrics": None}
    curve = []
    start = time.perf_counter()
    with Bars(progress, transient=True) as bars:
        bar = bars.add("metad2a: predictor", epochs)
        for epoch in range(1, epochs + 1):
            model.train()
            order = train_ids[torch.randperm(len(train_ids), generator=gen).numpy()]
            total = 0.0
            for b in range(0, len(order), config.tasks_per_batch):
                batch = [int(t) for t in order[b:b + config.tasks_per_batch]]
                feats, im, cm = encode_batch([data.pools[t] for t in batch],
                                             config.images_per_class, gen)
                d_emb = model.embed_data(feats, im, cm)
                rows = [_cell_draw(len(types[t]), config.max_cells_per_task, gen)
                        for t in batch]
                cells = [types[t][r] for t, r in zip(batch, rows, strict=True)]
                g_emb = model.graph(torch.cat(cells))
                sizes = [len(c) for c in cells]
                row_task = torch.repeat_interleave(torch.arange(len(batch)),
                                                   torch.tensor(sizes))
                pred = model(d_emb[row_task], g_emb)
                y = torch.cat([targets[t][r] for t, r in zip(batch, rows, strict=True)])
                loss = pred.sum() * 0.0
                if "mse" in config.loss:
                    loss = loss + nn.functional.mse_loss(pred, y)
                if "rank" in config.loss:
                    parts = zip(pred.split(sizes), y.split(sizes), strict=True)
                    loss = loss + config.rank_weight * torch.stack(
                        [_rank_loss(p, t) for p, t in parts]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(batch)
            point = {"epoch": epoch, "loss": total / len(order)}
            if len(val_ids) and (epoch % config.eval_every == 0 or epoch == epochs):
                metrics = evaluate_predictor(model, data, val_ids, config)
                point.update(metrics["summary"])
                score = metrics["summary"][f"{config.select}_mean"]
                if score > best["score"]:
                    best = {"epoch": epoch, "score": score, "metrics": metrics,
                            "state": copy.deepcopy(model.state_dict())}
            curve.append(point)
            bars.advance(bar, status=f"loss {point['loss']:.3f}")
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    info = {"tasks": len(train_ids), "epochs": epochs, "best_epoch": best["epoch"], "curve": curve,
            "seconds": round(time.perf_counter() - start, 1)}
    if best["metrics"] is not None:
        info["holdout"] = best["metrics"]
    return model, info


# ----- scoring and metrics -------------------------------------------------------------------
@torch.no_grad()
def predict_scores(model: Predictor, sets: list[list[torch.Tensor]], types: torch.Tensor,
                   graph_emb: torch.Tensor | None = None) -> np.ndarray:
    """Predicted score of each cell, averaged over the dataset encodings of ``sets``."""
    model.eval()
    d_emb = model.embed_data(*pad_sets(sets))
    g = model.graph(types) if graph_emb is None else graph_emb
    return model.score(d_emb, g).mean(0).numpy()


def evaluate_predictor(model: Predictor, data: MetaTrainData, ids,
                       config: MetaD2AConfig, seed: int = 12345) -> dict[str, Any]:
    """Per-task Pearson / Spearman / Kendall and top-1 regret on tasks ``ids`` (predictions
    averaged over ``eval_resamples`` image sets drawn with a fixed seed)."""
    gen = torch.Generator().manual_seed(seed)
    per_task = []
    for t in ids:
        sets = sample_sets(data.pools[t], config.images_per_class, config.eval_resamples, gen)
        pred = predict_scores(model, sets, predictor_inputs(data.archs[t], config))
        acc = data.accuracy[t]
        rec = {"task": data.task_keys[t], "n": len(acc), **ranking_metrics(pred, acc)}
        per_task.append(rec)
    return {"per_task": per_task, "summary": summarize(per_task)}
