"""BASE (Shaw et al., NeurIPS 2019, "Meta Architecture Search") as a metanas search method.

Meta-training (:mod:`metanas.methods.base.meta`) learns one supernet state (weights AND
architecture logits) from which a short adaptation on a new dataset gives both good weights and
a good architecture distribution. Search = adapt the meta-supernet on the target dataset
(weights and logits jointly, Gumbel-softmax op mixing, the same inner loop as meta-training),
then derive: NB201 cells ranked by the summed log-probability of the adapted distribution
(argmax per edge first); DARTS genotypes by the top-2 (input, op) pairs per node.

Search options (:class:`metanas.methods.options.BASEOptions`, ``--set KEY=VALUE`` on the
CLI): ``mode`` ``adapt`` | ``prior`` (derive from the meta-supernet, no adaptation),
``adapt_steps``, ``freeze_arch`` (ablation: logits fixed while adapting), ``sampling``
``gumbel`` | ``softmax`` (ablation), ``subsets`` (average the distributions of several
adaptations on different image/class subsets), ``subset_classes``, ``space``,
``max_train_per_class``; ``prior`` ``kb`` (default) | ``none``: add ``prior_strength`` x the
centred log of the knowledge base's per-edge op frequencies among the best fully trained
cells (its published sources, :func:`metanas.kb.views.op_prior`; ``prior_exclude`` leaves
sources out, ``prior_kb`` names another knowledge base) to the cell logits before adapting;
``warmup`` (default 50) steps move only the weights before the logits do. Without them a
30 s digits adaptation collapsed to pooling and skip cells (0 convolutions; with both: 5,
``docs/base.md``). Budget: ``--budget SECONDS`` caps adaptation wall time (without
``adapt_steps`` it adapts until the time is spent); evaluations do not apply.

The adapted supernets of the last search are kept in :attr:`BASEMethod.last_adaptations`;
each :class:`Adaptation` can be saved (:meth:`Adaptation.save`, a ``metanas.base/1`` checkpoint
with its classifier) or cut into the discrete network of a cell with inherited weights
(:meth:`Adaptation.network`).
"""

from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metanas.data import ImageDataset
from metanas.errors import ConfigError
from metanas.methods.base.checkpoint import load_checkpoint, save_checkpoint
from metanas.methods.base.config import BASEConfig
from metanas.methods.base.derive import rank_darts, rank_nb201
from metanas.methods.base.inner import (
    InnerStats,
    TaskData,
    evaluate,
    reestimate_batchnorm,
    run_inner_loop,
)
from metanas.methods.base.meta import RunOptions, meta_train, task_seed
from metanas.methods.interface import (
    Budget,
    Candidate,
    MetaLearnedMethod,
    SearchResult,
    config_from_options,
)
from metanas.methods.options import BASEOptions, BASEPriorOptions
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Network
from metanas.supernet import NB201Supernet, Supernet, TemperatureSchedule, build_supernet
from metanas.tasks import Task, TaskSpec, make_task, proxy_resolution

UNLIMITED_STEPS = 1_000_000
"""Step cap when only a time budget bounds adaptation."""


@dataclass
class Adaptation:
    """A supernet adapted to one task, with its architecture distribution."""

    supernet: Supernet
    task: Task
    config: BASEConfig
    stats: InnerStats
    tau: float
    curve: list[dict[str, float]] = field(default_factory=list)

    @property
    def probabilities(self) -> dict[str, np.ndarray]:
        return self.supernet.probabilities()

    def accuracy(self, split: str = "val", weights: str = "expected") -> float:
        x, y = {"val": (self.task.x_val, self.task.y_val),
                "test": (self.task.x_test, self.task.y_test),
                "train": (self.task.x_train, self.task.y_train)}[split]
        dev = next(self.supernet.parameters()).device
        return evaluate(self.supernet, x.to(dev), y.to(dev), weights=weights, tau=self.tau,
                        calibrate=self.task.x_train.to(dev))

    def network(self, arch: str | None = None, *, in_channels: int | None = None,
                calibrate: bool = False) -> NB201Network:
        """The discrete NB201 network of ``arch`` (default: the most probable cell) with the
        adapted weights (the task's input head as stem, the adapted classifier).

        ``in_channels``: a plain NB201Network for inputs of that many channels (the head as
        its stem, see :meth:`NB201Supernet.export_network`; it saves as a model file).
        ``calibrate``: re-estimate its BatchNorm statistics on the task's training images
        (the supernet's were gathered under mixtures of ops, not this one cell)."""
        if not isinstance(self.supernet, NB201Supernet):
            raise ConfigError("network() cuts NB201 cells; this is a "
                              f"{self.supernet.space} supernet")
        if arch is None:
            arch = rank_nb201(self.probabilities["cell"], 1)[0][0]
        net = self.supernet.export_network(arch, self.task.resolution, in_channels)
        if calibrate:
            recalibrate_network(net, self.task.x_train)
        return net

    def save(self, path: str | Path) -> None:
        """The adapted supernet as a ``metanas.base/1`` checkpoint (loads with
        :meth:`BASEMethod.load`), classifier included."""
        info = {"adapted_on": self.task.describe(), "adapt_steps": self.stats.steps}
        save_checkpoint(path, self.supernet, self.config, info, with_classifier=True)


