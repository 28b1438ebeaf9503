"""What a training step of an NB201 cell costs, per op: the data of the budget-aware ranking.

    python benchmarks/step_cost.py                       # 40 cells at 32 and 16 px, batch 128
    python benchmarks/step_cost.py --cells 60 --sides 32 --C 8 --N 1

Under a wall budget a cheap cell runs more epochs (docs/roadmap.md: at 60 s on CIFAR-10 the
epochs a cell ran rank the fit accuracies at Spearman 0.95). A ranking for the budget needs each
cell's seconds per step without training it. MACs miss it (pooling and skip edges cost memory
traffic, not multiply-adds), so this script times real training steps
(:func:`metanas.training.trainer.train_step`, forward, backward and SGD, crop-flip augmentation
excluded) of seeded random cells and fits ``seconds = base + sum over executed edges of
cost[op] (x share for a dead edge)`` by least squares, the dead-edge share on a grid; an edge
is executed when its source node is reachable from the input (``NB201Cell`` skips the others),
dead when its output never reaches the cell's output (forward only: autograd leaves it out). It prints the fitted per-op costs relative to the
skeleton's (the ``base``: stem, reductions, head) and the fit's accuracy (R², Spearman of
predicted against measured seconds, on the cells and on held-out ones), and writes
``docs/results/step_cost.json``; timings already there are reused (``--remeasure`` times
anew). The shipped coefficients
(:data:`metanas.training.budget.STEP_COST`) come from this script's 32 px row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scipy import stats

from metanas.jsonio import write_json
from metanas.spaces.nb201 import NB201Network, count_macs
from metanas.spaces.nb201.genotype import NB201Arch
from metanas.training.budget import STEP_COST_OPS, dead_edges, executed_edges, time_train_step


def design(arch: NB201Arch, share: float) -> list[float]:
    counts, dead = executed_edges(arch), dead_edges(arch)
    return [1.0] + [counts[op] - (1.0 - share) * dead[op] for op in STEP_COST_OPS]


def fit_costs(cells: list[NB201Arch], t: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares coefficients (base, then per op) and the dead-edge share (0.05 grid)."""
    best = None
    for share in np.linspace(0.0, 1.0, 21):
        X = np.array([design(a, share) for a in cells])
        coef, *_ = np.linalg.lstsq(X, t, rcond=None)
        sse = float(np.sum((t - X @ coef) ** 2))
        if best is None or sse < best[0]:
            best = (sse, coef, float(share))
    return best[1], best[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--held-out", type=int, default=12)
    ap.add_argument("--sides", default="32,16")
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/results/step_cost.json")
    ap.add_argument("--remeasure", action="store_true", help="time every cell anew")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cells = NB201Arch.sample_distinct(args.cells + args.held_out, seed=args.seed)
    old = {} if args.remeasure or not Path(args.out).exists() else {
        (r["arch"], r["side"]): r["step_seconds"]
        for r in json.loads(Path(args.out).read_text())["rows"]}
    rows, fits = [], {}
    console = Console()
    for side in (int(s) for s in args.sides.split(",")):
        secs = []
        for i, arch in enumerate(cells):
            known = old.get((arch.to_string(), side))
            secs.append(known if known is not None else
                        time_train_step(arch, side=side, batch=args.batch, C=args.C, N=args.N,
                                        timed=args.repeats, warmup=2))
            rows.append({"arch": arch.to_string(), "side": side, "step_seconds": secs[-1]})
            console.print(f"{side} px {i + 1}/{len(cells)}: {secs[-1] * 1e3:.1f} ms", end="\r")
        macs = np.array([count_macs(NB201Network(a, C=args.C, N=args.N), side) for a in cells])
        t = np.array(secs)
        fit_n = args.cells
        coef, share = fit_costs(cells[:fit_n], t[:fit_n])
        X = np.array([design(a, share) for a in cells])
        pred = X @ coef
        r2 = 1 - np.sum((t[:fit_n] - pred[:fit_n]) ** 2) / np.sum((t[:fit_n] - t[:fit_n].mean()) ** 2)
        fits[side] = {
            "base_seconds": float(coef[0]),
            "relative": {op: float(c / coef[0]) for op, c in zip(STEP_COST_OPS, coef[1:], strict=True)},
            "dead_edge_share": share,
            "r2": float(r2),
            "spearman_fit": float(stats.spearmanr(pred[:fit_n], t[:fit_n])[0]),
            "spearman_held_out": float(stats.spearmanr(pred[fit_n:], t[fit_n:])[0]),
            "spearman_macs_held_out": float(stats.spearmanr(macs[fit_n:], t[fit_n:])[0]),
            "step_seconds_range": [float(t.min()), float(t.max())],
        }
    table = Table(title=f"training step at C={args.C} N={args.N}, batch {args.batch}, 1 thread: "
                        "seconds = base x (1 + sum of relative op costs of executed edges)")
    table.add_column("side")
    table.add_column("base ms")
    for op in STEP_COST_OPS:
        table.add_column(op)
    for col in ("dead share", "R²", "ρ fit", "ρ held out", "ρ MACs held out", "step ms range"):
        table.add_column(col)
    for side, f in fits.items():
        lo, hi = f["step_seconds_range"]
        table.add_row(str(side), f"{f['base_seconds'] * 1e3:.1f}",
                      *(f"{f['relative'][op]:.3f}" for op in STEP_COST_OPS),
                      f"{f['dead_edge_share']:.2f}",
                      f"{f['r2']:.3f}", f"{f['spearman_fit']:.3f}", f"{f['spearman_held_out']:.3f}",
                      f"{f['spearman_macs_held_out']:.3f}",
                      f"{lo * 1e3:.0f}-{hi * 1e3:.0f}")
    console.print(table)
    write_json(args.out, {"config": vars(args), "fits": {str(k): v for k, v in fits.items()},
                          "rows": rows})


if __name__ == "__main__":
    main()
