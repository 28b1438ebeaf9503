"""Transfer from similar tasks: the task-similarity NAS family (Le et al. 2021) and two baselines.

All three are meta-learned from a knowledge base (KB) in the same way: every KB task's measured
cells are ranked by the shared held-out accuracy (:mod:`metanas.kb.views`), and, for the two
methods that compare tasks, every KB task is rebuilt from its stored spec and embedded by its
Fisher information (:mod:`metanas.features.fisher`).

* ``fisher-nearest`` embeds the new task, takes the ``k`` nearest KB tasks by Fisher distance
  and searches only the neighbourhood of their best cells: their top cells are trained first,
  then a short regularized evolution mutates the best trained cells, never leaving ``radius``
  edges of a seed cell. Candidates are trained on the target task with the recipe, within the
  budget (:class:`~metanas.methods.baselines.TrainingSearch` runs the loop); the embedding's
  time counts towards ``search_seconds`` and the seconds budget.
* ``nearest-best`` hands out the best measured cell of the nearest KB task (no training).
* ``global-prior`` hands out the cell best on average over the KB (highest shrunken mean
  per-task z-score among cells measured on at least ``min_tasks`` tasks; with several sources
  each source votes once; no task input).

The three share one checkpoint format ("metanas.transfer/1", safetensors): the config, the probe
config and its hash, every KB task's top cells (JSON metadata), the global prior and, when
meta-trained by a Fisher method, the square roots of the tasks' embeddings (float16 tensor
``sqrt_fisher``, one row per task). So one shipped file serves all three methods.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from metanas.data import ImageDataset, load_dataset
from metanas.data.locate import find_source
from metanas.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    KnowledgeBaseError,
    first_line,
)
from metanas.features.fisher import (
    EmbeddingCache,
    ProbeConfig,
    fisher_distances,
    fisher_embedding,
    probe_network,
)
from metanas.kb.views import TARGET_METRICS, accuracy_table, source_names, top_architectures
from metanas.methods.baselines import DEFAULT_EVALUATIONS, TrainingSearch
from metanas.methods.checkpoints import meta_json, read_checkpoint, write_checkpoint
from metanas.methods.interface import (
    Budget,
    Candidate,
    MetaLearnedMethod,
    SearchResult,
    config_from_options,
)
from metanas.methods.options import (
    FisherNearestOptions,
    GlobalPriorOptions,
    NearestBestOptions,
    check_value,
)
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import TaskSpec, make_task, proxy_resolution
from metanas.training import get_recipe
from metanas.version import __version__

__all__ = ["FisherNearest", "GlobalPrior", "NearestBest", "TransferConfig", "TransferMethod"]

CHECKPOINT_FORMAT = "metanas.transfer/1"


@dataclass
class TransferConfig:
    """Meta-training options (``--set KEY=VALUE`` of ``metanas meta-train``)."""

    metric: str = "heldout"
    """Which KB number ranks cells (see :data:`metanas.kb.views.TARGET_METRICS`)."""
    recipe: str | None = None
    """Only KB evaluations of this recipe name (default: all)."""
    keep_cells: int = 10
    """Top measured cells stored per KB task."""
    min_tasks: int | None = None
    """global-prior: a cell must be measured on this many tasks (default: a quarter of the
    KB's tasks, at least 2, at most all; with several sources 1, counted within a source)."""
    prior_size: int = 50
    """global-prior: ranked cells stored."""
    exclude_sources: str = ""
    """Knowledge sources left out (comma list), e.g. a published table held out to judge the
    picks on it."""
    prior_exclude_sources: str = ""
    """Sources whose tasks do not vote in the global prior (comma list; the prior is what
    global-prior hands out); the nearest-task methods still use their tasks. For a source of
    one narrow regime (Omniglot's many-way, few-image, 28 px tasks) that would sway a
    task-agnostic ranking toward its regime's cells (docs/fisher.md)."""
    probe_steps: int = ProbeConfig.steps
    probe_lr: float = ProbeConfig.lr
    probe_samples: int = ProbeConfig.samples
    probe_C: int = ProbeConfig.C
    probe_init_seed: int = ProbeConfig.init_seed
    seed: int = ProbeConfig.seed
    """The probe's batch order and Fisher samples (``metanas meta-train --seed``)."""

    def __post_init__(self) -> None:
        if self.metric not in TARGET_METRICS:
            raise ConfigError(f"metric must be one of {', '.join(TARGET_METRICS)}, "
                              f"got {self.metric!r}")
        if self.keep_cells < 1 or self.prior_size < 1:
            raise ConfigError("keep_cells and prior_size must be >= 1")
        if self.min_tasks is not None and self.min_tasks < 1:
            raise ConfigError(f"min_tasks must be >= 1, got {self.min_tasks}")
        self.probe()  # validates the probe fields

    def probe(self) -> ProbeConfig:
        return ProbeConfig(steps=self.probe_steps, lr=self.probe_lr, samples=self.probe_samples,
                           C=self.probe_C, init_seed=self.probe_init_seed, seed=self.seed)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TransferConfig:
        return config_from_options(cls, options, "the transfer methods",
                                   also=("source", "cache"))


@dataclass
class KBTask:
    """What a checkpoint keeps of one KB task: identity and its best measured cells."""

    key: str
    name: str
    resolution: int | None
    num_classes: int | None
    cells: list[tuple[str, float]] = field(default_factory=list)
    """(architecture, accuracy), best first."""


# ----- meta-training helpers ------------------------------------------------------------------
def resolve_source(task: dict, source: str | Path | None) -> Path | str:
    """Where the dataset a KB task was drawn from lives (:func:`metanas.data.locate.find_source`)."""
    return find_source(task["source"], source,
                       what=f"knowledge-base task {task['name']!r}")


def kb_task_entries(kb, config: TransferConfig) -> tuple[list[KBTask], dict[str, dict], dict]:
    """Per-task top cells, the task rows, and the accuracy table they come from."""
    excluded = source_names(config.exclude_sources)
    rows = {t["key"]: t for t in kb.tasks() if t.get("source") not in excluded}
    table = {k: v for k, v in accuracy_table(kb, metric=config.metric,
                                             recipe=config.recipe).items() if k in rows}
    entries = []
    for key in sorted(table, key=lambda k: rows[k]["id"]):
        accs = table[key]
        cells = sorted(accs.items(), key=lambda item: (-item[1], item[0]))[: config.keep_cells]
        row = rows[key]
        entries.append(KBTask(key, row.get("name") or key[:12], row.get("resolution"),
                              row.get("num_classes"), [(a, float(v)) for a, v in cells]))
    if not entries:
        raise KnowledgeBaseError(f"the knowledge base has no evaluations (metric {config.metric}, "
                                 f"recipe {config.recipe or 'any'})")
    return entries, rows, table


def embed_kb_tasks(entries: list[KBTask], rows: dict[str, dict], probe: ProbeConfig, *,
                   source: str | Path | None, cache: EmbeddingCache | None,
                   progress: bool) -> tuple[list[KBTask], np.ndarray, list[str]]:
    """Fisher embeddings of the tasks that can be rebuilt from their spec (others skipped)."""
    datasets: dict[str, ImageDataset] = {}
    kept, vectors, skipped = [], [], []
    with Bars(progress, transient=True) as bars:
        bar = bars.add("Fisher embeddings of KB tasks", len(entries))
        for entry in entries:
            row = rows[entry.key]
            spec = row.get("spec") or {}
            if "classes" not in spec:  # e.g. an imported published table: no images to embed
                skipped.append(entry.key)
                bars.advance(bar)
                continue
            vec = cache.get(entry.key) if cache is not None else None
            if vec is None:
                path = resolve_source(row, source)
                if str(path) not in datasets:
                    datasets[str(path)] = load_dataset(path, progress=progress)
                data = datasets[str(path)]
                if row.get("fingerprint") and data.fingerprint != row["fingerprint"]:
                    raise ConfigError(f"dataset {path} is not the one KB task {entry.name!r} was "
                                      "drawn from (fingerprints differ); pass source=PATH (--set source=PATH)")
                try:
                    task = make_task(data, TaskSpec.from_dict(spec))
                except DatasetError as exc:
                    raise ConfigError(f"cannot rebuild KB task {entry.name!r}: {exc}") from None
                vec = fisher_embedding(task, probe)
                if cache is not None:
                    cache.put(entry.key, vec)
            kept.append(entry)
            vectors.append(vec)
            bars.advance(bar, status=entry.name[-24:])
    if not kept:
        raise KnowledgeBaseError("no knowledge-base task has a spec to rebuild its images from")
    return kept, np.stack(vectors), skipped


def _prior(table: dict, config: TransferConfig, sources: dict[str, str] | None = None,
           ) -> tuple[list[tuple[str, float, int]], int, int]:
    """The ranked global prior of ``table``, the min_tasks it used, and the tasks it counted.

    One source: the shrunken mean per-task z-score over cells measured on ``min_tasks`` tasks.
    Several (``sources``: task key -> source): **each source votes once**: a cell's score is
    the mean over sources of its score within each source (0, the average, where a source did
    not measure it), with ``min_tasks`` (default 1) applied within a source. Pooling tasks
    instead would let the source with most tasks decide (MetaD2A's 3,031 one- or two-cell
    tasks against one dense 200-epoch table), and a quarter of all tasks is a count no cell of
    a sparse source reaches."""
    n_tasks = len([t for t in table.values() if len(t) >= 2])
    groups: dict[str, dict] = {}
    for key, accs in table.items():
        if len(accs) >= 2:  # a one-cell task has no z-score: it is no voter
            groups.setdefault((sources or {}).get(key, ""), {})[key] = accs
    if len(groups) < 2:
        min_tasks = config.min_tasks or min(max(2, math.ceil(n_tasks / 4)), max(n_tasks, 1))
        return top_architectures(table, config.prior_size, min_tasks=min_tasks), min_tasks, n_tasks
    min_tasks = config.min_tasks or 1
    score: dict[str, float] = {}
    count: dict[str, int] = {}
    for sub in groups.values():
        for arch, value, tasks in top_architectures(sub, None, min_tasks=min_tasks):
            score[arch] = score.get(arch, 0.0) + value / len(groups)
            count[arch] = count.get(arch, 0) + tasks
    ranked = sorted(score, key=lambda a: (-score[a], a))[: config.prior_size]
    return [(a, score[a], count[a]) for a in ranked], min_tasks, n_tasks


# ----- the shared base ------------------------------------------------------------------------
class TransferMethod(MetaLearnedMethod):
    """Shared meta-training and checkpoint handling of the transfer methods."""

    needs_embeddings: ClassVar[bool] = True

    def __init__(self, *, config: TransferConfig, tasks: list[KBTask],
                 sqrt_fisher: np.ndarray | None, prior: list[tuple[str, float, int]],
                 info: dict[str, Any]) -> None:
        self.config = config
        self.probe = config.probe()
        self.tasks = tasks
        self.sqrt_fisher = sqrt_fisher
        self.prior = prior
        self.info = info

    # ----- meta-training ------------------------------------------------------------------
    @classmethod
    def meta_train(cls, kb, *, source: str | Path | None = None, cache: bool = True,
                   progress: bool = False, **options) -> TransferMethod:
        """Learn from ``kb``; ``source`` is where its tasks' images are (default: looked up by
        the tasks' source name in the shared datasets folder), ``cache=False`` recomputes
        every embedding instead of reusing ``cache_dir()/fisher``."""
        start = time.perf_counter()
        config = TransferConfig.from_options(options)
        cache = check_value("the transfer methods", "cache", bool, cache, {})
        entries, rows, table = kb_task_entries(kb, config)
        non_voting = source_names(config.prior_exclude_sources)
        sources = {k: str(rows[k].get("source") or "") for k in table}
        table_prior = {k: v for k, v in table.items() if sources[k] not in non_voting}
        if not table_prior:
            raise ConfigError(f"prior_exclude_sources={config.prior_exclude_sources!r} leaves "
                              "no task to vote in the global prior")
        prior, min_tasks, n_tasks = _prior(table_prior, config, sources)
        if not prior:
            raise KnowledgeBaseError(f"no cell is measured on {min_tasks} or more tasks (of "
                                     f"{n_tasks}); lower min_tasks")
        # the same prior over the tasks of each resolution (global-prior --set resolution=match)
        by_resolution = {}
        for res in sorted({int(r["resolution"]) for r in rows.values() if r.get("resolution")}):
            sub = {k: v for k, v in table_prior.items() if rows[k].get("resolution") == res}
            res_prior = _prior(sub, config, sources)[0] if sub else []
            if res_prior:
                by_resolution[str(res)] = res_prior
        sqrt_fisher, skipped = None, []
        if cls.needs_embeddings:
            probe = config.probe()
            store = EmbeddingCache.default(probe) if cache else None
            entries, vectors, skipped = embed_kb_tasks(entries, rows, probe, source=source,
                                                       cache=store, progress=progress)
            # stored as float16 (a checkpoint stays small); round now so that a loaded
            # checkpoint gives exactly the distances of the trained object
            sqrt_fisher = np.sqrt(vectors).astype(np.float16).astype(np.float32)
        info = {
            "tasks": len(entries),
            "skipped_tasks": skipped,
            "evaluations": int(sum(len(v) for v in table.values())),
            "min_tasks": min_tasks,
            "resolutions": sorted({int(t.resolution) for t in entries if t.resolution}),
            "prior_by_resolution": by_resolution,
            "train_seconds": round(time.perf_counter() - start, 2),
        }
        return cls(config=config, tasks=entries, sqrt_fisher=sqrt_fisher, prior=prior, info=info)

    # ----- task similarity ----------------------------------------------------------------
    def nearest_tasks(self, dataset: ImageDataset, *, resolution: int, seed: int,
                      max_train_per_class: int | None) -> tuple[list[tuple[KBTask, float]], float]:
        """KB tasks by Fisher distance to ``dataset`` (nearest first), and the seconds it took."""
        if self.sqrt_fisher is None:
            raise CheckpointError(f"this {self.name} checkpoint holds no Fisher embeddings")
        t0 = time.perf_counter()
        task = make_task(dataset, resolution=resolution,
                         max_train_per_class=max_train_per_class, seed=seed)
        query = fisher_embedding(task, self.probe)
        dist = fisher_distances(self.sqrt_fisher.astype(np.float64) ** 2, query)
        order = np.argsort(dist, kind="stable")
        return [(self.tasks[i], float(dist[i])) for i in order], time.perf_counter() - t0

    def kb_resolution(self, dataset: ImageDataset) -> int:
        """The KB resolution closest to the dataset's own image side."""
        return proxy_resolution(max(dataset.image_size), self.info.get("resolutions") or (16, 32))

    # ----- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> None:

        path = Path(path)
        tensors = {}
        if self.sqrt_fisher is not None:
            tensors["sqrt_fisher"] = torch.as_tensor(self.sqrt_fisher.astype(np.float16))
        meta = {
            "format": CHECKPOINT_FORMAT,
            "method": self.name,
            "metanas_version": __version__,
            "config": json.dumps(asdict(self.config)),
            "probe": json.dumps(asdict(self.probe)),
            "probe_hash": self.probe.hash,
            "tasks": json.dumps([asdict(t) for t in self.tasks]),
            "prior": json.dumps(self.prior),
            "info": json.dumps(self.info),
        }
        write_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> TransferMethod:
        """Read a checkpoint written by :meth:`save` (format and probe checked)."""
        path = Path(path)
        tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "transfer-method")
        try:
            config = TransferConfig(**json.loads(meta["config"]))
            if config.probe().hash != meta["probe_hash"]:
                raise CheckpointError(f"{path}: probe config does not match its hash")
            tasks = [KBTask(**{**t, "cells": [tuple(c) for c in t["cells"]]})
                     for t in json.loads(meta["tasks"])]
            prior = [tuple(p) for p in json.loads(meta["prior"])]
            info = meta_json(path, meta, "info", cls.name)
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{path}: incompatible {cls.name} checkpoint "
                                  f"({first_line(exc)})") from None
        sqrt_fisher = None
        if cls.needs_embeddings:
            if "sqrt_fisher" not in tensors:
                raise CheckpointError(
                    f"{path} holds no Fisher task embeddings (meta-trained as "
                    f"{meta.get('method', '?')}); {cls.name} needs a checkpoint meta-trained "
                    "by fisher-nearest or nearest-best")
            sqrt_fisher = tensors["sqrt_fisher"].float().numpy()
            try:
                with torch.device("meta"):  # its size only: no memory for a huge config
                    net = probe_network(config.probe(), 2)
            except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
                raise CheckpointError(f"{path}: incompatible {cls.name} checkpoint (its probe "
                                      f"does not build: {first_line(exc)})") from None
            dim = sum(p.numel() for k, p in net.named_parameters()
                      if not k.startswith("classifier."))
            if sqrt_fisher.shape != (len(tasks), dim):
                raise CheckpointError(f"{path}: embeddings of shape {tuple(sqrt_fisher.shape)} do "
                                      f"not match {len(tasks)} tasks x {dim} probe weights")
        return cls._build(device, config=config, tasks=tasks, sqrt_fisher=sqrt_fisher,
                          prior=prior, info=info)

    @classmethod
    def _build(cls, device: str, **state) -> TransferMethod:
        """An instance from checkpoint state; methods that train use ``device``."""
        return cls(**state)


