"""Build a knowledge base: sample tasks x architectures from a source, train, store.

The plan (which tasks, which architectures, which seeds) is a pure function of the options, so a
build that is killed, even with SIGKILL, and restarted recomputes the same plan, skips what the
knowledge base already holds and trains the rest. Workers only train; results come back to the
one writer (this process), which commits each evaluation in its own transaction, and the
store's UNIQUE(task, architecture, recipe, seed) constraint makes a duplicate impossible.
Workers are this process (``local``), a pool of spawned processes (``process``) or Ray tasks on
a local Ray instance or an existing cluster (``ray``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from metanas.data import ImageDataset, load_dataset
from metanas.errors import ConfigError
from metanas.kb.store import KnowledgeBase
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import Task, TaskSpec, make_task
from metanas.tasks.task import MAX_RESOLUTION, MIN_RESOLUTION
from metanas.training import get_recipe, resolve_device, train_architecture
from metanas.training.batched import train_architectures_batched

REFERENCE_CELLS = (
    # NB201's best CIFAR-10 cell and a ResNet-like cell: known-good regions every task covers.
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
)


@dataclass(frozen=True)
class BuildPlan:
    """What a build trains; every random choice derives from ``seed``."""

    source: str
    tasks: int = 10
    archs_per_task: int = 20
    anchors: int = 8
    """Architectures shared by every task (the reference cells first), so tasks can be compared."""
    n_way: tuple[int, ...] = (10,)
    resolutions: tuple[int, ...] = (16, 32)
    train_per_class: tuple[int | None, ...] = (None,)
    """Choices for a task's per-class cap on labelled images (varied so size features vary)."""
    max_test_per_class: int | None = None
    recipe: str = "cpu-proxy"
    seeds: tuple[int, ...] = (0,)
    seed: int = 0
    elite: tuple[str, ...] = ()
    """Known-good cells (e.g. the best of an earlier knowledge base) whose neighbourhoods each
    task samples, so good regions of the space are covered and not only random ones."""
    elite_per_task: int = 0
    """Per task, after the anchors: this many cells one or two edge changes away from a
    randomly chosen elite cell; the rest are uniformly random."""

    def __post_init__(self) -> None:
        if self.tasks < 1 or self.archs_per_task < 1:
            raise ConfigError("--tasks and --archs must be >= 1")
        if not 0 <= self.anchors <= self.archs_per_task:
            raise ConfigError("--anchors must be between 0 and --archs")
        if self.seed < 0 or not self.seeds or min(self.seeds) < 0:
            raise ConfigError("--seed and --seeds must be >= 0")
        if not self.n_way or min(self.n_way) < 2:
            raise ConfigError(f"--n-way must be >= 2, got {list(self.n_way)}")
        if not self.resolutions or not all(
                MIN_RESOLUTION <= r <= MAX_RESOLUTION for r in self.resolutions):
            raise ConfigError(f"--resolutions must be in [{MIN_RESOLUTION}, {MAX_RESOLUTION}] px, "
                              f"got {list(self.resolutions)}")
        if not self.train_per_class or any(c is not None and c < 2 for c in self.train_per_class):
            raise ConfigError(f"--train-per-class must be >= 2 (0 = all), got "
                              f"{[c or 0 for c in self.train_per_class]}")
        if self.elite_per_task < 0 or self.anchors + self.elite_per_task > self.archs_per_task:
            raise ConfigError("--elite must be >= 0 and --anchors + --elite at most --archs")
        if self.elite_per_task and not self.elite:
            raise ConfigError("--elite needs elite cells (--elite-from KB)")
        for cell in self.elite:
            NB201Arch.from_string(cell)
        get_recipe(self.recipe)

    def task_specs(self, dataset: ImageDataset) -> list[TaskSpec]:
        rng = np.random.default_rng([self.seed, 1])
        # Only classes that can give both a train and a validation image; when all can (as in
        # Tiny-ImageNet) the draws, and so the task keys, are those of drawing from all classes.
        eligible = np.flatnonzero(dataset.train_counts() >= 2)
        specs = []
        for i in range(self.tasks):
            n_way = int(rng.choice(self.n_way))
            if not 2 <= n_way <= len(eligible):
                raise ConfigError(
                    f"n_way {n_way} is not possible with {len(eligible)} usable classes (>= 2 "
                    f"training images) in {dataset.name}"
                )
            classes = tuple(int(eligible[c]) for c in rng.choice(len(eligible), n_way,
                                                                  replace=False))
            cap = self.train_per_class[int(rng.integers(len(self.train_per_class)))]
            specs.append(
                TaskSpec(
                    classes=classes,
                    resolution=int(rng.choice(self.resolutions)),
                    max_train_per_class=cap,
                    max_test_per_class=self.max_test_per_class,
                    seed=self.seed * 100_003 + i,
                )
            )
        return specs

    def anchor_archs(self) -> list[NB201Arch]:
        out = [NB201Arch.from_string(s) for s in REFERENCE_CELLS][: self.anchors]
        return NB201Arch.sample_distinct(self.anchors, np.random.default_rng([self.seed, 2]), start=out)

    def task_archs(self, index: int, anchors: list[NB201Arch]) -> list[NB201Arch]:
        rng = np.random.default_rng([self.seed, 3, index])
        out = list(anchors)
        if self.elite_per_task:
            elite = [NB201Arch.from_string(c) for c in self.elite]

            def near_elite() -> NB201Arch:
                parent = elite[int(rng.integers(len(elite)))]
                return parent.mutate(rng, edges=int(rng.integers(1, 3)))

            out = NB201Arch.sample_distinct(len(out) + self.elite_per_task, rng, start=out, propose=near_elite)
        return NB201Arch.sample_distinct(self.archs_per_task, rng, start=out)


