"""Search time of the shipped value network and its leave-tasks-out rank correlation.

    python benchmarks/search_speed.py [--kb default] [--repeats 5] [--out docs/results]

Prints a table and writes ``search_speed.json`` plus ``value_net_loto.png`` (per-task Spearman,
task-aware vs task-agnostic) to ``--out``. Datasets: the embedded ``digits`` and, when
``../shared/datasets`` exists, the CIFAR-10 zip. Search time is measured from the loaded model
to the ranking (task encoding included), as ``metanas search`` reports it; dataset loading
(cached decode) is timed separately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import metanas
from metanas.data import load_dataset
from metanas.paths import shared_datasets_dir


def time_search(spec: str, repeats: int) -> dict:
    t0 = time.perf_counter()
    dataset = load_dataset(spec, progress=False)
    load_s = time.perf_counter() - t0
    method = metanas.load_method("value-net")
    times, pick = [], None
    for i in range(repeats):
        res = method.search(dataset, top=10, seed=i)
        times.append(res.search_seconds)
        pick = pick or res.architecture
    return {
        "dataset": dataset.name,
        "load_seconds": load_s,
        "search_seconds_median": statistics.median(times),
        "search_seconds_all": times,
        "top_pick_seed0": pick,
        "timings_last": res.timings,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", default="default")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    datasets = ["digits"]
    shared = shared_datasets_dir()
    if shared is not None:
        datasets.append(str(shared / "cifar10-32px.zip"))
    speed = [time_search(d, args.repeats) for d in datasets]

    loto = None
    if args.kb:  # --kb "" skips the leave-tasks-out part
        loto = metanas.api.validate_value_net(args.kb, folds=args.folds)
        _plot_loto(loto, out_dir / "value_net_loto.png")

    console = Console()
    table = Table(title=f"value-net search time (median of {args.repeats})")
    for col in ("dataset", "load s", "search s (median)", "top pick (seed 0)"):
        table.add_column(col)
    for row in speed:
        table.add_row(row["dataset"], f"{row['load_seconds']:.2f}",
                      f"{row['search_seconds_median']:.3f}", row["top_pick_seed0"])
    console.print(table)
    if loto:
        t2 = Table(title=f"leave-tasks-out ({loto['tasks']} tasks, {loto['folds']} folds, "
                         f"{loto['evaluations']} evaluations)")
        for col in ("model", "Spearman mean", "median", "Kendall mean", "median",
                    "top-1 regret mean (acc)"):
            t2.add_column(col)
        for name in ("task_aware", "task_agnostic"):
            s = loto[name]
            t2.add_row(name, f"{s['spearman_mean']:.3f}", f"{s['spearman_median']:.3f}",
                       f"{s['kendall_mean']:.3f}", f"{s['kendall_median']:.3f}",
                       f"{s['top1_regret_mean']:.4f}")
        console.print(t2)
    (out_dir / "search_speed.json").write_text(
        json.dumps({"speed": speed, "loto": loto}, indent=2) + "\n"
    )


def _plot_loto(loto: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for aware, label in ((True, "task-aware"), (False, "task-agnostic (features masked)")):
        vals = [r["spearman"] for r in loto["per_task"] if r["aware"] is aware]
        ax.hist(vals, bins=15, range=(-1, 1), alpha=0.6, label=label)
    ax.set_xlabel("Spearman rho on a held-out task")
    ax.set_ylabel("tasks")
    ax.set_title("value network, leave-tasks-out")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
