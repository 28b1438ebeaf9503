"""Is the value network's pick any good? Train it next to random cells on unseen datasets.

    python benchmarks/pick_quality.py [--random 5] [--seeds 0,1] [--cap 200] [--out docs/results]

For each dataset (the embedded ``digits``; CIFAR-10, Fashion-MNIST and MNIST when
``../shared/datasets`` exists), the shipped value network's top pick and ``--random`` random
connected cells are trained with the same recipe and seeds, on the same task (``--cap`` labelled
images per class). Prints a table, writes ``pick_quality.json`` and ``pick_quality.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import metanas
from metanas.data import load_dataset
from metanas.paths import shared_datasets_dir
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import make_task, proxy_resolution
from metanas.training import train_architecture


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=5)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--cap", type=int, default=200)
    ap.add_argument("--recipe", default="cpu-proxy")
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    specs = ["digits"]
    shared = shared_datasets_dir()
    if shared is not None:
        specs += [str(shared / f) for f in ("cifar10-32px.zip", "fashion-mnist.npz", "mnist.npz")]
    method = metanas.load_method("value-net")
    results = []
    for spec in specs:
        ds = load_dataset(spec, progress=False)
        pick = NB201Arch.from_string(method.search(ds, top=1, seed=0).architecture)
        task = make_task(ds, resolution=proxy_resolution(max(ds.image_size)),
                         max_train_per_class=args.cap, seed=0)
        cells = [("value-net", pick)] + [(f"random {i}", a)
                                         for i, a in enumerate(NB201Arch.sample_distinct(args.random, 0))]
        rows = []
        for label, arch in cells:
            accs = [train_architecture(arch, task, args.recipe, seed=s).test_acc for s in seeds]
            rows.append({"label": label, "arch": arch.to_string(), "test_acc": accs,
                         "mean": float(np.mean(accs))})
        rand = [r["mean"] for r in rows[1:]]
        results.append({
            "dataset": ds.name,
            "resolution": task.resolution,
            "n_train": int(len(task.y_train)),
            "rows": rows,
            "pick_mean": rows[0]["mean"],
            "random_mean": float(np.mean(rand)),
            "random_best": float(np.max(rand)),
            "pick_rank": 1 + sum(r > rows[0]["mean"] for r in rand),
        })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pick_quality.json").write_text(json.dumps({"args": vars(args), "results": results},
                                                      indent=2) + "\n")
    table = Table(title=f"value-net pick vs {args.random} random cells ({args.recipe}, seeds "
                        f"{args.seeds}, test accuracy)")
    for col in ("dataset", "px", "train imgs", "value-net pick", "random mean", "random best",
                "pick rank"):
        table.add_column(col)
    for r in results:
        table.add_row(r["dataset"], str(r["resolution"]), str(r["n_train"]),
                      f"{r['pick_mean']:.4f}", f"{r['random_mean']:.4f}",
                      f"{r['random_best']:.4f}", f"{r['pick_rank']} / {args.random + 1}")
    Console().print(table)
    _plot(results, out / "pick_quality.png")


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3 * len(results), 3.2), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        means = [row["mean"] for row in r["rows"]]
        colors = ["tab:red"] + ["tab:gray"] * (len(means) - 1)
        ax.bar(range(len(means)), means, color=colors)
        ax.set_xticks(range(len(means)), ["pick"] + [str(i) for i in range(len(means) - 1)])
        lo = min(means)
        ax.set_ylim(max(0.0, lo - 0.05), min(1.0, max(means) + 0.02))
        ax.set_title(r["dataset"], fontsize=9)
    axes[0][0].set_ylabel("test accuracy")
    fig.suptitle("value-net pick (red) vs random cells (gray)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