@dataclass
class Job:
    """One evaluation to run; plain data so it pickles to worker processes."""

    source: str
    spec: dict
    task_key: str
    arch: str
    recipe: str
    seed: int
    device: str = "cpu"


@dataclass(frozen=True)
class Batch:
    """Evaluations of one task, seed, recipe and device trained at once as one grouped model
    (:func:`~metanas.training.batched.train_architectures_batched`); each is still stored as
    its own evaluation."""

    jobs: tuple[Job, ...]

    @property
    def device(self) -> str:
        return self.jobs[0].device


def make_batches(jobs: list[Job], size: int) -> list[Job | Batch]:
    """Jobs grouped by (task, seed) in plan order, in batches of at most ``size``; ``size`` 1
    keeps the jobs as they are (the one-at-a-time trainer)."""
    if size <= 1:
        return list(jobs)
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.task_key, job.seed, job.recipe, job.device), []).append(job)
    return [Batch(tuple(group[i : i + size])) for group in groups.values()
            for i in range(0, len(group), size)]


@dataclass
class BuildReport:
    planned: int = 0
    already_done: int = 0
    trained: int = 0
    failed: int = 0
    retried: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ----- worker side -------------------------------------------------------------------------
_CACHE: dict[str, object] = {}


def _worker_init(threads: int, parent: int | None = None) -> None:
    import threading

    import torch

    torch.set_num_threads(max(1, threads))
    if parent is not None:  # a worker whose build was killed must not live on, idle, holding GBs
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _threads_per_worker(workers: int) -> int:
    """The cores divided among the workers, but never more than ``$OMP_NUM_THREADS``: on a
    busy machine extra OpenMP threads spin and made a 1 s evaluation take 78 s."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    with contextlib.suppress(ValueError):
        threads = min(threads, max(1, int(os.environ.get("OMP_NUM_THREADS", threads))))
    return threads


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def _cached_task(source: str, spec: dict) -> Task:
    dataset = _CACHE.get(("dataset", source))
    if dataset is None:
        dataset = load_dataset(source, progress=False)
        _CACHE[("dataset", source)] = dataset
    key = ("task", source, repr(sorted(spec.items())))
    task = _CACHE.get(key)
    if task is None:
        for k in [k for k in _CACHE if k[0] == "task"]:
            del _CACHE[k]
        task = make_task(dataset, TaskSpec.from_dict(spec))
        _CACHE[key] = task
    return task


def run_job(job: Job | Batch) -> dict | list[dict]:
    """Train one (task, architecture, seed), or a batch of them at once (one result each, in
    order); runs in a worker process or inline."""
    if isinstance(job, Batch):
        first = job.jobs[0]
        task = _cached_task(first.source, first.spec)
        results = train_architectures_batched([j.arch for j in job.jobs], task, first.recipe,
                                              seed=first.seed, device=first.device)
        return [r.to_dict() for r in results]
    task = _cached_task(job.source, job.spec)
    result = train_architecture(job.arch, task, job.recipe, seed=job.seed, device=job.device)
    return result.to_dict()


_RUN_JOB: Callable[[Job | Batch], dict | list[dict]] = run_job
"""The job function the executors call; tests swap it to inject failures."""


def _ray_job(fn: Callable[[Job | Batch], dict | list[dict]], job: Job | Batch
             ) -> dict | list[dict]:
    """Body of a Ray task: one torch thread per task (each task holds one CPU)."""
    import torch

    torch.set_num_threads(1)
    return fn(job)


# ----- planner and writer ------------------------------------------------------------------
TaskDescriber = Callable[[Task], dict[str, float]]
"""Computes a task's meta-features; injected by the caller because task encoders live in a
layer above the knowledge base."""


def plan_jobs(
    kb: KnowledgeBase,
    plan: BuildPlan,
    dataset: ImageDataset,
    *,
    device: str = "cpu",
    describe: TaskDescriber | None = None,
    on_task: Callable[[int, int], None] | None = None,
) -> tuple[list[Job], int]:
    """Register the plan's tasks (with meta-features when ``describe`` is given) and list the
    evaluations still missing."""
    recipe = get_recipe(plan.recipe)
    done = kb.done_keys(recipe.hash)
    anchors = plan.anchor_archs()
    specs = plan.task_specs(dataset)
    known_keys = {t["key"] for t in kb.tasks() if t.get("meta_features") or describe is None}
    jobs, already = [], 0
    for i, spec in enumerate(specs):
        key = spec.key(dataset.fingerprint)
        if key not in known_keys:
            task = make_task(dataset, spec)
            info = task.describe()
            kb.add_task(
                key,
                name=f"{dataset.name}/{task.num_classes}way-{spec.resolution}px-{i:04d}",
                source=dataset.name,
                fingerprint=dataset.fingerprint,
                classes=list(spec.classes),
                resolution=spec.resolution,
                channels=task.channels,
                num_classes=task.num_classes,
                sizes={"train": info["n_train"], "val": info["n_val"], "test": info["n_test"]},
                seed=spec.seed,
                spec=spec.to_dict(),
                meta_features=describe(task) if describe else None,
            )
        if on_task:
            on_task(i + 1, len(specs))
        for arch in plan.task_archs(i, anchors):
            for seed in plan.seeds:
                if (key, arch.to_string(), seed) in done:
                    already += 1
                    continue
                jobs.append(
                    Job(
                        plan.source,
                        spec.to_dict(),
                        key,
                        arch.to_string(),
                        plan.recipe,
                        seed,
                        device,
                    )
                )
    return jobs, already


def _store(kb: KnowledgeBase, job: Job, result: dict, task_ids: dict[str, int],
           batched: int | None = None) -> bool:
    """``batched``: the size of the batch it was trained in (None: trained on its own)."""
    recipe = get_recipe(job.recipe)
    if job.task_key not in task_ids:
        task_ids[job.task_key] = kb.task(job.task_key)["id"]
    arch = NB201Arch.from_string(job.arch)
    arch_id = kb.add_architecture(job.arch, canonical=arch.canonical_hash())
    return kb.add_evaluation(
        task_ids[job.task_key],
        arch_id,
        recipe=recipe.name,
        recipe_hash=recipe.hash,
        seed=job.seed,
        metrics={
            k: result[k]
            for k in ("val_acc", "test_acc", "train_loss", "val_loss", "params", "macs")
        },
        recipe_config=recipe.config(),
        seconds=result["seconds"],
        device=result["device"],
        extra={"batched": batched} if batched else None,
    )


def build_kb(
    kb: KnowledgeBase,
    plan: BuildPlan,
    *,
    workers: int = 1,
    executor: str = "process",
    device: str = "cpu",
    max_retries: int = 2,
    progress: bool = True,
    limit: int | None = None,
    describe: TaskDescriber | None = None,
    ray_address: str | None = None,
    batch: int = 1,
) -> BuildReport:
    """Run (or resume) ``plan`` into ``kb``; see the module docstring for the guarantees.

    With ``executor="ray"``, ``ray_address=None`` starts a local Ray instance with ``workers``
    CPUs; an address ("auto", "ray://host:10001") joins an existing cluster, whose nodes need
    metanas installed and ``plan.source`` readable; either way at most 2 x ``workers``
    evaluations are submitted at a time.

    ``batch`` > 1 trains up to that many architectures of a task at once as one grouped model
    (a GPU stays busy; on a CPU it is slower than one at a time, see docs/knowledge_base.md);
    each evaluation is stored on its own, marked ``extra.batched``. A failed batch fails each
    of its evaluations, which a rerun trains again.
    """
    if executor not in ("local", "process", "ray"):
        raise ConfigError(f"--executor must be local, process or ray, got {executor!r}")
    if ray_address is not None and executor != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    if workers < 1:
        raise ConfigError("--workers must be >= 1")
    if limit is not None and limit < 0:
        raise ConfigError("--limit must be >= 0")
    if batch < 1:
        raise ConfigError(f"--batch-archs must be >= 1, got {batch}")
    if executor != "ray":  # a Ray cluster may have devices this machine lacks
        resolve_device(device)  # fail now rather than once per evaluation
    start = time.perf_counter()
    dataset = load_dataset(plan.source, progress=progress)
    plan.task_specs(dataset)  # --n-way against the dataset, before any progress output
    # Ray starts (or a bad --ray-address fails) before planning, which can take a while.
    session = _ray_session(workers, ray_address) if executor == "ray" else contextlib.nullcontext()
    with session, Bars(progress) as bar:
        plan_task = bar.add("register tasks", plan.tasks)
        jobs, already = plan_jobs(
            kb, plan, dataset, device=device, describe=describe,
            on_task=lambda i, n: bar.set(plan_task, i),
        )
        if limit is not None:
            jobs = jobs[:limit]
        report = BuildReport(planned=len(jobs) + already, already_done=already)
        task_ids: dict[str, int] = {}
        train_task = bar.add("train", len(jobs))
        units = make_batches(jobs, batch)
        results = _execute(units, workers, executor, max_retries, report, ray_address)
        for unit, result, error in results:
            for job, res in _per_evaluation(unit, result):
                if error is not None:
                    report.failed += 1
                    report.errors.append(f"{job.task_key[:12]} {job.arch}: {error}")
                elif _store(kb, job, res, task_ids, batched=len(unit.jobs)
                            if isinstance(unit, Batch) else None):
                    report.trained += 1
                bar.advance(train_task)
    report.seconds = time.perf_counter() - start
    return report


def _per_evaluation(unit: Job | Batch, result) -> list[tuple[Job, dict | None]]:
    if isinstance(unit, Batch):
        return list(zip(unit.jobs, result or [None] * len(unit.jobs), strict=True))
    return [(unit, result)]


def _execute(
    jobs: list[Job | Batch],
    workers: int,
    executor: str,
    max_retries: int,
    report: BuildReport,
    ray_address: str | None = None,
) -> Iterator[tuple[Job | Batch, Any, str | None]]:
    """Yield (job, result, error) as jobs finish, each job once; a job whose worker died is
    retried up to ``max_retries`` times, then reported as an error."""
    if executor == "local":
        return _execute_local(jobs)
    if executor == "ray":
        return _execute_ray(jobs, workers, max_retries, ray_address)
    return _execute_process(jobs, workers, max_retries, report)


def _execute_local(jobs: list[Job | Batch]) -> Iterator[tuple[Job | Batch, Any, str | None]]:
    for job in jobs:
        try:
            yield job, _RUN_JOB(job), None
        except Exception as exc:  # a failing evaluation must not stop the build
            yield job, None, f"{type(exc).__name__}: {exc}"


def _execute_process(
    jobs: list[Job | Batch], workers: int, max_retries: int, report: BuildReport
) -> Iterator[tuple[Job | Batch, Any, str | None]]:
    """A spawned process pool; a crashed pool is rebuilt and its unfinished jobs retried."""
    threads = _threads_per_worker(workers)
    pending = list(jobs)
    attempts: dict[int, int] = {}
    while pending:
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_worker_init, initargs=(threads, os.getpid())
        ) as pool:
            futures = {pool.submit(_RUN_JOB, job): job for job in pending}
            pending = []
            try:
                for fut in cf.as_completed(futures):
                    job = futures[fut]
                    try:
                        yield job, fut.result(), None
                    except cf.process.BrokenProcessPool:
                        n = attempts[id(job)] = attempts.get(id(job), 0) + 1
                        if n > max_retries:
                            yield job, None, "worker process died repeatedly"
                        else:
                            report.retried += len(job.jobs) if isinstance(job, Batch) else 1
                            pending.append(job)
                    except Exception as exc:
                        yield job, None, f"{type(exc).__name__}: {exc}"
            except BaseException:  # Ctrl-C or the caller stopped: do not run the whole queue
                for fut in futures:
                    fut.cancel()  # only jobs not started yet; the running ones finish
                pool.shutdown(wait=False, cancel_futures=True)
                raise


@contextlib.contextmanager
def _ray_session(workers: int, address: str | None) -> Iterator:
    """The ``ray`` module, initialised: a local instance with ``workers`` CPUs, or the cluster
    at ``address``, or whatever the caller already started (which is then left running)."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray, which is not installed: pip install ray "
            "(or install metanas with its ray extra)"
        ) from None
    if ray.is_initialized():
        yield ray
        return
    where = {"address": address} if address else {"num_cpus": workers}
    try:
        ray.init(**where, include_dashboard=False, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ConfigError(f"cannot connect to Ray at {address!r}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _execute_ray(
    jobs: list[Job | Batch], workers: int, max_retries: int, address: str | None
) -> Iterator[tuple[Job | Batch, Any, str | None]]:
    """One Ray task per job, at most 2 x ``workers`` submitted at a time. Ray reruns a task
    whose worker (or node) died, up to ``max_retries`` times; an exception raised by the job
    itself is not retried. Results come back to this process in completion order."""
    with _ray_session(workers, address) as ray:
        remote = ray.remote(num_cpus=1, max_retries=max_retries)(_ray_job)
        todo, running = iter(jobs), {}
        while True:
            for job in itertools.islice(todo, 2 * workers - len(running)):
                gpus = 0 if job.device == "cpu" else 1
                running[remote.options(num_gpus=gpus).remote(_RUN_JOB, job)] = job
            if not running:
                return
            [ref], _ = ray.wait(list(running), num_returns=1)
            job = running.pop(ref)
            result = error = None
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the job raised
                error = f"{type(exc.cause).__name__}: {exc.cause}"
            except ray.exceptions.RayError as exc:  # its worker or node died, retries spent
                error = f"Ray worker lost after {max_retries} retries ({type(exc).__name__})"
            yield job, result, error
