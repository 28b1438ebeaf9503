"""BASE ``--set inherit=true`` against training from scratch at the same wall-clock budget.

    python benchmarks/base_inherit.py                         # digits (+ cifar10), 60 s, 2 seeds
    python benchmarks/base_inherit.py --datasets digits --budget 30 --seeds 1

For each dataset and seed the shipped BASE meta-supernet is adapted once (default options,
``inherit=true``; the adaptation is outside the budget, the same for every arm) and its pick is
trained by ``metanas.fit`` within ``--budget`` seconds three ways:

* ``scratch``: random init, the throughput probe picks C, N, epochs and batch (what
  ``search --train --train-budget`` does without inherit);
* ``scratch-CN``: random init at the supernet's C and N (NB201's stem), so the size is not
  what differs;
* ``scratch-stem``: random init of exactly the inherited network's structure (its C, N and
  the head's stride-2 blocks in the stem: at 32 px the cells then run on 16x16 maps), so
  only the initial weights differ from ``inherit``;
* ``inherit``: the network cut out of the adapted supernet (its C and N, its input head as the
  stem, its classifier); the probe plans batch and epochs only;
* ``scratch-stem-replay``: as ``scratch-stem`` but with ``inherit``'s planned recipe replayed
  (same epochs and batch: the probe's timings on a shared machine vary by tens of percent), so
  the two differ in nothing but the initial weights.

Datasets: ``digits`` and, when ``../shared/datasets`` exists, ``cifar10`` (the shared zip, all
10,000 labelled images). Rows are merged into ``--out``/base_inherit.json by (dataset, budget,
seed, arm), so an interrupted run resumes; the table and the PNG show every stored row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from fit_budget import dataset_spec, merge_row  # a sibling script in benchmarks/
from rich.console import Console
from rich.table import Table

from metanas import api
from metanas.bench.plots import plot_bars
from metanas.jsonio import write_json
from metanas.training.budget import fit_recipe
from metanas.training.fit import augment_for

ARMS = ("scratch", "scratch-CN", "scratch-stem", "inherit", "scratch-stem-replay")
KEY = ("dataset", "budget", "seed", "arm")


def run_seed(data, label: str, budget: float, seed: int, done: set,
             stored: list[dict]) -> list[dict]:
    t0 = time.perf_counter()
    result = api.search(data, method="base", top=1, seed=seed, options={"inherit": True})
    search_s = time.perf_counter() - t0
    inherited, info = result.inherited, result.details["inherit"]
    C, N = info["C"], info["N"]
    rows = []
    for arm in ARMS:
        if (label, budget, seed, arm) in done:
            continue
        kwargs: dict = {}
        if arm == "inherit":
            kwargs = {"init_model": inherited}
        elif arm == "scratch-stem":
            kwargs = {"init_model": random_like(inherited, seed)}
        elif arm == "scratch-CN":
            kwargs = {"sizes": ((C, N),)}
        elif arm == "scratch-stem-replay":
            ref = next(r for r in [*stored, *rows] if (r["dataset"], r["budget"], r["seed"],
                                                       r["arm"]) == (label, budget, seed,
                                                                     "inherit"))
            kwargs = {"init_model": random_like(inherited, seed),
                      "recipe": fit_recipe(ref["C"], ref["N"], ref["epochs_planned"],
                                           ref["batch_size"],
                                           augment_for(inherited.config["in_channels"], None))}
        t1 = time.perf_counter()
        res = api.fit(data, result.architecture, budget=budget, seed=seed, progress=True,
                      **kwargs)
        wall = time.perf_counter() - t1
        r, s = res.recipe, res.summary
        rows.append({
            "dataset": label, "budget": budget, "seed": seed, "arm": arm,
            "arch": result.architecture, "search_seconds": search_s,
            "supernet_val_acc": result.details["adaptation"][0]["supernet_val_acc"],
            "init_val_acc": res.metrics.get("init_val_acc") if arm == "inherit" else None,
            "val_acc": res.val_acc,
            "test_acc": res.test_acc, "wall_seconds": wall, "C": r["C"], "N": r["N"],
            "stem_strides": 0 if arm in ("scratch", "scratch-CN") else info["stem_strides"],
            "resolution": res.task["resolution"], "batch_size": r["batch_size"],
            "epochs_planned": s["epochs_planned"], "epochs_run": s["epochs_run"],
            "best_epoch": s["best_epoch"], "n_train": res.task["n_train"],
            "n_test": res.task["n_test"], "device": res.metrics["device"]})
        print(json.dumps(rows[-1]))
    return rows


def random_like(net, seed: int):
    """A seeded random init of ``net``'s structure (stem strides included)."""
    import torch

    from metanas.spaces.nb201 import NB201Network

    torch.manual_seed(seed)
    cfg = dict(net.config)
    resolution = cfg.pop("resolution")
    fresh = NB201Network(net.arch, **cfg)
    fresh.config["resolution"] = resolution
    return fresh


