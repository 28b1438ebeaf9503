"""What ``metanas fit`` delivers in a wall-clock budget: test accuracy, chosen recipe, seconds.

    python benchmarks/fit_budget.py                                  # default datasets, 300 + 1200 s
    python benchmarks/fit_budget.py --datasets digits --budgets 60
    python benchmarks/fit_budget.py --datasets cifar10 --budgets 120 --arch resnet

Datasets: ``digits`` plus, when ``../shared/datasets`` exists, mnist, fashion-mnist, cifar10
and omniglot (names or paths). ``--arch``: ``pick`` (value-net's top pick on the dataset, the
default method), ``resnet`` (NB201's hand-designed residual cell), ``table-best`` (the best cell of
the ImageNet16-120 table) or NATS-Bench strings,
comma-separated. The dataset is loaded (and its pick searched) before the clock starts, so the
wall seconds are the fit's own. Rows are merged into ``--out``/fit_budget.json by (dataset,
budget, arch, seed), so runs on different machines or days add up; the table and the PNG show
every stored row. A row already stored is skipped (``--redo`` trains it again), and rows are
merged under a lock, so interrupted runs resume and concurrent runs may share one ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from metanas import api
from metanas.bench.plots import plot_bars
from metanas.jsonio import write_json
from metanas.paths import shared_datasets_dir

SHARED = {"mnist": "mnist.npz", "fashion-mnist": "fashion-mnist.npz",
          "cifar10": "cifar10-32px.zip", "omniglot": "omniglot-28px.npz"}
ARCHS = {"resnet": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|"
                   "skip_connect~2|",
         # the best of the 15,625 cells in NATS-Bench's 200-epoch ImageNet16-120 table (47.31)
         "table-best": "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|"
                       "nor_conv_3x3~1|nor_conv_3x3~2|"}


def dataset_spec(name: str) -> str | None:
    if name in SHARED:
        shared = shared_datasets_dir()
        return None if shared is None else str(shared / SHARED[name])
    return name


def merge_row(rows: list[dict], row: dict, key: tuple[str, ...]) -> list[dict]:
    """``rows`` with ``row`` replacing any row that agrees with it on ``key``."""
    return [r for r in rows if any(r[k] != row[k] for k in key)] + [row]


def requested(row: dict) -> str:
    """The ``--arch`` token a stored row answered (rows before this field: a named cell or pick)."""
    return row.get("requested") or next((k for k, v in ARCHS.items() if v == row["arch"]), "pick")


@contextlib.contextmanager
def locked(store: Path):
    """Hold an exclusive lock beside ``store`` so concurrent runs merge, not overwrite."""
    with open(store.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def stored_rows(store: Path) -> list[dict]:
    return json.loads(store.read_text())["rows"] if store.exists() else []


def run_one(data, label: str, arch: str, budget: float, seed: int) -> dict:
    token = arch
    if arch == "pick":
        arch = api.search(data, top=1, seed=seed).architecture
    arch = ARCHS.get(arch, arch)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    res = api.fit(data, arch, budget=budget, seed=seed, progress=True)
    wall = time.perf_counter() - t0
    r, s = res.recipe, res.summary
    return {"dataset": label, "budget": budget, "seed": seed, "requested": token,
            "arch_kind": label_arch(arch),
            "arch": arch, "test_acc": res.test_acc, "val_acc": res.val_acc,
            "wall_seconds": wall, "wall_over_budget": wall / budget, "C": r["C"], "N": r["N"],
            "epochs_planned": s["epochs_planned"], "epochs_run": s["epochs_run"],
            "batch_size": r["batch_size"], "augment": r["augment"],
            "best_epoch": s["best_epoch"], "probe_seconds": res.plan["probe_seconds"],
            "n_train": res.task["n_train"], "n_test": res.task["n_test"], "device": res.metrics["device"],
            "moves": len((res.plan or {}).get("moves") or []),
            "load_avg_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def label_arch(arch: str) -> str:
    return next((k for k, v in ARCHS.items() if v == arch), arch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="digits,mnist,fashion-mnist,cifar10,omniglot")
    ap.add_argument("--budgets", default="300,1200", help="Seconds, comma-separated.")
    ap.add_argument("--arch", default="pick")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", default="docs/results/fit")
    ap.add_argument("--redo", action="store_true", help="Train rows already stored again.")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "fit_budget.json"
    key = ("dataset", "budget", "requested", "seed")
    for name in args.datasets.split(","):
        spec = dataset_spec(name)
        if spec is None:
            print(f"skipping {name}: no ../shared/datasets")
            continue
        data = None
        for budget in (float(b) for b in args.budgets.split(",")):
            for arch in args.arch.split(","):
                for seed in range(args.seeds):
                    want = (name, budget, arch, seed)
                    if not args.redo and any((r["dataset"], r["budget"], requested(r), r["seed"])
                                             == want for r in stored_rows(store)):
                        print(f"stored: {want}")
                        continue
                    if data is None:
                        data = api.as_dataset(spec, progress=True)
                    row = run_one(data, name, arch, budget, seed)
                    with locked(store):
                        rows = [dict(r, requested=requested(r)) for r in stored_rows(store)]
                        write_json(store, {"rows": merge_row(rows, row, key)}, option="--out")
                    print(json.dumps(row))
    rows = stored_rows(store)
    show(rows)
    plot_bars([{"dataset": r["dataset"], "method": f"{r['arch_kind'][:12]} {r['budget']:g} s",
                "test_acc_mean": r["test_acc"], "test_acc_std": 0.0} for r in rows],
              out / "fit_budget.png")
    print(f"wrote {store} and {out / 'fit_budget.png'}")


def show(rows: list[dict]) -> None:
    table = Table(title="metanas fit: delivered model per budget")
    for col in ("dataset", "budget s", "arch", "seed", "test acc", "wall s", "wall/budget",
                "C", "N", "epochs run/planned", "batch", "augment", "device"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["dataset"], f"{r['budget']:g}", r["arch_kind"][:24], str(r["seed"]),
                      f"{r['test_acc']:.4f}", f"{r['wall_seconds']:.1f}",
                      f"{r['wall_over_budget']:.3f}", str(r["C"]), str(r["N"]),
                      f"{r['epochs_run']}/{r['epochs_planned']}", str(r["batch_size"]),
                      r["augment"], r["device"])
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
