"""Train the cells BASE, DARTS and GDAS derived in the default searches (and BASE's prior pick)
with the cpu-proxy recipe, to see what the derived cells are worth.

    OMP_NUM_THREADS=1 python benchmarks/base_picks.py   # after base_adaptation.py --no-curves \
        --baselines --out docs/results/base_search_compare.json

Writes docs/results/base_picks.json and prints a table (test accuracy, one seed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import metanas
from metanas.data import load_dataset
from metanas.methods.registry import create_method
from metanas.paths import shared_datasets_dir

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
FILES = {"cifar10": "cifar10-32px.zip", "fashion-mnist": "fashion-mnist.npz"}
REFERENCE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
"""A conv-heavy reference cell (NB201's best CIFAR-10 cell family)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", default=str(RESULTS / "base_search_compare.json"))
    ap.add_argument("--datasets", default="cifar10")
    ap.add_argument("--recipe", default="cpu-proxy")
    ap.add_argument("--out", default=str(RESULTS / "base_picks.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    compare = json.loads(Path(args.compare).read_text())
    report: dict = {"recipe": args.recipe, "datasets": {}}
    for name in args.datasets.split(","):
        data = load_dataset(shared_datasets_dir() / FILES[name], progress=False)
        picks = {label: s["architecture"]
                 for label, s in compare["datasets"][name]["searches"].items()}
        picks["base-prior"] = create_method("base").search(data, top=1, mode="prior").architecture
        picks["reference"] = REFERENCE
        rows = {}
        for label, arch in picks.items():
            t0 = time.perf_counter()
            r = metanas.train(data, arch, recipe=args.recipe, max_train_per_class=500)
            rows[label] = {"arch": arch, "test_acc": r.test_acc, "val_acc": r.val_acc,
                           "params": r.params, "seconds": round(time.perf_counter() - t0, 1)}
            print(f"{name:>13} {label:>10}: test {r.test_acc:.4f} ({r.params:,} params) {arch}",
                  flush=True)
        report["datasets"][name] = rows
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
