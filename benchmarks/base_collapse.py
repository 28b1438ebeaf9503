"""Does BASE's adaptation still collapse to pooling / skip cells? Before and after the
knowledge-base prior on the cell logits and a weights-only warm-up.

For each setting and seed: adapt the shipped meta-supernet on a dataset for ``--steps`` steps,
derive the top cell, and report its number of convolutions (a collapsed cell has none or one),
its parameter-free share, and its NB201 ImageNet16-120 200-epoch accuracy (the table is used
only to judge; the prior leaves that source out, ``prior_exclude``).

    python benchmarks/base_collapse.py --datasets digits,TINY@16 --seeds 0,1 --prior-kb KB
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from metanas.api import load_method
from metanas.data import load_dataset
from metanas.paths import shared_datasets_dir
from metanas.spaces.nb201 import NB201Arch

HELD_OUT = "nb201-imagenet16-120"


def settings(steps: int, prior_kb: str) -> dict[str, dict]:
    prior = {"prior": "kb", "prior_kb": prior_kb, "prior_exclude": HELD_OUT}
    return {
        "as before (no prior, no warm-up)": {},
        f"warm-up {steps // 2} steps": {"warmup": steps // 2},
        "KB prior": prior,
        f"KB prior + warm-up {steps // 2}": {**prior, "warmup": steps // 2},
    }


def describe(arch: str, truth: dict[str, float]) -> dict:
    ops = NB201Arch.from_string(arch).ops
    return {"arch": arch, "convs": sum(o.startswith("nor_conv") for o in ops),
            "param_free": sum(o in ("avg_pool_3x3", "skip_connect") for o in ops),
            "in16": truth.get(arch)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="digits")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--prior-kb", default="default")
    ap.add_argument("--out", default="docs/results/base_collapse")
    args = ap.parse_args()
    shared = shared_datasets_dir()
    with (shared / "knowledge" / "nb201-imagenet16-120.csv").open(newline="") as fh:
        truth = {r["arch"]: float(r["test_acc"]) for r in csv.DictReader(fh)}
    method = load_method("base")
    rows = []
    for name in args.datasets.split(","):
        path = str(shared / "tiny-imagenet-200-64px.zip") if name == "TINY@16" else name
        data = load_dataset(path)
        for label, options in settings(args.steps, args.prior_kb).items():
            for seed in (int(s) for s in args.seeds.split(",")):
                res = method.search(data, top=1, seed=seed, adapt_steps=args.steps, **options)
                row = {"dataset": name, "setting": label, "seed": seed,
                       "seconds": res.search_seconds,
                       **describe(res.candidates[0].arch, truth)}
                rows.append(row)
                print(f"{name:8s} {label:34s} seed {seed}: convs {row['convs']} param-free "
                      f"{row['param_free']} IN16 {row['in16']:.2f}  {row['arch']}", flush=True)
    print(f"\n{'dataset':8s} {'setting':34s} {'convs':>5s} {'param-free':>10s} {'IN16 acc':>8s}")
    summary = {}
    for r in rows:
        summary.setdefault((r["dataset"], r["setting"]), []).append(r)
    for (d, label), rs in summary.items():
        print(f"{d:8s} {label:34s} {np.mean([r['convs'] for r in rs]):5.1f} "
              f"{np.mean([r['param_free'] for r in rs]):10.1f} "
              f"{np.mean([r['in16'] for r in rs]):8.2f}")
    out = Path(args.out).with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"steps": args.steps, "prior_kb": args.prior_kb,
                               "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
