"""Each method's pick against the distribution of random cells, per bench dataset (issue 12's
"no meta-learned method below the median of random cells").

    python benchmarks/bench_vs_random.py --bench runs/bench-v4/results.json \
        --random runs/bench-v4-random10/results.json --out docs/results/bench-v4/vs_random

Random cells are every cell a ``random`` search trained in the given bench folders (the bench's
own judge: same recipe, labelled images per class and seed as the picks), one entry per
(dataset, seed, cell). For each method and dataset: the pick's test accuracy (mean over seeds),
the random cells' median, and the share of random cells the pick beats (ties count half).
Prints a table; writes JSON and a PNG (random cells as dots, each method's picks as markers).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

META_LEARNED = ("value-net", "metad2a", "fisher-nearest", "nearest-best", "global-prior", "base",
                "base-prior")


def random_cells(payloads: list[dict], judge: set[tuple]) -> dict[str, dict[tuple[int, str], float]]:
    """{dataset: {(seed, arch): test accuracy}} of every random-search candidate trained by one
    of the ``judge`` (recipe hash, labelled images per class) pairs."""
    out: dict[str, dict[tuple[int, str], float]] = {}
    for payload in payloads:
        for row in payload["rows"]:
            if row["method"] != "random" or _judge(row) not in judge:
                continue
            cells = out.setdefault(row["dataset"], {})
            for cand in row.get("trained_candidates") or []:
                cells[(row["seed"], cand["arch"])] = float(cand["test_acc"])
    return out


def _judge(row: dict) -> tuple:
    return row.get("recipe_hash"), row.get("max_train_per_class")


def compare(bench: dict, cells: dict[str, dict]) -> list[dict]:
    picks: dict[tuple[str, str], list[float]] = {}
    for row in bench["rows"]:
        picks.setdefault((row["dataset"], row["method"]), []).append(float(row["test_acc"]))
    out = []
    for (dataset, method), accs in sorted(picks.items()):
        pool = np.array(sorted(cells.get(dataset, {}).values()))
        mean = float(np.mean(accs))
        beats = (float(np.mean([(pool < a).mean() + 0.5 * (pool == a).mean() for a in accs]))
                 if len(pool) else None)
        median = float(np.median(pool)) if len(pool) else None
        out.append({"dataset": dataset, "method": method, "meta_learned": method in META_LEARNED,
                    "pick_test_acc": accs, "pick_mean": mean, "random_cells": len(pool),
                    "random_median": median, "beats_share": beats,
                    "at_or_above_median": None if median is None else mean >= median})
    return out


def plot(rows: list[dict], cells: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows})
    methods = sorted({r["method"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(4 * len(datasets), 4.5), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        pool = np.array(list(cells.get(dataset, {}).values()))
        ax.scatter(rng.uniform(-0.3, 0.3, len(pool)), pool, s=10, color="grey", alpha=0.6,
                   label="random cells")
        if len(pool):
            ax.axhline(np.median(pool), color="grey", ls="--", lw=0.8, label="random median")
        for i, method in enumerate(methods, 1):
            accs = [a for r in rows if r["dataset"] == dataset and r["method"] == method
                    for a in r["pick_test_acc"]]
            ax.scatter([i] * len(accs), accs, marker="o" if method in META_LEARNED else "s")
        ax.set_xticks(range(len(methods) + 1), ["random\ncells", *methods], rotation=60,
                      fontsize=7)
        ax.set_title(dataset, fontsize=9)
        ax.set_ylabel("test accuracy (bench judge)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", required=True, help="results.json of the bench with the picks")
    ap.add_argument("--random", action="append", default=[],
                    help="further results.json holding random-search cells (repeatable)")
    ap.add_argument("--out", required=True, help="output path without suffix")
    args = ap.parse_args()
    bench = json.loads(Path(args.bench).read_text())
    judge = {_judge(row) for row in bench["rows"]}
    cells = random_cells([bench, *(json.loads(Path(p).read_text()) for p in args.random)], judge)
    rows = compare(bench, cells)
    print(f"{'dataset':28s} {'method':15s} {'pick':>7s} {'median':>7s} {'beats':>6s} "
          f"{'cells':>5s}")
    for r in rows:
        med = "-" if r["random_median"] is None else f"{r['random_median']:.3f}"
        beats = "-" if r["beats_share"] is None else f"{r['beats_share']:.2f}"
        flag = "" if r["at_or_above_median"] in (None, True) else "  below median"
        print(f"{r['dataset']:28s} {r['method']:15s} {r['pick_mean']:7.3f} {med:>7s} "
              f"{beats:>6s} {r['random_cells']:5d}{flag}")
    below = [f"{r['method']} on {r['dataset']}" for r in rows
             if r["meta_learned"] and r["at_or_above_median"] is False]
    print(f"\nmeta-learned picks below the random median: {len(below)}"
          + (f" ({'; '.join(below)})" if below else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"bench": args.bench, "random": args.random, "rows": rows, "below_median": below},
        indent=1) + "\n")
    plot(rows, cells, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
