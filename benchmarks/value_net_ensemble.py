"""Would an ensemble of value networks (meta-training seeds averaged) pick more steadily?

Eight value networks meta-trained without the ImageNet16-120 table (the shipped options:
Omniglot-background tasks as neighbours; seeds 0-7, cached with leave_source_out.py's) search
Tiny-ImageNet at 16 px (the table's stand-in) and the CIFAR-10 zip at 32 px; the first pick is
looked up in the table. For search seed s, a single network is seed s's; an ensemble of K is
the mean output of the networks of seeds s, s+1, ..., s+K-1 (mod 8), which share their input
standardisation (the same knowledge base), with the rest of the search (gradient pool, prior
cells, nwot re-rank, regime) unchanged. Windows that wrap around (seeds 7, 0, ...) are not
what meta-training with ``ensemble=K`` trains (consecutive seeds); ``leave_source_out.py
--only "ensemble of"`` measures those. This measurement chose the shipped ``ensemble=8``
(session 16).

    OMP_NUM_THREADS=1 python benchmarks/value_net_ensemble.py [--sizes 2,4,8]

Prints a table; writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from leave_source_out import ensemble_of, meta_trained, read_table

from metanas.data import load_dataset
from metanas.kb import KnowledgeBase
from metanas.kb.catalog import resolve_kb
from metanas.paths import shared_datasets_dir

OPTIONS = {"exclude_sources": "nb201-imagenet16-120",
           "neighbour_sources": "omniglot-28px-background"}
SEEDS = range(8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", default="combined-v3")
    ap.add_argument("--sizes", default="2,4,8")
    ap.add_argument("--cache", default="runs/leave-out-checkpoints")
    ap.add_argument("--out", default="docs/results/cifar10_surrogate/value_net_ensemble")
    args = ap.parse_args()
    shared = shared_datasets_dir()
    truth = read_table(shared / "knowledge" / "nb201-imagenet16-120.csv")
    kb_path = Path(resolve_kb(args.kb))
    with KnowledgeBase(kb_path, readonly=True) as kb:
        models = [meta_trained(kb, kb_path, OPTIONS, s, 100, Path(args.cache)) for s in SEEDS]
    rows = []
    for name, resolution in (("tiny-imagenet-200-64px.zip", 16), ("cifar10-32px.zip", 32)):
        data = load_dataset(shared / name)
        for size in [1, *(int(k) for k in args.sizes.split(","))]:
            picks = []
            for s in SEEDS:
                model = ensemble_of([models[(s + i) % len(SEEDS)] for i in range(size)])
                res = model.search(data, top=5, seed=s, resolution=resolution)
                picks.append(res.candidates[0].arch)
            top1 = [truth[a] for a in picks]
            rows.append({"dataset": name, "ensemble": size, "top1": top1, "picks": picks,
                         "mean": float(np.mean(top1)), "min": float(np.min(top1))})
            print(f"{name:28s} ensemble of {size}: top-1 mean {np.mean(top1):.2f}, worst "
                  f"{np.min(top1):.2f}  ({' '.join(f'{v:.2f}' for v in top1)})", flush=True)
    out = Path(args.out).with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"options": OPTIONS, "seeds": list(SEEDS), "rows": rows},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