def recalibrate_network(net: torch.nn.Module, x: torch.Tensor, batch: int = 256,
                        max_images: int = 1024) -> None:
    """Every BatchNorm's running statistics re-estimated on (the first ``max_images`` of)
    ``x`` as a cumulative average; the network ends in eval mode."""
    reestimate_batchnorm(net, net, x, batch, max_images)
    net.eval()


@functools.lru_cache(maxsize=8)
def _kb_op_prior(kb: str, exclude: tuple[str, ...]) -> np.ndarray:
    """The knowledge base's op prior, read once per process (it scans 20,000 evaluations)."""
    from metanas.kb import open_kb
    from metanas.kb.views import op_prior

    with open_kb(kb) as store:
        return op_prior(store, exclude=exclude)


class BASEMethod(MetaLearnedMethod):
    """Meta-learned supernet; search adapts it to the dataset and derives the cell."""

    name = "base"
    Options = BASEOptions
    budget_kinds = frozenset({"seconds"})

    def __init__(self, supernet: Supernet, config: BASEConfig,
                 info: dict[str, Any] | None = None, *, device: str = "cpu") -> None:
        self.supernet = supernet
        self.config = config
        self.info = dict(info or {})
        self.device = torch.device(device)
        self.last_adaptations: list[Adaptation] = []

    @classmethod
    def untrained(cls, config: BASEConfig | None = None, *, seed: int = 0,
                  device: str = "cpu") -> BASEMethod:
        """A freshly initialised supernet (the "from scratch" reference)."""
        config = config or BASEConfig()
        torch.manual_seed(seed)
        return cls(build_supernet(config.supernet_config()), config, {"meta_step": 0},
                   device=device)

    # ----- meta-training ------------------------------------------------------------------
    @classmethod
    def meta_train(cls, kb=None, *, progress: bool = False, source: str | None = None,
                   nproc: int = 1, state: str | None = None, resume: bool = False,
                   save_every: int = 25, log: str | None = None, stop_after: int | None = None,
                   device: str = "cpu", threads: int = 1, **options) -> BASEMethod:
        """Algorithm 1 on N-way tasks of ``source`` (default: Tiny-ImageNet from the
        development datasets). ``kb`` is accepted for the common interface and not used: BASE
        learns from images, not from recorded evaluations. ``options`` are
        :class:`BASEConfig` fields; the rest are :class:`RunOptions`."""
        config = config_from_options(BASEConfig, options, "base", also=tuple(
            f.name for f in fields(RunOptions)))
        run = config_from_options(RunOptions, dict(
            source=None if source is None else str(source), nproc=nproc, state=state,
            resume=resume, save_every=save_every, log=log, stop_after=stop_after, device=device,
            threads=threads, progress=progress), "base")
        net, info = meta_train(config, run)
        return cls(net, config, info)

    # ----- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        save_checkpoint(path, self.supernet, self.config, self.info)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> BASEMethod:
        net, config, info = load_checkpoint(path)
        return cls(net, config, info, device=device)

    # ----- adaptation ---------------------------------------------------------------------
    def task_resolution(self, dataset: ImageDataset) -> int:
        return proxy_resolution(max(dataset.image_size), self.supernet.resolutions)

    def make_task(self, dataset: ImageDataset, *, seed: int = 0,
                  max_train_per_class: int | None = 500,
                  subset_classes: int | None = None) -> Task:
        """The adaptation task: all classes (or a seeded random subset of ``subset_classes``),
        at the head resolution closest to the images."""
        classes = tuple(range(dataset.num_classes))
        if subset_classes is not None and subset_classes < dataset.num_classes:
            if subset_classes < 2:
                raise ConfigError(f"subset_classes must be >= 2, got {subset_classes}")
            rng = np.random.default_rng(seed)
            classes = tuple(sorted(int(c) for c in rng.choice(classes, subset_classes,
                                                              replace=False)))
        spec = TaskSpec(classes=classes, resolution=self.task_resolution(dataset),
                        max_train_per_class=max_train_per_class, seed=seed)
        return make_task(dataset, spec)

    def adapt(self, task: Task, *, seed: int = 0, steps: int | None = None,
              seconds: float | None = None, freeze_arch: bool = False,
              sampling: str | None = None, curve_every: int | None = None,
              curve_split: str = "test", progress: bool = False, bilevel: bool = False,
              tau: float | TemperatureSchedule | None = None, arch_warmup: int = 0,
              prior_logits: np.ndarray | None = None) -> Adaptation:
        """Adapt a copy of the meta-supernet to ``task`` (weights and logits). With
        ``curve_every``, record accuracy (expected weights, eval mode, BatchNorm statistics
        re-estimated on training images) on ``curve_split`` every that many steps (not counted
        in the adaptation time). ``bilevel`` and ``tau`` serve the DARTS/GDAS baselines.
        ``arch_warmup``: steps of weights only before the logits move; ``prior_logits`` are
        added to the cell logits first (a knowledge-base prior, see :meth:`search`)."""
        cfg = self.config
        overrides: dict[str, Any] = {"freeze_arch": bool(freeze_arch), "bilevel": bilevel,
                                     "arch_warmup": int(arch_warmup)}
        if sampling is not None:
            overrides["sampling"] = sampling
        overrides["steps"] = steps if steps is not None else (
            cfg.adapt_steps if seconds is None else UNLIMITED_STEPS)
        inner = cfg.adaptation(**overrides)
        net = copy.deepcopy(self.supernet).to(self.device)
        net.reset_classifier(task.num_classes)
        if prior_logits is not None:
            if "cell" not in net.arch or tuple(net.arch["cell"].shape) != prior_logits.shape:
                raise ConfigError("a knowledge-base prior applies to the NB201 cell supernet")
            with torch.no_grad():
                net.arch["cell"].add_(torch.as_tensor(prior_logits, dtype=torch.float32,
                                                      device=self.device))
        data = TaskData.from_task(task, self.device)
        schedule = cfg.final_tau if tau is None else tau
        tau = schedule(inner.steps) if callable(schedule) else float(schedule)
        curve: list[dict[str, float]] = []
        split = {"test": (task.x_test, task.y_test), "val": (task.x_val, task.y_val)}[curve_split]
        xs, ys = split[0].to(self.device), split[1].to(self.device)

        def record(step: int) -> None:
            if curve_every and (step % curve_every == 0):
                curve.append({"step": step, "accuracy": evaluate(net, xs, ys, tau=tau,
                                                                 calibrate=data.x_train)})

        gen = torch.Generator().manual_seed(task_seed(seed, 0))
        deadline = None if seconds is None else time.perf_counter() + seconds
        with Bars(progress, transient=True) as bars:
            bar = bars.add("base adapt", inner.steps if inner.steps < UNLIMITED_STEPS else None)
            stats = run_inner_loop(
                net, data, inner, generator=gen, tau=schedule, deadline=deadline,
                callback=record if curve_every else None,
                on_step=lambda _s, loss: bars.advance(bar, status=f"loss {loss:.3f}"))
        if curve_every and (not curve or curve[-1]["step"] != stats.steps):
            curve.append({"step": stats.steps, "accuracy": evaluate(net, xs, ys, tau=tau,
                                                                    calibrate=data.x_train)})
        return Adaptation(net, task, cfg, stats, tau, curve)

    def kb_prior_logits(self, strength: float = 1.0, exclude: str = "",
                        kb: str = "default") -> np.ndarray:
        """``strength * log p`` (centred per edge) of the shipped knowledge base's op prior
        over its published full-training sources (:func:`metanas.kb.views.op_prior`)."""
        from metanas.kb.views import source_names  # the knowledge base loads on demand

        if self.supernet.space != "nb201":
            raise ConfigError("prior=kb applies to the NB201 supernet")
        logp = np.log(_kb_op_prior(kb, tuple(sorted(source_names(exclude)))))
        return (strength * (logp - logp.mean(1, keepdims=True))).astype(np.float32)

    # ----- search -------------------------------------------------------------------------
    def _search(
        self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
        progress: bool,
        mode: str,
        adapt_steps: int | None,
        freeze_arch: bool,
        sampling: str | None,
        subsets: int,
        subset_classes: int | None,
        space: str | None,
        max_train_per_class: int | None,
        prior: str,
        prior_strength: float,
        prior_exclude: str,
        prior_kb: str,
        warmup: int,
        inherit: bool,
    ) -> SearchResult:
        if space is not None and space != self.supernet.space:
            raise ConfigError(f"this base checkpoint is a {self.supernet.space} supernet; "
                              f"space={space!r} needs a {space} checkpoint")
        if inherit:
            self.check_inherit(dataset, mode=mode, subset_classes=subset_classes)
        seconds = None if budget is None else budget.seconds
        if mode == "prior" and seconds is not None:
            raise ConfigError("base mode=prior derives without adaptation: it takes no "
                              "search budget")
        result = self._run_search(dataset, top=top, seed=seed, seconds=seconds, mode=mode,
                                  adapt_steps=adapt_steps, subsets=subsets,
                                  subset_classes=subset_classes,
                                  max_train_per_class=max_train_per_class, progress=progress,
                                  budget=budget, adapt_options={
                                      "freeze_arch": freeze_arch, "sampling": sampling,
                                      "arch_warmup": warmup,
                                      "prior_logits": self.kb_prior_logits(
                                          prior_strength, prior_exclude, prior_kb)
                                      if prior == "kb" and self.supernet.space == "nb201"
                                      else None})  # the knowledge base holds NB201 cells only
        if inherit:
            result.inherited = net = self.inherited_network(result.architecture)
            ad = self.last_adaptations[0]
            result.details["inherit"] = {
                "from": f"adaptation 1 of {len(self.last_adaptations)} ({ad.task.name})",
                "C": net.config["C"], "N": net.config["N"],
                "resolution": net.config["resolution"],
                "stem_strides": net.config.get("stem_strides", 0),
                "in_channels": net.config["in_channels"],
                "num_classes": net.config["num_classes"]}
        return result

    def check_inherit(self, dataset: ImageDataset, *, mode: str = "adapt",
                      subset_classes: int | None = None) -> None:
        """``inherit=true`` needs an adaptation on all classes of an NB201 supernet; else a
        one-line error (before the search spends its time)."""
        if self.supernet.space != "nb201":
            raise ConfigError(f"base inherit=true cuts an NB201 cell out of the supernet; "
                              f"this checkpoint is a {self.supernet.space} supernet")
        if mode == "prior":
            raise ConfigError("base inherit=true needs an adapted supernet; mode=prior "
                              "derives without adaptation (use mode=adapt)")
        if subset_classes is not None and subset_classes < dataset.num_classes:
            raise ConfigError(f"base inherit=true needs the adaptation on all "
                              f"{dataset.num_classes} classes (its classifier is the final "
                              f"network's); drop subset_classes={subset_classes}")

    def inherited_network(self, arch: str) -> NB201Network:
        """The final network of ``arch`` with the weights of the last search's (first)
        adaptation: at the supernet's C and N, its input head for the task resolution as
        the stem, its classifier, BatchNorm statistics re-estimated on the task's training
        images (``inherit=true``)."""
        if not self.last_adaptations:
            raise ConfigError("base inherit=true needs an adapted supernet: the last search "
                              "did not adapt (mode=prior)")
        ad = self.last_adaptations[0]
        return ad.network(arch, in_channels=ad.task.channels, calibrate=True)

    def _run_search(self, dataset: ImageDataset, *, top: int, seed: int, seconds: float | None,
                    mode: str, adapt_steps: int | None, subsets: int,
                    subset_classes: int | None, max_train_per_class: int | None,
                    progress: bool, budget: Budget | None,
                    adapt_options: dict[str, Any]) -> SearchResult:
        """Adapt (``subsets`` times, distributions averaged) or not, derive, rank."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {"task_seconds": 0.0, "adapt_seconds": 0.0}
        adaptations: list[Adaptation] = []
        if mode == "prior":
            tables = self.supernet.probabilities()
            prior_logits = adapt_options.get("prior_logits")
            if prior_logits is not None:  # the same prior term the adaptation starts from
                logits = np.log(tables["cell"]) + prior_logits
                tables["cell"] = np.exp(logits - logits.max(1, keepdims=True))
                tables["cell"] /= tables["cell"].sum(1, keepdims=True)
            resolution = self.task_resolution(dataset)
        else:
            tables_list = []
            for i in range(subsets):
                t_task = time.perf_counter()
                task = self.make_task(dataset, seed=seed + i,
                                      max_train_per_class=max_train_per_class,
                                      subset_classes=subset_classes)
                timings["task_seconds"] += time.perf_counter() - t_task
                ad = self.adapt(task, seed=seed + i, steps=adapt_steps,
                                seconds=None if seconds is None else seconds / subsets,
                                progress=progress, **adapt_options)
                timings["adapt_seconds"] += ad.stats.seconds
                adaptations.append(ad)
                tables_list.append(ad.probabilities)
            tables = {k: np.mean([t[k] for t in tables_list], axis=0) for k in tables_list[0]}
            resolution = adaptations[0].task.resolution
        t_derive = time.perf_counter()
        if self.supernet.space == "nb201":
            ranked = rank_nb201(tables["cell"], top)
            candidates = [Candidate(a.to_string(), lp, {"log_prob": lp, "prob": math.exp(lp)})
                          for a, lp in ranked]
        else:
            ranked_d = rank_darts(tables, top)
            candidates = [Candidate(g.to_string(), lp, {"log_prob": lp, "prob": math.exp(lp)})
                          for g, lp in ranked_d]
        t_end = time.perf_counter()
        timings["derive_seconds"] = t_end - t_derive
        self.last_adaptations = adaptations
        details: dict[str, Any] = {
            "mode": mode,
            "space": self.supernet.space,
            "resolution": resolution,
            "probabilities": {k: np.round(v, 5).tolist() for k, v in tables.items()},
            "subsets": subsets,
            "budget": budget.describe() if budget is not None else None,
            "meta_step": self.info.get("meta_step"),
        }
        if adaptations:
            t_eval = time.perf_counter()
            details["adaptation"] = [{
                "steps": ad.stats.steps,
                "seconds": round(ad.stats.seconds, 3),
                "loss_first": ad.stats.losses[0] if ad.stats.losses else None,
                "loss_last": ad.stats.losses[-1] if ad.stats.losses else None,
                "supernet_val_acc": ad.accuracy("val"),
                "tau": ad.tau,
                "sampling": adapt_options.get("sampling") or self.config.sampling,
                "freeze_arch": bool(adapt_options.get("freeze_arch", False)),
                "bilevel": bool(adapt_options.get("bilevel", False)),
                "task": ad.task.name,
            } for ad in adaptations]
            timings["evaluate_seconds"] = time.perf_counter() - t_eval
        return SearchResult(method=self.name, dataset=dataset.name, candidates=candidates,
                            search_seconds=t_end - t0, space=self.supernet.space,
                            timings=timings, details=details)


class BASEPriorMethod(BASEMethod):
    """BASE's multi-task prior: the cell derived from the meta-learned architecture
    distribution without adapting to the dataset (``base --mode prior`` as a method of its
    own, so the bench and ``metanas methods`` list it with its own budget semantics)."""

    name = "base-prior"
    Options = BASEPriorOptions
    budget_kinds = frozenset()
    no_budget_reason = "it derives the cell without adaptation (method base adapts)"

    def _search(self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
                progress: bool, space: str | None, prior: str,
                prior_strength: float) -> SearchResult:
        return super()._search(dataset, top=top, seed=seed, budget=None, progress=progress,
                               **BASEOptions(mode="prior", space=space, prior=prior,
                                             prior_strength=prior_strength).as_kwargs())
