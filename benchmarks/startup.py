"""Whole-process wall time of CLI commands against ``python -c "import torch"``, paired.

    python benchmarks/startup.py [--repeats 7] [--out docs/results]

Each round runs every command once, in a shuffled (seeded) order, so load from other processes
hits all of them alike; the table shows medians and each command's median ratio to
``import torch`` over the rounds. Targets (issue 17): ``metanas --help`` < 0.5 s, the whole
``metanas search --dataset digits`` <= 1.3x ``import torch``. Writes ``startup.json`` and
``startup.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import compileall
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from metanas.figures import pyplot, save_png
from metanas.jsonio import write_json

METANAS = [str(Path(sys.executable).with_name("metanas"))]  # the installed console script
COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "metanas --help": [*METANAS, "--help"],
    "metanas methods": [*METANAS, "methods"],
    "search digits": [*METANAS, "search", "--dataset", "digits"],
    "search digits, no re-rank": [*METANAS, "search", "--dataset", "digits", "--set", "rerank="],
}


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()
    # Bytecode as a user has it: pip writes it at install time, and an editable install on
    # first import; with PYTHONDONTWRITEBYTECODE=1 (as on this sandbox) an editable install
    # would otherwise compile metanas from source in every process (about 0.15 s).
    import metanas

    compileall.compile_dir(Path(metanas.__file__).parent, quiet=1)
    rng = random.Random(args.seed)
    for cmd in COMMANDS.values():  # warm the page cache and the dataset cache once
        wall(cmd)
    rounds: list[dict[str, float]] = []
    for _ in range(args.repeats):
        order = list(COMMANDS)
        rng.shuffle(order)
        rounds.append({name: wall(COMMANDS[name]) for name in order})
    rows = []
    for name in COMMANDS:
        times = [r[name] for r in rounds]
        ratios = [r[name] / r["import torch"] for r in rounds]
        rows.append({"command": " ".join(Path(COMMANDS[name][0]).name.split() +
                                         COMMANDS[name][1:]), "name": name,
                     "median_s": statistics.median(times), "min_s": min(times),
                     "ratio_to_torch_median": statistics.median(ratios), "seconds": times})
    table = Table(title=f"whole-process wall seconds, {args.repeats} paired rounds")
    for col in ("command", "median s", "min s", "x import torch (median of ratios)"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], f"{r['median_s']:.2f}", f"{r['min_s']:.2f}",
                      f"{r['ratio_to_torch_median']:.2f}")
    Console(width=120).print(table)
    out = Path(args.out)
    write_json(out / "startup.json", {"repeats": args.repeats, "rows": rows}, option="--out")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.barh([r["name"] for r in rows], [r["median_s"] for r in rows], color="C0")
    ax.axvline(rows[0]["median_s"] * 1.3, color="grey", ls="--", lw=0.8,
               label="1.3x import torch")
    ax.set_xlabel("median wall seconds (whole process)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    save_png(fig, out / "startup.png")
    print(f"wrote {out / 'startup.json'} and {out / 'startup.png'}")


if __name__ == "__main__":
    main()