# ----- the three methods ----------------------------------------------------------------------
class GlobalPrior(TransferMethod):
    """The cell best on average over the knowledge base; ignores the target task.

    ``resolution="match"`` averages only over the KB tasks at the KB resolution closest to the
    dataset's image side (the one thing about the task it looks at): on KB v1 the all-task
    prior is dominated by 16 px tasks, where cell capacity barely matters.
    """

    name = "global-prior"
    Options = GlobalPriorOptions
    no_budget_reason = "it is a lookup, no training"
    needs_embeddings = False

    def _search(self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
                progress: bool, resolution: str) -> SearchResult:
        t0 = time.perf_counter()
        prior, res = self.prior, None
        if resolution == "match":
            by_res = self.info.get("prior_by_resolution")
            if not by_res:
                raise CheckpointError("this global-prior checkpoint has no per-resolution priors "
                                      "(meta-trained before they existed): meta-train it again")
            res = proxy_resolution(max(dataset.image_size), sorted(int(r) for r in by_res))
            prior = [tuple(p) for p in by_res[str(res)]]
        candidates = [Candidate(a, float(s), {"tasks": int(n)}) for a, s, n in prior[:top]]
        return SearchResult(
            method=self.name, dataset=dataset.name, candidates=candidates,
            search_seconds=time.perf_counter() - t0,
            details={"min_tasks": self.info.get("min_tasks"), "kb_tasks": len(self.tasks),
                     "resolution": res, "prior_over": resolution,
                     "score": "shrunken mean per-task z-score (with several sources: their "
                              "mean, each source voting once)"},
        )


