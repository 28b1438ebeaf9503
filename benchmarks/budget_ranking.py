"""Which cells win a fixed wall budget? Ground truth for ranking cells by the user's budget.

    python benchmarks/budget_ranking.py                          # cifar10, omniglot at 60 s
    python benchmarks/budget_ranking.py --datasets mnist --budget 300 --shortlist 6 --random 3

Every method ranks cells for equal epochs (as the 200-epoch tables do), but ``metanas fit``
trains for equal *seconds*, and a cheap cell then runs more epochs (docs/models.md). This
script measures by how much: per dataset, the value network's shortlist (its own ranking,
before the zero-cost re-rank), the default search's pick, ``--random`` seeded random cells and
NB201's ResNet cell are each trained by ``metanas fit`` within the same budget. A row holds the
fit's test accuracy, the network's score and rank (among all cells), the MACs and params at the C/N
the probe chose, and the epochs it ran. The summary gives, per dataset, Spearman of the fit
accuracy against the network's score, against -MACs and against the epochs run: the data a
budget-aware ranking needs. Rows merge into ``--out``/budget_ranking.json by (dataset, budget,
arch, seed) under a lock, so the run resumes and two runs can share one store.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fit_budget import ARCHS, dataset_spec, locked, merge_row, stored_rows  # sibling script
from rich.console import Console
from rich.table import Table

from metanas import api
from metanas.figures import pyplot, save_png
from metanas.jsonio import write_json


def cell_size(arch: str, C: int, N: int, resolution: int, channels: int, classes: int) -> dict:
    """MACs per image and parameters of ``arch`` at the size the fit trained it."""
    from metanas.spaces.nb201 import NB201Network, count_macs, count_params

    net = NB201Network(arch, C=C, N=N, in_channels=channels, num_classes=classes)
    return {"macs": count_macs(net, resolution, channels), "params": count_params(net)}


def candidates(data, shortlist: int, n_random: int, seed: int) -> list[dict]:
    """The cells to fit, each with where it came from and the network's score and rank among
    all 15,625 cells (functionally distinct, connected: exhaustive mode scores every one)."""
    from metanas.spaces.nb201.genotype import NB201Arch

    everything = api.search(data, top=15_625, seed=seed,
                            options={"rerank": "", "mode": "exhaustive"}).candidates
    rank = {NB201Arch.from_string(c.arch).canonical_form: (i, c.score)
            for i, c in enumerate(everything, 1)}
    shortlist_cells = api.search(data, top=shortlist, seed=seed, options={"rerank": ""})
    pick = api.search(data, top=1, seed=seed).architecture
    origins = {c.arch: f"network #{i}" for i, c in enumerate(shortlist_cells.candidates, 1)}
    origins[pick] = "default pick" + (f" ({origins[pick]})" if pick in origins else "")
    origins.setdefault(ARCHS["resnet"], "resnet")
    for arch in NB201Arch.sample_distinct(n_random, seed=1000 + seed):
        origins.setdefault(arch.to_string(), "random")
    cells = []
    for arch, origin in origins.items():
        r, score = rank.get(NB201Arch.from_string(arch).canonical_form, (None, None))
        cells.append({"arch": arch, "origin": origin, "vn_rank": r, "vn_score": score})
    return cells


def summary(rows: list[dict]) -> list[dict]:
    from scipy.stats import spearmanr

    out = []
    for key in dict.fromkeys((r["dataset"], r["budget"]) for r in rows):
        g = [r for r in rows if (r["dataset"], r["budget"]) == key]
        acc = [r["test_acc"] for r in g]
        scored = [r for r in g if r["vn_score"] is not None]

        def rho(xs, ys):
            return float(spearmanr(xs, ys)[0]) if len(xs) >= 3 else None

        best = max(g, key=lambda r: r["test_acc"])
        out.append({"dataset": key[0], "budget": key[1], "cells": len(g),
                    "spearman_vs_network_score": rho([r["vn_score"] for r in scored],
                                                     [r["test_acc"] for r in scored]),
                    "spearman_vs_minus_macs": rho([-r["macs"] for r in g], acc),
                    "spearman_vs_epochs_run": rho([r["epochs_run"] for r in g], acc),
                    "best": best["origin"], "best_acc": best["test_acc"],
                    "default_pick_acc": next((r["test_acc"] for r in g
                                              if r["origin"].startswith("default")), None)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="cifar10,omniglot")
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--shortlist", type=int, default=8)
    ap.add_argument("--random", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/results/budget_ranking")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "budget_ranking.json"
    for name in args.datasets.split(","):
        spec = dataset_spec(name)
        if spec is None:
            print(f"skipping {name}: no ../shared/datasets")
            continue
        data = api.as_dataset(spec, progress=True)
        for cell in candidates(data, args.shortlist, args.random, args.seed):
            key = (name, args.budget, cell["arch"], args.seed)
            if any((r["dataset"], r["budget"], r["arch"], r["seed"]) == key
                   for r in stored_rows(store)):
                print(f"stored: {cell['origin']} {cell['arch']}")
                continue
            t0 = time.perf_counter()
            res = api.fit(data, cell["arch"], budget=args.budget, seed=args.seed, progress=True)
            r, s = res.recipe, res.summary
            row = {"dataset": name, "budget": args.budget, "seed": args.seed, **cell,
                   "test_acc": res.test_acc, "val_acc": res.val_acc,
                   "wall_seconds": time.perf_counter() - t0, "C": r["C"], "N": r["N"],
                   "epochs_run": s["epochs_run"], "epochs_planned": s["epochs_planned"],
                   "device": res.metrics["device"],
                   **cell_size(cell["arch"], r["C"], r["N"], res.task["resolution"],
                               res.task["channels"], res.task["num_classes"])}
            with locked(store):
                rows = merge_row(stored_rows(store), row, ("dataset", "budget", "arch", "seed"))
                write_json(store, {"rows": rows, "summary": summary(rows)}, option="--out")
            print(json.dumps(row))
    rows = stored_rows(store)
    show(rows, summary(rows))
    plot(rows, out / "budget_ranking.png")


def plot(rows: list[dict], path: Path) -> None:
    """Per dataset and budget: fit accuracy against the epochs run and against the network's
    rank (its equal-epoch ranking), one point per cell, coloured by where the cell came from."""
    groups = sorted({(r["dataset"], r["budget"]) for r in rows})
    if not groups:
        return
    plt = pyplot()
    fig, axes = plt.subplots(len(groups), 2, figsize=(9, 3.2 * len(groups)), squeeze=False)
    colours = {"network": "C0", "default": "C3", "random": "C2", "resnet": "C1"}
    for (name, budget), (ax_e, ax_r) in zip(groups, axes, strict=True):
        part = [r for r in rows if (r["dataset"], r["budget"]) == (name, budget)]
        for r in part:
            c = next((v for k, v in colours.items() if r["origin"].startswith(k)), "grey")
            ax_e.scatter(r["epochs_run"], r["test_acc"], color=c, s=25)
            ax_r.scatter(r["vn_rank"], r["test_acc"], color=c, s=25)
        ax_e.set(xlabel="epochs run within the budget", ylabel="fit test accuracy",
                 title=f"{name}, {budget:g} s")
        ax_r.set(xlabel="value network's rank (1 = its best)", xscale="log",
                 title="network-ranked (blue), default pick (red), random (green), ResNet (orange)")
        ax_r.title.set_fontsize(7)
    fig.tight_layout()
    save_png(fig, path)
    print(f"wrote {path}")


def show(rows: list[dict], summ: list[dict]) -> None:
    table = Table(title="cells fitted within one wall budget")
    for col in ("dataset", "budget s", "origin", "test acc", "epochs", "MMACs", "arch"):
        table.add_column(col)
    for r in sorted(rows, key=lambda r: (r["dataset"], r["budget"], -r["test_acc"])):
        table.add_row(r["dataset"], f"{r['budget']:g}", r["origin"], f"{r['test_acc']:.4f}",
                      str(r["epochs_run"]), f"{r['macs'] / 1e6:.1f}", r["arch"])
    Console(width=220).print(table)
    for s in summ:
        print(json.dumps(s))


if __name__ == "__main__":
    main()