def summarise(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["budget"], r["arm"]), []).append(r)
    out = []
    for (dataset, budget, arm), rs in groups.items():
        accs = [r["test_acc"] for r in rs]
        inits = [r["init_val_acc"] for r in rs if r["init_val_acc"] is not None]
        out.append({"dataset": dataset, "budget": budget, "arm": arm, "seeds": len(rs),
                    "test_acc_mean": statistics.fmean(accs),
                    "test_acc_std": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
                    "test_accs": accs,
                    "init_val_acc_mean": statistics.fmean(inits) if inits else None,
                    "C_N": sorted({f"C={r['C']} N={r['N']}" for r in rs}),
                    "epochs_run": [r["epochs_run"] for r in rs],
                    "wall_seconds_max": max(r["wall_seconds"] for r in rs)})
    order = {a: i for i, a in enumerate(ARMS)}
    return sorted(out, key=lambda s: (s["dataset"], s["budget"], order[s["arm"]]))


def show(summary: list[dict]) -> None:
    table = Table(title="BASE pick trained within a budget: inherited weights vs scratch")
    for col in ("dataset", "budget s", "arm", "seeds", "test acc (mean ± std)", "per seed",
                "val acc at step 0", "size", "epochs run", "max wall s"):
        table.add_column(col)
    for s in summary:
        init = "" if s["init_val_acc_mean"] is None else f"{s['init_val_acc_mean']:.3f}"
        table.add_row(s["dataset"], f"{s['budget']:g}", s["arm"], str(s["seeds"]),
                      f"{s['test_acc_mean']:.4f} ± {s['test_acc_std']:.4f}",
                      " ".join(f"{a:.4f}" for a in s["test_accs"]), init,
                      ", ".join(s["C_N"]), " ".join(map(str, s["epochs_run"])),
                      f"{s['wall_seconds_max']:.1f}")
    Console(width=200).print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="digits,cifar10")
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default="docs/results/base_inherit")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "base_inherit.json"
    rows = json.loads(store.read_text())["rows"] if store.exists() else []
    for name in args.datasets.split(","):
        spec = dataset_spec(name)
        if spec is None:
            print(f"skipping {name}: no ../shared/datasets")
            continue
        data = api.as_dataset(spec, progress=True)
        for seed in range(args.seeds):
            done = {tuple(r[k] for k in KEY) for r in rows}
            if all((name, args.budget, seed, arm) in done for arm in ARMS):
                continue
            for row in run_seed(data, name, args.budget, seed, done, rows):
                rows = merge_row(rows, row, KEY)
                write_json(store, {"rows": rows, "summary": summarise(rows)}, option="--out")
    summary = summarise(rows)
    show(summary)
    plot_bars([{"dataset": f"{s['dataset']} {s['budget']:g} s", "method": s["arm"],
                "test_acc_mean": s["test_acc_mean"], "test_acc_std": s["test_acc_std"]}
               for s in summary], out / "base_inherit.png")
    print(f"wrote {store} and {out / 'base_inherit.png'}")


if __name__ == "__main__":
    main()
