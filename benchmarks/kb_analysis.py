"""What does a knowledge base say about task-awareness? Cross-task agreement and regret.

    python benchmarks/kb_analysis.py --kb default [--dense-min 100] [--out docs/results]

Prints, and writes to ``<out>/kb_analysis_<name>.json`` / ``.png``:
- pairwise Kendall tau between tasks on the architectures all tasks measured (the anchors);
- how often the cell best on average over the other tasks is a task's own best, and its regret;
- agreement within vs across resolution and class-count groups;
- the noise ceiling: Kendall tau between two training seeds on the same task and cells;
- for densely measured tasks (>= ``--dense-min`` cells): per-task optimum, regret and rank of
  the task-agnostic pick, overlap of the top-10 sets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from metanas.kb import open_kb  # noqa: E402
from metanas.kb.analysis import (  # noqa: E402
    cross_task_agreement,
    dense_task_regret,
    group_agreement,
    seed_agreement,
)
from metanas.kb.views import accuracy_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", default="default")
    ap.add_argument("--dense-min", type=int, default=100)
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--name", default=None, help="Suffix of the output files (default: KB name).")
    args = ap.parse_args()
    with open_kb(args.kb) as kb:
        table = accuracy_table(kb)
        tasks = {t["key"]: t for t in kb.tasks()}
        seeds = seed_agreement(kb)
    name = args.name or Path(args.kb).stem
    dense = sorted(k for k, v in table.items() if len(v) >= args.dense_min)
    report = {
        "kb": args.kb,
        "tasks": len(table),
        "evaluations_averaged": sum(len(v) for v in table.values()),
        "overall": cross_task_agreement(table),
        "by_resolution": group_agreement(table, {k: str(t["resolution"]) for k, t in tasks.items()}),
        "by_classes": group_agreement(table, {k: str(t["num_classes"]) for k, t in tasks.items()}),
        "dense": dense_task_regret(table, dense) if dense else None,
        "seeds": seeds,
    }
    console = Console()
    t = Table(title=f"cross-task agreement: {args.kb} ({len(table)} tasks)")
    t.add_column("statistic")
    t.add_column("value", justify="right")
    o = report["overall"]
    rows = []
    if o.get("enough_data"):
        rows += [
            ("shared architectures (all tasks)", f"{o['shared_architectures']}"),
            ("pairwise Kendall tau, mean / median",
             f"{o['kendall_mean']:.3f} / {o['kendall_median']:.3f}"),
            ("global best (other tasks) = task best", f"{o['global_best_is_task_best']:.0%}"),
            ("its regret, mean (points)", f"{100 * o['global_best_regret_mean']:.2f}"),
            ("its rank on the task, median", f"{o['global_best_rank_median']:.0f} of "
                                            f"{o['shared_architectures']}"),
            ("task best - task median (points)", f"{100 * o['task_best_spread']:.2f}"),
        ]
        for label, key in (("resolution", "by_resolution"), ("class count", "by_classes")):
            g = report[key]
            if g.get("enough_data") and g["within_group_kendall"] is not None \
                    and g["across_group_kendall"] is not None:
                rows.append((f"Kendall within / across {label}",
                             f"{g['within_group_kendall']:.3f} / {g['across_group_kendall']:.3f}"))
    if seeds["enough_data"]:
        rows.append(("noise ceiling: Kendall between 2 seeds, same task",
                     f"{seeds['kendall_mean']:.3f} ({len(seeds['tasks'])} tasks)"))
        rows.append(("mean |seed 0 - seed 1| (points)", f"{100 * seeds['abs_diff_mean']:.2f}"))
    for row in rows:
        t.add_row(*row)
    console.print(t)
    d = report["dense"]
    if d:
        td = Table(title=f"dense tasks (>= {args.dense_min} cells)")
        for col in ("task", "cells", "best %", "median %", "global prior %", "regret", "rank"):
            td.add_column(col, justify="right")
        for row in d["tasks"]:
            td.add_row(tasks[row["task"]]["name"], str(row["architectures"]),
                       f"{100 * row['best_acc']:.1f}", f"{100 * row['median_acc']:.1f}",
                       "-" if row["global_prior_acc"] is None else f"{100 * row['global_prior_acc']:.1f}",
                       "-" if row["global_prior_regret"] is None else f"{100 * row['global_prior_regret']:.1f}",
                       "-" if row["global_prior_rank"] is None else str(row["global_prior_rank"]))
        console.print(td)
        if d["top_overlap_mean"] is not None:
            console.print(f"top-10 overlap between dense tasks: {d['top_overlap_mean']:.2f}; "
                          f"Spearman on shared cells: "
                          f"{d.get('spearman_shared_mean', float('nan')):.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"kb_analysis_{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, table, dense, tasks, out / f"kb_analysis_{name}.png")
    console.print(f"wrote {out / f'kb_analysis_{name}.json'} and .png")


def _plot(report: dict, table: dict, dense: list[str], tasks: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2 if dense else 1, figsize=(11 if dense else 5.5, 4))
    axes = np.atleast_1d(axes)
    o = report["overall"]
    if o.get("enough_data"):
        axes[0].hist(o["kendall_pairs"], bins=30, color="tab:blue", alpha=0.8)
        axes[0].axvline(o["kendall_mean"], color="k", ls="--", label=f"mean {o['kendall_mean']:.2f}")
        axes[0].set_xlabel(f"Kendall tau between two tasks ({o['shared_architectures']} shared cells)")
        axes[0].set_ylabel("task pairs")
        axes[0].legend()
    if dense:
        ax = axes[1]
        for row in report["dense"]["tasks"]:
            accs = np.sort(np.array(list(table[row["task"]].values())))[::-1] * 100
            line, = ax.plot(np.arange(1, len(accs) + 1), accs, label=tasks[row["task"]]["name"].split("/")[-1])
            if row["global_prior_rank"] is not None:
                ax.plot(row["global_prior_rank"], 100 * row["global_prior_acc"], "o",
                        color=line.get_color())
        ax.set_xscale("log")
        ax.set_xlabel("rank of the cell on the task (dots: task-agnostic pick)")
        ax.set_ylabel("held-out accuracy (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
