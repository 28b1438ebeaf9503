"""BASE meta-training (Algorithm 1), single-process or data-parallel over tasks.

Each meta-step ``s`` takes the tasks with indices ``s*C .. s*C + C - 1`` of a seeded
:class:`~metanas.tasks.TaskSampler` (N-way subsets of the source at the supernet's head
resolutions). For each task: start from the shared state, reset the classifier, run the inner
loop (T SGD steps on weights and logits jointly, Gumbel temperature of step ``s``), and take the
change of the meta state. The shared state then moves ``lambda_s`` times the mean change
(Reptile; weights, logits and BatchNorm statistics alike).

Data parallel: rank ``r`` of ``W`` adapts tasks ``c = r, r + W, ...``; the summed changes are
all-reduced (gloo on CPU, NCCL on GPU), so every rank applies the same update. Everything random
about a task (its classes, images, batches, augmentation, Gumbel noise) derives from
``(seed, task index)``, so a run's result does not depend on the number of processes (up to
float summation order) and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from metanas.data import ImageDataset, load_dataset
from metanas.data.locate import find_source
from metanas.errors import ConfigError
from metanas.methods.base.checkpoint import check_resumable, load_checkpoint, save_checkpoint
from metanas.methods.base.config import BASEConfig
from metanas.methods.base.inner import TaskData, run_inner_loop
from metanas.progress import Bars
from metanas.supernet import Supernet, build_supernet
from metanas.tasks import TaskSampler

DEFAULT_SOURCE = "tiny-imagenet-200-64px.zip"
_TASK_SEED_TAG = 31


@dataclass
class RunOptions:
    """How to run (not what is learned): none of these change the result."""

    source: str | None = None
    nproc: int = 1
    state: str | None = None
    """Training-state file, written every ``save_every`` meta-steps and at the end."""
    resume: bool = False
    save_every: int = 25
    log: str | None = None
    """JSON-lines log: one row per meta-step (loss, temperature, architecture distribution)."""
    stop_after: int | None = None
    """Stop after this many meta-steps of this call (the state file allows resuming)."""
    device: str = "cpu"
    threads: int = 1
    """Torch threads per spawned worker."""
    progress: bool = False


def resolve_source(source: str | None) -> str:
    """The task source: an explicit dataset (builtin name, .npz, ImageFolder dir or zip), or
    Tiny-ImageNet from the development datasets folder."""
    if source is not None:
        return str(source)
    return str(find_source(DEFAULT_SOURCE, what="base meta-training needs a task source"))


def task_seed(seed: int, index: int) -> int:
    ss = np.random.SeedSequence(seed, spawn_key=(_TASK_SEED_TAG, int(index)))
    return int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63))


def make_sampler(dataset: ImageDataset, config: BASEConfig) -> TaskSampler:
    return TaskSampler(dataset, n_way=config.n_way, resolutions=config.resolutions,
                       max_train_per_class=config.max_train_per_class, max_test_per_class=1,
                       seed=config.seed)


def meta_train(config: BASEConfig, run: RunOptions) -> tuple[Supernet, dict[str, Any]]:
    """Run Algorithm 1; returns the meta-trained supernet (CPU) and run info."""
    run.source = resolve_source(run.source)
    if run.nproc < 1:
        raise ConfigError(f"nproc must be >= 1, got {run.nproc}")
    if run.resume and (run.state is None or not Path(run.state).is_file()):
        raise ConfigError(f"resume needs an existing state file, got state={run.state!r}")
    if run.stop_after is not None and run.stop_after < 1:
        raise ConfigError(f"stop_after must be >= 1, got {run.stop_after}")
    if dist.is_available() and dist.is_initialized():  # launched by torchrun or similar
        return _train(dist.get_rank(), dist.get_world_size(), config, run)
    if run.nproc == 1:
        return _train(0, 1, config, run)
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="metanas-base-") as tmp:
        out = str(Path(tmp) / "result.safetensors")
        mp.spawn(_worker, args=(run.nproc, _free_port(), config.to_dict(), run, out),
                 nprocs=run.nproc, join=True)
        net, _, info = load_checkpoint(out)
    return net, info


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, config: dict, run: RunOptions, out: str) -> None:
    torch.set_num_threads(max(1, run.threads))
    backend = "nccl" if run.device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(rank % torch.cuda.device_count())
        run.device = f"cuda:{rank % torch.cuda.device_count()}"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        net, info = _train(rank, world, BASEConfig.from_options(config), run)
        if rank == 0:
            save_checkpoint(out, net, BASEConfig.from_options(config), info)
    finally:
        dist.destroy_process_group()


def _train(rank: int, world: int, config: BASEConfig,
           run: RunOptions) -> tuple[Supernet, dict[str, Any]]:
    dev = torch.device(run.device)
    torch.manual_seed(config.seed)
    net = build_supernet(config.supernet_config())
    start_step, seconds0 = 0, 0.0
    if run.resume:
        saved, saved_cfg, info = load_checkpoint(run.state)
        check_resumable(saved_cfg, config)
        net.load_meta_state(saved.meta_state())
        start_step, seconds0 = int(info.get("meta_step", 0)), float(info.get("seconds", 0.0))
    net.to(dev)
    shared = {k: v.detach().clone() for k, v in net.meta_state().items()}
    if world > 1:
        for v in shared.values():
            dist.broadcast(v, src=0)
    keys = list(shared)
    sizes = [shared[k].numel() for k in keys]
    dataset = load_dataset(run.source, progress=False)
    sampler = make_sampler(dataset, config)
    tau_at = config.temperature()
    inner = config.inner()
    end = config.meta_steps if run.stop_after is None else min(config.meta_steps,
                                                               start_step + run.stop_after)
    lead = rank == 0
    log = open(run.log, "a") if (lead and run.log) else None  # noqa: SIM115
    t0 = time.perf_counter()
    loss = float("nan")
    info: dict[str, Any] = {}
    try:
        with Bars(run.progress and lead) as bars:
            bar = bars.add(f"meta-train base ({world} proc)", config.meta_steps)
            bars.set(bar, start_step)
            for step in range(start_step, end):
                tau, lam = tau_at(step), config.meta_step_size(step)
                acc = torch.zeros(sum(sizes), device=dev)
                sums = torch.zeros(2, device=dev)  # [sum of mean inner losses, of last losses]
                for c in range(rank, config.tasks_per_step, world):
                    index = step * config.tasks_per_step + c
                    task = sampler.sample(index)
                    net.load_meta_state(shared)
                    net.reset_classifier(task.num_classes)
                    gen = torch.Generator().manual_seed(task_seed(config.seed, index))
                    stats = run_inner_loop(net, TaskData.from_task(task, dev), inner,
                                           generator=gen, tau=tau)
                    after = net.meta_state()
                    acc += torch.cat([(after[k] - shared[k]).flatten() for k in keys])
                    sums += torch.tensor([stats.mean_loss, stats.losses[-1] if stats.losses
                                          else float("nan")], device=dev)
                if world > 1:
                    dist.all_reduce(acc)
                    dist.all_reduce(sums)
                mean = acc / config.tasks_per_step
                for k, chunk in zip(keys, torch.split(mean, sizes), strict=True):
                    shared[k] += lam * chunk.view_as(shared[k])
                net.load_meta_state(shared)
                loss = float(sums[0]) / config.tasks_per_step
                done = step + 1
                info = _info(config, done, seconds0 + time.perf_counter() - t0, world, loss,
                             dataset)
                if lead:
                    if log is not None:
                        log.write(json.dumps(_log_row(net, done, tau, lam, loss,
                                                      float(sums[1]) / config.tasks_per_step,
                                                      info["seconds"])) + "\n")
                        log.flush()
                    if run.state and (done % max(1, run.save_every) == 0 or done == end):
                        save_checkpoint(run.state, net, config, info)
                    bars.advance(bar, status=f"meta-loss {loss:.3f} tau {tau:.2f}")
    finally:
        if log is not None:
            log.close()
    if not info:  # nothing left to do (resumed at the end)
        info = _info(config, start_step, seconds0, world, loss, dataset)
    return net.cpu(), info


def _info(config: BASEConfig, step: int, seconds: float, world: int, loss: float,
          dataset: ImageDataset) -> dict[str, Any]:
    return {
        "meta_step": step,
        "meta_steps": config.meta_steps,
        "tasks_seen": step * config.tasks_per_step,
        "seconds": round(seconds, 2),
        "world_size": world,
        "meta_loss": loss,
        "source": dataset.name,
        "source_fingerprint": dataset.fingerprint,
        "resolutions": list(config.resolutions),
    }


def _log_row(net: Supernet, step: int, tau: float, lam: float, loss: float, last: float,
             seconds: float) -> dict[str, Any]:
    probs = net.probabilities()
    entropy = float(np.mean([-(p * np.log(np.clip(p, 1e-12, None))).sum(-1).mean()
                             for p in probs.values()]))
    return {
        "step": step, "tau": tau, "meta_lr": lam, "loss": loss, "loss_last": last,
        "seconds": round(seconds, 3), "entropy": entropy,
        "probs": {k: np.round(v, 5).tolist() for k, v in probs.items()},
    }