class NearestBest(TransferMethod):
    """The best measured cells of the knowledge-base task nearest by Fisher distance."""

    name = "nearest-best"
    Options = NearestBestOptions
    no_budget_reason = "it embeds the task and looks up the nearest task's best cells"

    def _search(self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
                progress: bool, max_train_per_class: int | None) -> SearchResult:
        res = self.kb_resolution(dataset)
        ranked, seconds = self.nearest_tasks(dataset, resolution=res, seed=seed,
                                             max_train_per_class=max_train_per_class)
        nearest, dist = ranked[0]
        candidates = [Candidate(a, acc, {"task": nearest.name, "distance": dist})
                      for a, acc in nearest.cells[:top]]
        return SearchResult(
            method=self.name, dataset=dataset.name, candidates=candidates,
            search_seconds=seconds, timings={"embedding_seconds": seconds},
            details={"resolution": res, "score": "accuracy measured on the nearest KB task",
                     "neighbours": _describe(ranked[:5])},
        )


class FisherNearest(TransferMethod, TrainingSearch):
    """Train cells near the best cells of the k nearest KB tasks; see the module docstring.

    Budget: like random search and REA (default 10 evaluations); the Fisher embedding's time
    is part of ``search_seconds`` and is taken from a seconds budget.
    """

    name = "fisher-nearest"
    Options = FisherNearestOptions
    budget_kinds = frozenset({"seconds", "evaluations"})
    trains_candidates = True

    def __init__(self, *, recipe: str = "cpu-proxy", device: str = "cpu",
                 max_train_per_class: int | None = 500, **state) -> None:
        TransferMethod.__init__(self, **state)
        TrainingSearch.__init__(self, recipe, max_train_per_class=max_train_per_class,
                                device=device)
        self._seed_cells: list[NB201Arch] = []
        self._radius = 2
        self._tournament = (10, 3)

    @classmethod
    def _build(cls, device: str, **state) -> FisherNearest:
        return cls(device=device, **state)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu",
             recipe: str = "cpu-proxy") -> FisherNearest:
        """Read a checkpoint; candidates will be trained with ``recipe`` on ``device``."""
        method = super().load(path, device=device)
        method.recipe = get_recipe(recipe)
        return method

    def _search(self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
                progress: bool, k: int, cells_per_task: int, radius: int, population: int,
                sample_size: int, recipe: str | None,
                max_train_per_class: int | None) -> SearchResult:
        budget = budget or Budget(evaluations=DEFAULT_EVALUATIONS)
        saved = (self.recipe, self.max_train_per_class)
        if recipe is not None:
            self.recipe = get_recipe(recipe)
        if max_train_per_class is not None:
            self.max_train_per_class = max_train_per_class
        try:
            ranked, seconds = self.nearest_tasks(dataset, resolution=self.kb_resolution(dataset),
                                                 seed=seed,
                                                 max_train_per_class=self.max_train_per_class)
            neighbours = ranked[:k]
            self._seed_cells = _seed_cells(neighbours, cells_per_task)
            self._radius = radius
            self._tournament = (population, sample_size)
            left = None if budget.seconds is None else max(budget.seconds - seconds, 1e-9)
            result = TrainingSearch._search(
                self, dataset, top=top, seed=seed, progress=progress,
                budget=Budget(seconds=left, evaluations=budget.evaluations))
        finally:
            self.recipe, self.max_train_per_class = saved
        result.search_seconds += seconds
        result.timings["embedding_seconds"] = seconds
        result.details.update(
            budget=budget.describe(), k=k, radius=radius,
            neighbours=_describe(neighbours),
            seed_cells=[a.to_string() for a in self._seed_cells],
        )
        return result

    def propose(self, rng: np.random.Generator, history: list[Candidate]):
        """Seed cells first (nearest task first), then tournament-selected single-edge
        mutations of recent trained cells that stay within ``radius`` edges of a seed."""
        yield from self._seed_cells
        population, sample_size = self._tournament
        while True:
            alive = history[-population:]
            picks = rng.choice(len(alive), size=min(sample_size, len(alive)), replace=False)
            parent = max((alive[i] for i in picks), key=lambda c: c.score)
            child = NB201Arch.from_string(parent.arch).mutate(rng)
            if seed_distance(child, self._seed_cells) > self._radius:
                # the parent sits on the boundary: step from a seed cell instead
                start = self._seed_cells[int(rng.integers(len(self._seed_cells)))]
                child = start.mutate(rng) if self._radius >= 1 else start
            yield child


def seed_distance(arch: NB201Arch, seeds: list[NB201Arch]) -> int:
    """Edges on which ``arch`` differs from the closest seed cell."""
    return min(sum(a != b for a, b in zip(arch.op_indices, s.op_indices, strict=True))
               for s in seeds)


def _seed_cells(neighbours: list[tuple[KBTask, float]], per_task: int) -> list[NB201Arch]:
    out, seen = [], set()
    for task, _ in neighbours:
        taken = 0
        for arch_str, _acc in task.cells:
            arch = NB201Arch.from_string(arch_str)
            if arch.canonical_form in seen or not arch.is_connected:
                continue
            seen.add(arch.canonical_form)
            out.append(arch)
            taken += 1
            if taken >= per_task:
                break
    if not out:
        raise CheckpointError("the nearest knowledge-base tasks have no measured cells")
    return out


def _describe(ranked: list[tuple[KBTask, float]]) -> list[dict[str, Any]]:
    return [{"task": t.name, "key": t.key, "distance": round(d, 6), "resolution": t.resolution,
             "best": t.cells[0][0] if t.cells else None} for t, d in ranked]
