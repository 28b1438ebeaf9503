"""Search time as a user first sees it: one `metanas search` per fresh process.

    python benchmarks/cli_search_speed.py [--methods value-net,metad2a] [--repeats 5] \
        [--threads 0] [--out docs/results/cli_search_speed]

The in-process benchmarks (`search_speed.py`, `metad2a_speed.py`) report the median of several
searches with one loaded model, so the one-off costs of a first search (lazy imports inside
PyTorch, first calls of each kernel, caches) fall out of them. Here every search is a new
`metanas search --json` process (seeds 0 .. repeats-1); reported are the `search_seconds` it
writes (loaded model to ranking, the number issue 12's 1 s target is about) and the command's
whole wall time (interpreter start, imports, dataset and checkpoint loading included).
Datasets: the embedded digits and, when ../shared/datasets exists, the CIFAR-10 zip.
``--threads N`` sets OMP_NUM_THREADS for the child (0: leave it unset, as a user would).
Writes ``cli_search_speed.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from metanas.paths import shared_datasets_dir


def one_search(method: str, dataset: str, seed: int, threads: int) -> dict:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "search.json"
        cmd = [sys.executable, "-m", "metanas.cli", "search", "--dataset", dataset, "--method",
               method, "--seed", str(seed), "--json", str(out)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        result = json.loads(out.read_text())
    return {"seed": seed, "search_seconds": result["search_seconds"], "wall_seconds": wall,
            "timings": result.get("timings", {}), "architecture": result["architecture"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="value-net,metad2a")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="docs/results/cli_search_speed")
    args = ap.parse_args()
    datasets = ["digits"]
    shared = shared_datasets_dir()
    if shared is not None and (shared / "cifar10-32px.zip").exists():
        datasets.append(str(shared / "cifar10-32px.zip"))
    rows = []
    for method in args.methods.split(","):
        for dataset in datasets:
            runs = [one_search(method, dataset, s, args.threads) for s in range(args.repeats)]
            search = [r["search_seconds"] for r in runs]
            rows.append({
                "method": method, "dataset": Path(dataset).stem, "runs": runs,
                "search_median": statistics.median(search), "search_max": max(search),
                "wall_median": statistics.median(r["wall_seconds"] for r in runs),
                "timings_median": {k: statistics.median(r["timings"][k] for r in runs)
                                   for k in runs[0]["timings"]},
            })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"args": vars(args), "cpus": os.cpu_count(), "rows": rows}
    (out / "cli_search_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"metanas search, one fresh process per search ({args.repeats} seeds; "
                        "target: search_seconds <= 1 s)")
    for col in ("method", "dataset", "search s median", "max", "stages (median s)",
                "whole command s"):
        table.add_column(col)
    for r in rows:
        stages = " / ".join(f"{k.removesuffix('_seconds')} {v:.2f}"
                            for k, v in r["timings_median"].items())
        table.add_row(r["method"], r["dataset"], f"{r['search_median']:.2f}",
                      f"{r['search_max']:.2f}", stages, f"{r['wall_median']:.1f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
