"""nwot + meco per cell: cells one at a time vs side by side in one pass.

    OMP_NUM_THREADS=1 python benchmarks/batched_proxies.py [--repeats 3] \
        [--out docs/results/batched_proxies]

Random cells (seeded) on a seeded batch of random images, scored by
:func:`metanas.features.zero_cost.score_batch`: "one at a time" passes one cell per call, "side
by side" all of them in one call. Sizes: the re-ranks' network (C=8, N=1, 32 images at 16 px)
and NB201's own (C=16, N=5, 64 images at 16 px). Best of ``--repeats`` (the machine's noise
is one-sided). Also reports the largest difference between the two ways' scores (float
rounding of grouped vs single convolutions). Writes ``batched_proxies.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from metanas.features.zero_cost import ZeroCostConfig, score_batch
from metanas.spaces.nb201 import NB201Arch

PROXIES = ("nwot", "meco")


def best_seconds(fn, repeats: int) -> tuple[float, list]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="docs/results/batched_proxies")
    args = ap.parse_args()
    rows = []
    for C, N, images, cell_counts in ((8, 1, 32, (1, 5, 30, 100)), (16, 5, 64, (1, 10))):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(images, 3, 16, 16, generator=g)
        y = torch.randint(0, 10, (images,), generator=g)
        config = ZeroCostConfig(C=C, N=N, batch_size=images)
        for k in cell_counts:
            cells = NB201Arch.sample_distinct(k, 0)

            def alone(cells=cells, x=x, y=y, config=config):
                return [score_batch([a], x, y, num_classes=10, proxies=PROXIES,
                                    config=config)[0] for a in cells]

            def together(cells=cells, x=x, y=y, config=config):
                return score_batch(cells, x, y, num_classes=10, proxies=PROXIES, config=config)

            t_alone, r_alone = best_seconds(alone, args.repeats)
            t_together, r_together = best_seconds(together, args.repeats)
            diff = {p: float(np.max([abs(a["scores"][p] - b["scores"][p]) /
                                     max(abs(a["scores"][p]), 1e-12)
                                     for a, b in zip(r_alone, r_together, strict=True)
                                     if np.isfinite(a["scores"][p])]))
                    for p in PROXIES}
            rows.append({"C": C, "N": N, "images": images, "cells": k,
                         "alone_ms_per_cell": 1000 * t_alone / k,
                         "together_ms_per_cell": 1000 * t_together / k,
                         "max_relative_difference": diff})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "batched_proxies.json").write_text(json.dumps(
        {"args": vars(args), "threads": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")
    table = Table(title="nwot + meco, ms per cell (best of "
                        f"{args.repeats}; 16 px, {torch.get_num_threads()} thread(s))")
    for col in ("network", "images", "cells", "one at a time", "side by side", "speed-up",
                "max rel. diff nwot / meco"):
        table.add_column(col)
    for r in rows:
        table.add_row(f"C={r['C']}, N={r['N']}", str(r["images"]), str(r["cells"]),
                      f"{r['alone_ms_per_cell']:.1f}", f"{r['together_ms_per_cell']:.1f}",
                      f"{r['alone_ms_per_cell'] / r['together_ms_per_cell']:.2f}x",
                      f"{r['max_relative_difference']['nwot']:.1e} / "
                      f"{r['max_relative_difference']['meco']:.1e}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
