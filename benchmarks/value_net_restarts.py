"""The shipped value network's CIFAR-10 picks per search seed and gradient-ascent restarts,
looked up in the ImageNet16-120 table (in-sample: the checkpoint saw that table, so this shows
whether the gradient pool holds the network's own favourite, not how good the favourite is).

    OMP_NUM_THREADS=1 python benchmarks/value_net_restarts.py [--seeds 0,1,2,3] [--restarts 8,32]

Prints a table; writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from leave_source_out import read_table

from metanas.api import load_method
from metanas.data import load_dataset
from metanas.paths import shared_datasets_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--restarts", default="8,32")
    ap.add_argument("--out", default="docs/results/cifar10_surrogate/shipped_value_net_restarts")
    args = ap.parse_args()
    shared = shared_datasets_dir()
    truth = read_table(shared / "knowledge" / "nb201-imagenet16-120.csv")
    data = load_dataset(shared / "cifar10-32px.zip")
    model = load_method("value-net")
    rows = []
    print(f"{'restarts':>8s} {'seed':>4s} {'network top-1':>13s} {'default top-1':>13s} "
          f"{'pool':>5s} {'search s':>8s}")
    for restarts in (int(r) for r in args.restarts.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            plain = model.search(data, top=5, seed=seed, rerank="", restarts=restarts)
            voted = model.search(data, top=5, seed=seed, restarts=restarts)
            row = {"restarts": restarts, "seed": seed,
                   "network_top1": truth[plain.candidates[0].arch],
                   "default_top1": truth[voted.candidates[0].arch],
                   "network_pick": plain.candidates[0].arch,
                   "network_score": plain.candidates[0].score,
                   "pool": plain.details["pool_size"], "search_s": voted.search_seconds}
            rows.append(row)
            print(f"{restarts:8d} {seed:4d} {row['network_top1']:13.2f} "
                  f"{row['default_top1']:13.2f} {row['pool']:5d} {row['search_s']:8.2f}")
    out = Path(args.out).with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
