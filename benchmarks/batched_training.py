"""Evaluations per hour: batched training (B cells as one grouped model) vs one at a time.

    python benchmarks/batched_training.py --device cuda --batch 1,8,32,64 [--epochs 2]
        [--recipe cpu-proxy] [--task digits|synthetic] [--single-runs 4] [--out results.json]

Both trainers run the same recipe (``cpu-proxy`` by default, with ``--epochs`` overriding its
epoch count) on the same task: the embedded ``digits`` dataset at ``--resolution`` px, or a
synthetic task of random images (``--task synthetic --n-train 2000 --channels 3``). The
architectures are uniformly sampled NB201 cells (seeded). The one-at-a-time figure is the mean
wall time of ``--single-runs`` calls of ``train_architecture``; the batched figure for B is one
call of ``train_architectures_batched`` on B cells (evaluations/hour = 3600 * B / wall seconds).
One untimed warm-up run of each comes first (CUDA/cuDNN initialisation). The table also shows the
largest deviation of the batched results from the single runs of the same cells.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from metanas.data import load_dataset
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import Task, TaskSpec, make_task
from metanas.training.batched import train_architectures_batched
from metanas.training.recipes import get_recipe
from metanas.training.trainer import resolve_device, train_architecture


def synthetic_task(n_train: int, resolution: int, channels: int, classes: int, seed: int) -> Task:
    """Random normal images with random labels (speed only; nothing to learn)."""
    g = torch.Generator().manual_seed(seed)
    n_val = n_test = max(classes, n_train // 5)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, channels, resolution, resolution, generator=g)
        return x, torch.randint(0, classes, (n,), generator=g)

    (xtr, ytr), (xva, yva), (xte, yte) = split(n_train), split(n_val), split(n_test)
    spec = TaskSpec(classes=tuple(range(classes)), resolution=resolution, seed=seed)
    return Task(
        name=f"synthetic-{classes}way-{resolution}px", spec=spec, dataset_name="synthetic",
        fingerprint="synthetic", class_names=tuple(str(c) for c in range(classes)),
        channels=channels, x_train=xtr, y_train=ytr, x_val=xva, y_val=yva, x_test=xte,
        y_test=yte, mean=(0.0,) * channels, std=(1.0,) * channels,
    )


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--batch", default="1,8,32,64", help="comma-separated batch sizes B")
    ap.add_argument("--recipe", default="cpu-proxy")
    ap.add_argument("--epochs", type=int, default=2, help="override the recipe's epochs")
    ap.add_argument("--task", choices=("digits", "synthetic"), default="digits")
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--n-train", type=int, default=2000, help="synthetic task only")
    ap.add_argument("--channels", type=int, default=3, help="synthetic task only")
    ap.add_argument("--classes", type=int, default=10, help="synthetic task only")
    ap.add_argument("--single-runs", type=int, default=4,
                    help="one-at-a-time runs to average (at most the largest B)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    batches = sorted({int(b) for b in args.batch.split(",") if b.strip()})
    if not batches or batches[0] < 1:
        ap.error("--batch needs positive integers")
    recipe = get_recipe(args.recipe, epochs=args.epochs)
    if args.task == "digits":
        task = make_task(load_dataset("digits", progress=False), resolution=args.resolution,
                         seed=args.seed)
    else:
        task = synthetic_task(args.n_train, args.resolution, args.channels, args.classes,
                              args.seed)
    rng = np.random.default_rng(args.seed)
    archs = [NB201Arch.sample(rng) for _ in range(max(batches))]
    console = Console()
    console.print(f"{task!r} | recipe {recipe.name} | device {dev} | "
                  f"threads {torch.get_num_threads()}")

    # warm-up (CUDA context, cuDNN autotuning, first-call allocations): not timed
    warm = get_recipe(recipe, epochs=1)
    train_architecture(archs[0], task, warm, seed=args.seed, device=dev)
    train_architectures_batched(archs[:2], task, warm, seed=args.seed, device=dev)

    n_single = max(1, min(args.single_runs, max(batches)))
    single_results, single_times = [], []
    for arch in archs[:n_single]:
        _sync(dev)
        t0 = time.perf_counter()
        single_results.append(train_architecture(arch, task, recipe, seed=args.seed, device=dev))
        _sync(dev)
        single_times.append(time.perf_counter() - t0)
    single_s = statistics.mean(single_times)
    rows = [{"mode": "one-at-a-time", "B": 1, "wall_seconds": single_s,
             "seconds_per_eval": single_s, "evals_per_hour": 3600 / single_s, "speedup": 1.0,
             "runs": n_single}]

    for B in batches:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        _sync(dev)
        t0 = time.perf_counter()
        results = train_architectures_batched(archs[:B], task, recipe, seed=args.seed,
                                              device=dev)
        _sync(dev)
        wall = time.perf_counter() - t0
        acc_dev = max(abs(r.val_acc - s.val_acc) for r, s in zip(results, single_results, strict=False))
        loss_dev = max(abs(r.val_loss - s.val_loss) / abs(s.val_loss)
                       for r, s in zip(results, single_results, strict=False))
        row = {"mode": "batched", "B": B, "wall_seconds": wall, "seconds_per_eval": wall / B,
               "evals_per_hour": 3600 * B / wall, "speedup": single_s * B / wall,
               "max_val_acc_diff": acc_dev, "max_val_loss_rel_diff": loss_dev}
        if dev.type == "cuda":
            row["peak_memory_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
        rows.append(row)

    table = Table(title=f"evaluations per hour, {recipe.name} on {task.name} ({dev})")
    for col in ("mode", "B", "wall s", "s / eval", "evals / hour", "speedup",
                "max |Δ val acc|", "max rel Δ val loss"):
        table.add_column(col, justify="right" if col != "mode" else "left", no_wrap=True)
    for r in rows:
        table.add_row(
            r["mode"], str(r["B"]), f"{r['wall_seconds']:.2f}", f"{r['seconds_per_eval']:.3f}",
            f"{r['evals_per_hour']:,.0f}", f"{r['speedup']:.2f}x",
            f"{r['max_val_acc_diff']:.4f}" if "max_val_acc_diff" in r else "-",
            f"{r['max_val_loss_rel_diff']:.1e}" if "max_val_loss_rel_diff" in r else "-",
        )
    console.print(table)

    if args.out:
        out = {
            "device": single_results[0].device,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "recipe": recipe.name,
            "recipe_hash": recipe.hash,
            "task": task.describe(),
            "archs": [a.to_string() for a in archs],
            "rows": rows,
        }
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2))
        console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
