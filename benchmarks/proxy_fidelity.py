"""Proxy fidelity: how well does each cheap recipe rank architectures like an expensive one?

    python benchmarks/proxy_fidelity.py --source ../shared/datasets/tiny-imagenet-200-64px.zip \\
        --kb runs/fidelity.db --tasks 3 --archs 60 --workers 2 --out docs/results

Every recipe trains the same tasks x architectures (the build plan depends only on the seed), so
the runs are resumable and comparable. For each proxy and task: Spearman and Kendall tau of its
held-out accuracy (validation + test splits of the task) against the reference recipe's, and the
mean seconds per evaluation. Prints a table, writes ``proxy_fidelity.json`` and
``proxy_fidelity.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy import stats

from metanas.kb import KnowledgeBase
from metanas.kb_build import BuildPlan, build_kb
from metanas.training import get_recipe

DEFAULT_PROXIES = (
    "cpu-proxy[resolution=16]",
    "cpu-proxy[epochs=3,resolution=16]",
    "cpu-proxy[C=4,resolution=16]",
    "cpu-proxy",
    "cpu-proxy[epochs=12,resolution=16]",
)
DEFAULT_REFERENCE = "cpu-proxy[C=16,epochs=16]"


def heldout(row: dict, task: dict) -> float:
    n_val, n_test = task["n_val"] or 1, task["n_test"] or 1
    return (row["val_acc"] * n_val + row["test_acc"] * n_test) / (n_val + n_test)


def collect(kb: KnowledgeBase, recipe: str, seed: int = 0) -> tuple[dict, float]:
    """{(task_key, arch): held-out accuracy} and mean seconds per evaluation for a recipe."""
    h = get_recipe(recipe).hash
    tasks = {t["key"]: t for t in kb.tasks()}
    rows = [r for r in kb.evaluations() if r["recipe_hash"] == h and r["seed"] == seed]
    acc = {(r["task_key"], r["arch"]): heldout(r, tasks[r["task_key"]]) for r in rows}
    secs = float(np.mean([r["seconds"] for r in rows])) if rows else float("nan")
    return acc, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--kb", default="runs/fidelity.db")
    ap.add_argument("--tasks", type=int, default=3)
    ap.add_argument("--archs", type=int, default=60)
    ap.add_argument("--n-way", type=int, default=10)
    ap.add_argument("--train-per-class", type=int, default=100)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--reference", default=DEFAULT_REFERENCE)
    ap.add_argument("--proxies", default=",".join(DEFAULT_PROXIES),
                    help="recipes separated by ';' or ',' outside brackets")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()

    proxies = _split(args.proxies)
    recipes = [args.reference, *proxies]
    with KnowledgeBase(args.kb) as kb:
        for recipe in recipes:
            plan = BuildPlan(
                source=args.source, tasks=args.tasks, archs_per_task=args.archs, anchors=2,
                n_way=(args.n_way,), resolutions=(args.resolution,),
                train_per_class=(args.train_per_class,), recipe=recipe, seed=args.seed,
                seeds=(0, 1) if recipe == proxies[0] else (0,),
            )
            Console(stderr=True).print(f"[bold]{escape(recipe)}[/]")
            build_kb(kb, plan, workers=args.workers, progress=True)
        ref, ref_secs = collect(kb, args.reference)
        results = [{"recipe": args.reference, "reference": True, "seconds": ref_secs}]
        for recipe in proxies:
            acc, secs = collect(kb, recipe)
            per_task = []
            for keys in _by_task([k for k in ref if k in acc]):
                a = np.array([acc[k] for k in keys])
                b = np.array([ref[k] for k in keys])
                per_task.append({
                    "task": keys[0][0],
                    "n": len(keys),
                    "spearman": float(stats.spearmanr(a, b).statistic),
                    "kendall": float(stats.kendalltau(a, b).statistic),
                })
            sp = float(np.mean([p["spearman"] for p in per_task]))
            kt = float(np.mean([p["kendall"] for p in per_task]))
            results.append({"recipe": recipe, "reference": False, "seconds": secs,
                            "spearman": sp, "kendall": kt,
                            "spearman_per_second": sp / secs, "per_task": per_task})
        # Repeatability of the first proxy across training seeds: label noise of the data.
        a0, _ = collect(kb, proxies[0], seed=0)
        a1, _ = collect(kb, proxies[0], seed=1)
        repeat = [float(stats.spearmanr([a0[k] for k in ks], [a1[k] for k in ks]).statistic)
                  for ks in _by_task([k for k in a0 if k in a1])]
        results.append({"recipe": f"{proxies[0]} seed 0 vs seed 1", "reference": False,
                        "seconds": float("nan"), "spearman": float(np.mean(repeat)),
                        "kendall": float("nan"), "spearman_per_second": float("nan"),
                        "per_task": repeat})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "proxy_fidelity.json").write_text(json.dumps({"args": vars(args),
                                                         "results": results}, indent=2) + "\n")
    table = Table(title=f"proxy fidelity vs {escape(args.reference)} ({args.tasks} tasks x "
                        f"{args.archs} archs)")
    for col in ("recipe", "s / eval", "Spearman", "Kendall", "Spearman per s"):
        table.add_column(col)
    for r in results:
        if r["reference"]:
            table.add_row(escape(r["recipe"]) + " (reference)", f"{r['seconds']:.1f}", "1", "1", "")
        elif not np.isfinite(r["seconds"]):
            table.add_row(escape(r["recipe"]), "", f"{r['spearman']:.3f}", "", "")
        else:
            table.add_row(escape(r["recipe"]), f"{r['seconds']:.1f}", f"{r['spearman']:.3f}",
                          f"{r['kendall']:.3f}", f"{r['spearman_per_second']:.3f}")
    Console().print(table)
    _plot(results, out / "proxy_fidelity.png")


def _by_task(keys: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    tasks = sorted({t for t, _ in keys})
    return [[k for k in keys if k[0] == t] for t in tasks]


def _split(text: str) -> list[str]:
    """Split on ';' or on ',' outside square brackets."""
    if ";" in text:
        return [p.strip() for p in text.split(";") if p.strip()]
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [p for p in [*parts, cur.strip()] if p]


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        if r["reference"] or not np.isfinite(r["seconds"]):
            continue
        ax.scatter(r["seconds"], r["spearman"], s=40)
        ax.annotate(r["recipe"].replace("cpu-proxy", "proxy"), (r["seconds"], r["spearman"]),
                    fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per evaluation (1 CPU core)")
    ax.set_ylabel("Spearman vs reference (mean over tasks)")
    ax.set_title("proxy fidelity")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
