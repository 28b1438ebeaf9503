"""CPU proxies judged against real training: how well does each recipe rank cells like the
200-epoch NB201 ImageNet16-120 table?

For every (knowledge base, task, recipe) group with at least ``--min-cells`` evaluated cells:
Spearman and Kendall of the proxy's held-out accuracy against the table, and precision of the
top 10% (share of the proxy's top 10% that are among the table's top 10% of the same cells).
Per recipe also the accuracies averaged over its tasks (what a knowledge base's prior sees),
and the seed-to-seed ceiling where a recipe was run with two seeds. Reuses the trainings
already stored (kb/fidelity-v0.db and the shipped KB v1); nothing is trained.

    python benchmarks/proxy_vs_truth.py --kb kb/fidelity-v0.db --kb tinyimagenet-v1
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from scipy import stats

from metanas.kb import open_kb
from metanas.kb.views import heldout_accuracy
from metanas.paths import shared_datasets_dir


def top_precision(proxy: np.ndarray, truth: np.ndarray, frac: float = 0.1) -> float:
    k = max(1, round(frac * len(truth)))
    return len(set(np.argsort(-proxy)[:k]) & set(np.argsort(-truth)[:k])) / k


def compare(proxy: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"spearman": float(stats.spearmanr(proxy, truth).statistic),
            "kendall": float(stats.kendalltau(proxy, truth).statistic),
            "top10_precision": top_precision(proxy, truth), "cells": len(truth)}


def gather(kb_name: str, truth: dict[str, float]):
    """{(recipe, seed): {task: {arch: acc}}} and seconds per evaluation per recipe."""
    groups: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
    seconds: dict[str, list[float]] = {}
    with open_kb(kb_name) as kb:
        tasks = {t["key"]: t for t in kb.tasks()}
        for r in kb.evaluations(space="nb201"):
            task = tasks[r["task_key"]]
            spec = task.get("spec") or {}
            if spec.get("kind") == "published" or r["arch"] not in truth:
                continue
            acc = heldout_accuracy(r, task)
            if acc is None:
                continue
            ipc = round(task["n_train"] / task["num_classes"]) if task.get("n_train") else 0
            groups.setdefault((r["recipe"], r["seed"], ipc), {}).setdefault(
                task["name"], {})[r["arch"]] = acc
            if r["seconds"]:
                seconds.setdefault(r["recipe"], []).append(r["seconds"])
    return groups, {k: float(np.median(v)) for k, v in seconds.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", action="append", default=None)
    ap.add_argument("--table", default=None)
    ap.add_argument("--min-cells", type=int, default=20)
    ap.add_argument("--out", default="docs/results/proxy_vs_truth")
    args = ap.parse_args()
    kbs = args.kb or ["kb/fidelity-v0.db", "tinyimagenet-v1"]
    table = Path(args.table) if args.table else (
        shared_datasets_dir() / "knowledge" / "nb201-imagenet16-120.csv")
    with table.open(newline="") as fh:
        truth = {r["arch"]: float(r["test_acc"]) for r in csv.DictReader(fh)}

    results = []
    for kb_name in kbs:
        groups, seconds = gather(kb_name, truth)
        for (recipe, seed, ipc), per_task in sorted(groups.items()):
            per = []
            for _name, accs in sorted(per_task.items()):
                if len(accs) < args.min_cells:
                    continue
                cells = sorted(accs)
                per.append(compare(np.array([accs[a] for a in cells]),
                                   np.array([truth[a] for a in cells])))
            if not per:
                continue
            # the recipe's accuracies averaged over its tasks, cells seen on >= 1 task
            pooled: dict[str, list[float]] = {}
            for accs in per_task.values():
                if len(accs) >= args.min_cells:
                    for a, v in accs.items():
                        pooled.setdefault(a, []).append(v)
            cells = sorted(pooled)
            mean = compare(np.array([np.mean(pooled[a]) for a in cells]),
                           np.array([truth[a] for a in cells]))
            row = {"kb": kb_name, "recipe": recipe, "seed": seed, "train_per_class": ipc,
                   "tasks": len(per),
                   "cells_per_task": float(np.mean([p["cells"] for p in per])),
                   "seconds_per_eval": seconds.get(recipe),
                   **{f"{m}_per_task": float(np.mean([p[m] for p in per]))
                      for m in ("spearman", "kendall", "top10_precision")},
                   "spearman_task_mean": mean["spearman"], "cells_pooled": mean["cells"]}
            # seed-to-seed ceiling: the same recipe, another seed, on the same tasks and cells
            other = groups.get((recipe, 1 - seed, ipc)) if seed in (0, 1) else None
            if other:
                rs = [stats.spearmanr([accs[a] for a in common], [other[n][a] for a in common]
                                      ).statistic
                      for n, accs in per_task.items() if n in other
                      for common in [sorted(set(accs) & set(other[n]))] if len(common) >= 10]
                row["seed_to_seed_spearman"] = float(np.mean(rs)) if rs else None
            results.append(row)

    print(f"ground truth: {table.name} (200 epochs, C=16, N=5); {len(truth)} cells")
    head = (f"{'knowledge base':18s} {'recipe':36s} {'seed':>4s} {'ipc':>4s} {'tasks':>5s} "
            f"{'cells':>5s} "
            f"{'s/eval':>6s} {'Spearman':>8s} {'Kendall':>7s} {'P@10%':>6s} {'task-mean':>9s} "
            f"{'seed-seed':>9s}")
    print(head)
    for r in results:
        s2s = r.get("seed_to_seed_spearman")
        print(f"{Path(r['kb']).name[:18]:18s} {r['recipe'][:36]:36s} {r['seed']:4d} "
              f"{r['train_per_class']:4d} {r['tasks']:5d} {r['cells_per_task']:5.0f} "
              f"{(r['seconds_per_eval'] or float('nan')):6.1f} {r['spearman_per_task']:8.3f} "
              f"{r['kendall_per_task']:7.3f} {r['top10_precision_per_task']:6.2f} "
              f"{r['spearman_task_mean']:9.3f} {'' if s2s is None else f'{s2s:9.3f}'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"table": table.name, "rows": results},
                                                   indent=2) + "\n")
    plot(results, out.with_suffix(".png"))


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        x = r["seconds_per_eval"] or 1.0
        ax.scatter(x, r["spearman_per_task"], s=20 + 4 * r["tasks"] ** 0.5)
        ax.annotate(f"{r['recipe']} s{r['seed']}", (x, r["spearman_per_task"]), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("CPU seconds per evaluation (1 core)")
    ax.set_ylabel("Spearman vs ImageNet16-120 (200 ep), per task")
    ax.axhline(0, color="k", linewidth=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
