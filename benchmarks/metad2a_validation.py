"""Leave-tasks-out validation of MetaD2A's predictor, next to the value network on the same folds.

    OMP_NUM_THREADS=1 python benchmarks/metad2a_validation.py [--kb default] \
        [--folds 5] [--seed 0] [--set KEY=VALUE ...] [--no-control] [--generator] \
        [--out docs/results] [--name metad2a_validation]

Tasks are split into folds; each fold's tasks are held out while the predictor is trained on
the others (epoch chosen on an inner hold-out of those). Per held-out task: Pearson, Spearman
and Kendall between predicted and measured held-out accuracy, and the top-1 regret. The
task-agnostic control zeroes the dataset embedding; the value network (task-aware and
meta-features masked) runs on the very same folds. ``--generator`` also trains the generator
per fold and reports validity, uniqueness, novelty and reconstruction on the held-out tasks.
Writes ``<name>.json`` and ``<name>.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from metanas.kb import open_kb
from metanas.methods import value_net
from metanas.methods.metad2a.validation import cross_validate


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", default="default")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="MetaD2A option KEY=VALUE")
    ap.add_argument("--source", default=None, help="the KB tasks' source dataset")
    ap.add_argument("--no-control", action="store_true")
    ap.add_argument("--no-value-net", action="store_true")
    ap.add_argument("--generator", action="store_true")
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--name", default="metad2a_validation")
    args = ap.parse_args()
    options = {"seed": args.seed, **parse_sets(args.set)}
    start = time.perf_counter()
    with open_kb(args.kb) as kb:
        report = cross_validate(kb, folds=args.folds, control=not args.no_control,
                                generator=args.generator, source=args.source, progress=True,
                                **options)
        vn = None if args.no_value_net else value_net.cross_validate(kb, folds=args.folds,
                                                                     seed=args.seed)
    report["kb"] = args.kb
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    if vn is not None:
        report["value_net"] = {"task_aware": vn["task_aware"],
                               "task_agnostic": vn["task_agnostic"],
                               "per_task": vn["per_task"]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=2, default=float) + "\n")

    console = Console(width=140)
    table = Table(title=f"MetaD2A predictor, leave-tasks-out ({report['tasks']} tasks, "
                        f"{report['folds']} folds, {args.kb})")
    for col in ("held-out task", "fold", "cells", "Pearson", "Spearman", "Kendall",
                "top-1 regret"):
        table.add_column(col)
    for r in sorted((r for r in report["per_task"] if r["aware"]), key=lambda r: r["fold"]):
        table.add_row(r["task"][:10], str(r["fold"]), str(r["n"]), f"{r['pearson']:.3f}",
                      f"{r['spearman']:.3f}", f"{r['kendall']:.3f}",
                      f"{100 * r['top1_regret']:.2f}")
    console.print(table)
    summary = Table(title="mean (median) over held-out tasks")
    for col in ("model", "Pearson", "Spearman", "Kendall", "top-1 regret (points)"):
        summary.add_column(col)
    rows = [("MetaD2A predictor", report["task_aware"])]
    if "task_agnostic" in report:
        rows.append(("MetaD2A, dataset embedding zeroed", report["task_agnostic"]))
    if vn is not None:
        rows += [("value network (task-aware)", vn["task_aware"]),
                 ("value network (meta-features masked)", vn["task_agnostic"])]
    for label, s in rows:
        pear = f"{s['pearson_mean']:.3f} ({s['pearson_median']:.3f})" if "pearson_mean" in s \
            else "-"
        summary.add_row(label, pear, f"{s['spearman_mean']:.3f} ({s['spearman_median']:.3f})",
                        f"{s['kendall_mean']:.3f} ({s['kendall_median']:.3f})",
                        f"{100 * s['top1_regret_mean']:.2f}")
    console.print(summary)
    if "generator" in report:
        console.print("generator on held-out tasks:", json.dumps(report["generator"], indent=1))
    console.print(f"{report['wall_seconds']} s wall")
    _plot(report, out / f"{args.name}.png")


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {"MetaD2A": [r["spearman"] for r in report["per_task"] if r["aware"]]}
    if "task_agnostic" in report:
        series["MetaD2A, no dataset"] = [r["spearman"] for r in report["per_task"]
                                         if not r["aware"]]
    if "value_net" in report:
        series["value net"] = [r["spearman"] for r in report["value_net"]["per_task"]
                               if r["aware"]]
        series["value net, no features"] = [r["spearman"] for r in
                                            report["value_net"]["per_task"] if not r["aware"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    data = [np.array(v, dtype=float)[np.isfinite(v)] for v in series.values()]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(series) + 1), list(series), fontsize=8)
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_ylabel("Spearman per held-out task")
    ax.set_title(f"leave-tasks-out ranking, {report['tasks']} tasks, {report['folds']} folds",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
