"""MetaD2A search speed on new datasets, and how its generate and exhaustive modes compare.

    OMP_NUM_THREADS=1 python benchmarks/metad2a_speed.py [--checkpoint CKPT] [--repeats 5] \
        [--candidates 500] [--resamples 10] [--out docs/results]

Datasets: the embedded ``digits`` and, when ``../shared/datasets`` exists, CIFAR-10. Search
seconds are wall time from a loaded model to the ranking, dataset encoding (image sampling +
feature extraction), generation and ranking included; loading the dataset and the checkpoint
is excluded. The default search (nwot + meco re-rank of the predictor's top 30) is timed, and the
predictor alone (``rerank=""``), in both modes; the mode comparison (overlap, best score) is
the predictor's. Target: <= 1 s per search on the 2-core CPU. Writes ``metad2a_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import metanas
from metanas.data import load_dataset
from metanas.methods.metad2a import MetaD2AMethod
from metanas.paths import shared_datasets_dir
from metanas.spaces.nb201 import NB201Arch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--resamples", type=int, default=10)
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()
    t = time.perf_counter()
    method = (MetaD2AMethod.load(args.checkpoint) if args.checkpoint
              else metanas.load_method("metad2a"))
    load_checkpoint = time.perf_counter() - t
    specs = ["digits"]
    shared = shared_datasets_dir()
    if shared is not None and (shared / "cifar10-32px.zip").exists():
        specs.append(str(shared / "cifar10-32px.zip"))
    rows = []
    for spec in specs:
        t = time.perf_counter()
        ds = load_dataset(spec, progress=False)
        load_seconds = time.perf_counter() - t
        voted = [method.search(ds, top=10, seed=s, candidates=args.candidates,
                               resamples=args.resamples) for s in range(args.repeats)]
        gen = [method.search(ds, top=10, seed=s, candidates=args.candidates,
                             resamples=args.resamples, rerank="") for s in range(args.repeats)]
        exh = [method.search(ds, top=10, seed=s, resamples=args.resamples, mode="exhaustive",
                             rerank="") for s in range(args.repeats)]
        overlap = []
        for g, e in zip(gen, exh, strict=True):
            a = {NB201Arch.from_string(c.arch).canonical_form for c in g.candidates}
            b = {NB201Arch.from_string(c.arch).canonical_form for c in e.candidates}
            overlap.append(len(a & b))
        rows.append({
            "dataset": ds.name, "classes": ds.num_classes,
            "image": f"{ds.image_size[0]}x{ds.image_size[1]}x{ds.channels}",
            "load_seconds": load_seconds,
            "default_seconds": [r.search_seconds for r in voted],
            "default_median": float(np.median([r.search_seconds for r in voted])),
            "default_timings_median": {k: float(np.median([r.timings[k] for r in voted]))
                                       for k in voted[0].timings},
            "top1_default": voted[0].architecture,
            "generate_seconds": [r.search_seconds for r in gen],
            "generate_median": float(np.median([r.search_seconds for r in gen])),
            "generate_timings_median": {k: float(np.median([r.timings[k] for r in gen]))
                                        for k in gen[0].timings},
            "generation": [r.details["generation"] for r in gen],
            "exhaustive_seconds": [r.search_seconds for r in exh],
            "exhaustive_median": float(np.median([r.search_seconds for r in exh])),
            "top10_overlap": overlap,
            "best_score_generate": [r.candidates[0].score for r in gen],
            "best_score_exhaustive": [r.candidates[0].score for r in exh],
            "top1_generate": gen[0].architecture, "top1_exhaustive": exh[0].architecture,
        })
    report = {"args": vars(args), "load_checkpoint_seconds": load_checkpoint, "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metad2a_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"MetaD2A search on the 2-core CPU ({args.candidates} candidates, "
                        f"{args.resamples} resamples, median of {args.repeats} seeds)")
    for col in ("dataset", "classes", "default s", "encode / generate / rank / re-rank s",
                "predictor alone s",
                "exhaustive s", "top-10 overlap", "best score gen / exh"):
        table.add_column(col)
    for r in rows:
        tm = r["default_timings_median"]
        table.add_row(
            r["dataset"], str(r["classes"]), f"{r['default_median']:.2f}",
            f"{tm['encode_seconds']:.2f} / {tm['generate_seconds']:.2f} / "
            f"{tm['rank_seconds']:.2f} / {tm['rerank_seconds']:.2f}",
            f"{r['generate_median']:.2f}", f"{r['exhaustive_median']:.2f}",
            f"{np.mean(r['top10_overlap']):.1f}/10",
            f"{np.mean(r['best_score_generate']):.3f} / "
            f"{np.mean(r['best_score_exhaustive']):.3f}")
    Console(width=140).print(table)
    print(f"checkpoint load {load_checkpoint:.2f} s (not in search time); first exhaustive "
          "search also embeds all 15,625 cells once per loaded model")


if __name__ == "__main__":
    main()
