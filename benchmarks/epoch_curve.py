"""How much accuracy do epochs buy? The learning curve of the budget-aware ranking.

    python benchmarks/epoch_curve.py                      # 6 cells x epochs 1,2,4,8,16
    python benchmarks/epoch_curve.py --epochs 1,2,4,8,16,32 --cells 8
    python benchmarks/epoch_curve.py --dataset "omniglot-28px.npz[class_split=background]" \
        --classes 0 --out docs/results/epoch_curve_omniglot   # many classes, few images each

A ranking for a wall budget trades a cell's quality against the epochs it can run
(``benchmarks/step_cost.py`` gives the seconds). This script measures the trade on a
development task that no benchmark judges: 10 seeded classes of Tiny-ImageNet at 32 px (all
200 labelled images of each, 50 test images), every cell trained with the budgeted fit's
recipe (C=8, N=1 as a tight budget gets, the fit's batch and learning rate, cosine over the
whole run, one warm-up epoch from 3 epochs) for each number of epochs, seed 0. ``--dataset``
(a file under ../shared/datasets, with an optional ``[class_split=...]``) and ``--classes 0``
(all of its classes) measure another regime: Omniglot's background alphabets, 964 classes of
20 images, none of them in a benchmark. It fits
``acc(cell, e) = a_cell - k * e^-alpha`` (one ``k``, ``alpha`` for all cells, one asymptote per
cell) and reports them with the fit's residual; ``k`` and ``alpha`` are what
:data:`metanas.training.budget.EPOCH_CURVE` ships.
Rows merge into ``--out``/epoch_curve.json (the run resumes); a plot of the curves goes
beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from fit_budget import ARCHS, stored_rows  # sibling script
from rich.console import Console
from rich.table import Table
from scipy.optimize import curve_fit

from metanas.data import load_dataset
from metanas.figures import pyplot, save_png
from metanas.jsonio import write_json
from metanas.paths import shared_datasets_dir
from metanas.spaces.nb201.genotype import NB201Arch
from metanas.tasks import make_task
from metanas.training.budget import fit_recipe, pick_batch_size
from metanas.training.fit import augment_for
from metanas.training.trainer import train_architecture


def curve(e, a, k, alpha):
    return a - k * np.power(e, -alpha)


def fit_curves(rows: list[dict]) -> dict:
    """Least squares of the shared-shape curve (percent points) over every row."""
    archs = sorted({r["arch"] for r in rows})
    if len(rows) < len(archs) + 3:
        return {}
    idx = np.array([archs.index(r["arch"]) for r in rows])
    e = np.array([r["epochs"] for r in rows], dtype=float)
    acc = 100 * np.array([r["test_acc"] for r in rows])

    def model(_x, *p):
        return np.asarray(p[:len(archs)])[idx] - p[-2] * e ** -p[-1]

    p0 = [float(acc[idx == i].max()) for i in range(len(archs))] + [10.0, 0.7]
    lower = [0.0] * len(archs) + [0.0, 0.05]
    upper = [100.0] * len(archs) + [100.0, 3.0]
    p, _ = curve_fit(model, e, acc, p0=p0, bounds=(lower, upper), maxfev=20000)
    resid = acc - model(e, *p)
    return {"k_points": float(p[-2]), "alpha": float(p[-1]),
            "asymptote_points": dict(zip(archs, map(float, p[:len(archs)]), strict=True)),
            "rmse_points": float(np.sqrt(np.mean(resid ** 2))), "rows": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", default="1,2,4,8,16")
    ap.add_argument("--cells", type=int, default=6, help="The ResNet cell, the table's best, "
                    "then seeded random connected cells.")
    ap.add_argument("--dataset", default="tiny-imagenet-200-64px.zip",
                    help="file under ../shared/datasets (PATH.npz[class_split=NAME] allowed)")
    ap.add_argument("--classes", type=int, default=10, help="seeded classes (0: all)")
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/results/epoch_curve")
    args = ap.parse_args()
    shared = shared_datasets_dir()
    if shared is None:
        raise SystemExit("epoch_curve needs ../shared/datasets")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "epoch_curve.json"
    data = load_dataset(f"{shared}/{args.dataset}", seed=args.seed, progress=True)
    rng = np.random.default_rng(args.seed)
    n_classes = len(data.class_names)
    classes = tuple(range(n_classes)) if args.classes <= 0 else tuple(
        int(c) for c in sorted(rng.choice(n_classes, args.classes, replace=False)))
    task = make_task(data, classes=classes, resolution=args.resolution,
                     max_train_per_class=args.per_class, seed=args.seed)
    cells = [ARCHS["resnet"], ARCHS["table-best"]]
    for arch in NB201Arch.sample_distinct(4 * args.cells, seed=args.seed):
        if len(cells) < args.cells and arch.is_connected:
            cells.append(arch.to_string())
    batch = pick_batch_size(len(task.y_train))
    regime = (args.dataset, list(classes), args.resolution)
    other = [r for r in stored_rows(store) if (r.get("dataset", "tiny-imagenet-200-64px.zip"),
                                               r["classes"], r["resolution"]) != regime]
    if other:  # one curve per regime: rows of another task would be fitted together
        raise SystemExit(f"--out {out}: {store} holds rows of another dataset, classes or "
                         "resolution; give another --out")
    console = Console()
    for epochs in (int(e) for e in args.epochs.split(",")):
        for arch in cells:
            if any(r["arch"] == arch and r["epochs"] == epochs and r["seed"] == args.seed
                   for r in stored_rows(store)):
                continue
            recipe = fit_recipe(8, 1, epochs, batch, augment_for(task.channels, None),
                                warmup=1 if epochs >= 3 else 0)
            t0 = time.perf_counter()
            res = train_architecture(arch, task, recipe, seed=args.seed, progress=True)
            row = {"arch": arch, "epochs": epochs, "seed": args.seed, "test_acc": res.test_acc,
                   "val_acc": res.val_acc, "seconds": time.perf_counter() - t0,
                   "dataset": args.dataset, "classes": list(classes),
                   "train_per_class": len(task.y_train) / len(classes),
                   "resolution": args.resolution, "batch": batch}
            rows = [r for r in stored_rows(store)
                    if (r["arch"], r["epochs"], r["seed"]) != (arch, epochs, args.seed)] + [row]
            write_json(store, {"rows": rows, "fit": fit_curves(rows)}, option="--out")
            console.print(json.dumps(row))
    rows = stored_rows(store)
    fit = fit_curves(rows)
    table = Table(title="test accuracy (%) after e epochs (cosine over e), C=8 N=1, "
                        f"{args.dataset} {len(classes)}-way {args.resolution} px")
    table.add_column("cell")
    eps = sorted({r["epochs"] for r in rows})
    for e in eps:
        table.add_column(f"e={e}")
    table.add_column("fitted asymptote")
    for arch in dict.fromkeys(r["arch"] for r in rows):
        acc = {r["epochs"]: r["test_acc"] for r in rows if r["arch"] == arch}
        table.add_row(arch, *(f"{100 * acc[e]:.1f}" if e in acc else "-" for e in eps),
                      f"{fit.get('asymptote_points', {}).get(arch, float('nan')):.1f}")
    console.print(table)
    if fit:
        console.print(f"acc = a_cell - {fit['k_points']:.2f} * e^-{fit['alpha']:.3f} "
                      f"(rmse {fit['rmse_points']:.2f} points over {fit['rows']} runs)")
    plot(rows, fit, out / "epoch_curve.png")


def plot(rows: list[dict], fit: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    grid = np.geomspace(1, max(r["epochs"] for r in rows), 50)
    for i, arch in enumerate(dict.fromkeys(r["arch"] for r in rows)):
        pts = sorted((r["epochs"], 100 * r["test_acc"]) for r in rows if r["arch"] == arch)
        ax.plot(*zip(*pts, strict=True), "o", color=f"C{i}", label=arch[:34] + "...")
        if fit:
            ax.plot(grid, curve(grid, fit["asymptote_points"][arch], fit["k_points"],
                                fit["alpha"]), "-", color=f"C{i}", alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("epochs (cosine over the run)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=6)
    save_png(fig, path)


if __name__ == "__main__":
    main()
