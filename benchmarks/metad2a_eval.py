"""Is MetaD2A any good? Its generator's statistics, and its picks trained on unseen datasets.

    OMP_NUM_THREADS=1 nohup python benchmarks/metad2a_eval.py [--checkpoint CKPT] \
        [--kb default] [--top 5] [--random 5] [--seeds 0,1] [--cap 500] \
        [--workers 2] [--out docs/results] > runs/metad2a_eval.log 2>&1 &

1. Generator: validity / uniqueness / novelty / reconstruction on the meta-training run's
   held-out tasks (from the checkpoint's record), and on each target dataset the search's own
   draws: how many were valid and unique, and how many are novel (not a training target, i.e.
   not among any knowledge-base task's top-k cells).
2. On CIFAR-10, Fashion-MNIST and MNIST (never used in meta-training), MetaD2A's top ``--top``
   cells (generate mode, 500 candidates, 10 resamples), ``--random`` random connected cells and
   the value network's pick are trained with the same recipe, seeds and task (``--cap``
   labelled images per class, test accuracy on the dataset's test split). Also compares the
   generate and exhaustive modes (top-10 overlap, best predicted score, time).
Writes ``metad2a_eval.json`` and ``metad2a_eval.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats

DATASETS = {"cifar10": "cifar10-32px.zip", "fashion-mnist": "fashion-mnist.npz",
            "mnist": "mnist.npz"}
_TASKS: dict = {}


def _train(job: tuple[str, str, int, int, str]) -> dict:
    """Worker: train one cell on one dataset's task (tasks cached per process)."""
    import torch

    from metanas.data import load_dataset
    from metanas.spaces.nb201 import NB201Arch
    from metanas.tasks import make_task, proxy_resolution
    from metanas.training import train_architecture

    torch.set_num_threads(1)
    path, arch, seed, cap, recipe = job
    if path not in _TASKS:
        ds = load_dataset(path, progress=False)
        _TASKS[path] = make_task(ds, resolution=proxy_resolution(max(ds.image_size)),
                                 max_train_per_class=cap, seed=0)
    res = train_architecture(NB201Arch.from_string(arch), _TASKS[path], recipe, seed=seed)
    return {"path": path, "arch": arch, "seed": seed, "test_acc": res.test_acc,
            "val_acc": res.val_acc, "seconds": res.seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--kb", default="default", help="for novelty (targets)")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--random", type=int, default=5)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--cap", type=int, default=500)
    ap.add_argument("--recipe", default="cpu-proxy")
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--resamples", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import metanas
    from metanas.data import load_dataset
    from metanas.kb import open_kb
    from metanas.kb.views import accuracy_table
    from metanas.methods.metad2a import MetaD2AMethod
    from metanas.paths import shared_datasets_dir
    from metanas.spaces.nb201 import NB201Arch

    start = time.perf_counter()
    shared = shared_datasets_dir()
    if shared is None:
        raise SystemExit("needs ../shared/datasets (CIFAR-10, Fashion-MNIST, MNIST)")
    seeds = [int(s) for s in args.seeds.split(",")]
    method = (MetaD2AMethod.load(args.checkpoint) if args.checkpoint
              else metanas.load_method("metad2a"))
    value_net = metanas.load_method("value-net")
    with open_kb(args.kb) as kb:
        table = accuracy_table(kb, metric=method.config.metric, recipe=method.config.recipe)
    k = method.config.gen_top_k
    targets = {NB201Arch.from_string(a).canonical_form for accs in table.values()
               for a in sorted(accs, key=lambda a: -accs[a])[:k]}
    measured = {NB201Arch.from_string(a).canonical_form for accs in table.values()
                for a in accs}

    plans, jobs = [], []
    for key in args.datasets.split(","):
        path = str(shared / DATASETS[key])
        ds = load_dataset(path, progress=False)
        gen = method.search(ds, top=max(args.top, 10), seed=0, candidates=args.candidates,
                            resamples=args.resamples)
        ex = method.search(ds, top=10, seed=0, resamples=args.resamples, mode="exhaustive")
        ex2 = method.search(ds, top=10, seed=0, resamples=args.resamples, mode="exhaustive")
        gen_cells = [c.arch for c in gen.candidates]
        generated = method.generate(ds, seed=0, candidates=args.candidates,
                                    resamples=args.resamples)
        forms = [a.canonical_form for a in generated]
        vn = value_net.search(ds, top=1, seed=0)
        picks = [("metad2a", a) for a in gen_cells[: args.top]]
        picks += [("random", a.to_string()) for a in NB201Arch.sample_distinct(args.random, 0)]
        picks.append(("value-net", vn.architecture))
        predicted = method.score_cells(ds, [NB201Arch.from_string(a) for _, a in picks],
                                       seed=0, resamples=args.resamples)
        top10_gen = {NB201Arch.from_string(a).canonical_form for a in gen_cells[:10]}
        top10_ex = {NB201Arch.from_string(c.arch).canonical_form for c in ex.candidates}
        plans.append({
            "dataset": ds.name, "path": path,
            "cells": [{"group": g, "arch": a, "predicted": float(p)}
                      for (g, a), p in zip(picks, predicted, strict=True)],
            "generation": {**gen.details["generation"],
                           "novel_vs_targets": float(np.mean([f not in targets
                                                              for f in forms])),
                           "novel_vs_measured": float(np.mean([f not in measured
                                                               for f in forms]))},
            "modes": {
                "generate_seconds": gen.search_seconds, "generate_timings": gen.timings,
                "exhaustive_seconds_first": ex.search_seconds,
                "exhaustive_seconds_cached": ex2.search_seconds,
                "best_score_generate": gen.candidates[0].score,
                "best_score_exhaustive": ex.candidates[0].score,
                "top10_overlap": len(top10_gen & top10_ex),
                "exhaustive_rank_of_generate_top1": _rank(method, ds, gen_cells[0],
                                                          args.resamples),
            },
        })
        for _, arch in picks:
            for s in seeds:
                jobs.append((path, arch, s, args.cap, args.recipe))
    unique_jobs = sorted(set(jobs), key=jobs.index)
    print(f"training {len(unique_jobs)} (cell, seed) pairs on {args.workers} workers",
          flush=True)
    results = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, r in enumerate(pool.map(_train, unique_jobs), 1):
            results[(r["path"], r["arch"], r["seed"])] = r
            print(f"  {i}/{len(unique_jobs)} {Path(r['path']).stem} seed {r['seed']} "
                  f"acc {r['test_acc']:.4f} ({r['seconds']:.0f} s)", flush=True)
    for plan in plans:
        for cell in plan["cells"]:
            runs = [results[(plan["path"], cell["arch"], s)] for s in seeds]
            cell["test_acc"] = [r["test_acc"] for r in runs]
            cell["mean"] = float(np.mean(cell["test_acc"]))
            cell["train_seconds"] = [r["seconds"] for r in runs]
        summarize(plan)
    report = {"args": vars(args), "checkpoint_info": {
        k: method.info.get(k) for k in ("tasks", "generator_holdout", "predictor")},
        "results": plans, "wall_seconds": round(time.perf_counter() - start, 1)}
    report["checkpoint_info"]["predictor"] = {
        k: v for k, v in (method.info.get("predictor") or {}).items() if k != "holdout"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metad2a_eval.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    show(report)
    plot(plans, out / "metad2a_eval.png")


def _rank(method, ds, arch: str, resamples: int) -> int:
    from metanas.spaces.nb201 import NB201Arch

    scores = method.score_all(ds, seed=0, resamples=resamples)
    return int((scores > scores[NB201Arch.from_string(arch).index]).sum() + 1)


def summarize(plan: dict) -> None:
    cells = plan["cells"]
    md = [c["mean"] for c in cells if c["group"] == "metad2a"]
    rnd = [c["mean"] for c in cells if c["group"] == "random"]
    vn = [c["mean"] for c in cells if c["group"] == "value-net"][0]
    everything = [c["mean"] for c in cells]
    pred = [c["predicted"] for c in cells]
    plan["summary"] = {
        "metad2a_top1": md[0], "metad2a_mean": float(np.mean(md)),
        "metad2a_best": float(np.max(md)), "random_mean": float(np.mean(rnd)),
        "random_best": float(np.max(rnd)), "value_net": vn,
        "metad2a_top1_rank": 1 + sum(v > md[0] for v in everything),
        "cells_trained": len(cells),
        "spearman_predicted_vs_trained": float(stats.spearmanr(pred, everything).statistic),
    }


def show(report: dict) -> None:
    console = Console(width=140)
    gh = report["checkpoint_info"].get("generator_holdout") or {}
    if gh:
        console.print("generator on the meta-training run's held-out tasks: " + ", ".join(
            f"{k} {v:.3f}" for k, v in gh.items() if isinstance(v, float)))
    t = Table(title="MetaD2A picks vs random cells vs value-net (test accuracy, mean of seeds)")
    for col in ("dataset", "MetaD2A top-1", "top-k mean", "top-k best", "random mean",
                "random best", "value-net", "top-1 rank", "rho(pred, acc)", "novel",
                "modes: overlap / best gen vs exh / s gen, exh"):
        t.add_column(col)
    for p in report["results"]:
        s, m, g = p["summary"], p["modes"], p["generation"]
        t.add_row(p["dataset"], f"{s['metad2a_top1']:.4f}", f"{s['metad2a_mean']:.4f}",
                  f"{s['metad2a_best']:.4f}", f"{s['random_mean']:.4f}",
                  f"{s['random_best']:.4f}", f"{s['value_net']:.4f}",
                  f"{s['metad2a_top1_rank']}/{s['cells_trained']}",
                  f"{s['spearman_predicted_vs_trained']:.2f}", f"{g['novel_vs_targets']:.2f}",
                  f"{m['top10_overlap']}/10, {m['best_score_generate']:.3f} vs "
                  f"{m['best_score_exhaustive']:.3f}, {m['generate_seconds']:.1f}, "
                  f"{m['exhaustive_seconds_cached']:.1f}")
    console.print(t)
    console.print(f"{report['wall_seconds']} s wall")


def plot(plans: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"metad2a": "tab:blue", "random": "tab:gray", "value-net": "tab:red"}
    fig, axes = plt.subplots(1, len(plans), figsize=(3.6 * len(plans), 3.4), squeeze=False)
    for ax, p in zip(axes[0], plans, strict=True):
        means = [c["mean"] for c in p["cells"]]
        ax.bar(range(len(means)), means, color=[colors[c["group"]] for c in p["cells"]])
        ax.set_ylim(max(0.0, min(means) - 0.05), min(1.0, max(means) + 0.02))
        ax.set_xticks(range(len(means)), [c["group"][0].upper() for c in p["cells"]])
        ax.set_title(p["dataset"], fontsize=9)
    axes[0][0].set_ylabel("test accuracy")
    fig.suptitle("MetaD2A top cells (blue), random (gray), value-net pick (red)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
