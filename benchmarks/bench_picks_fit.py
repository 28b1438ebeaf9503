"""Judge a bench's picks by what a user takes home: each pick trained by ``metanas fit``.

    python benchmarks/bench_picks_fit.py [--bench docs/results/bench-v2/results.json]
        [--datasets cifar10-32px,fashion-mnist,mnist] [--seeds 0] [--budget 60]

The bench trains every pick with a 6-epoch proxy recipe on 100 images per class, a judge that
ranks cells at Spearman 0.05-0.3 against 200-epoch training (docs/proxy_fidelity.md). This
script re-trains the same picks (read from the bench's results.json) with a budgeted final
training on every labelled image of the dataset (the probe sizes the network, a timed warm-up
epoch the epochs), next to NB201's ResNet cell and the best cell of the ImageNet16-120 table
at the same budget. Rows are merged into ``--out``/bench_picks_fit.json by (dataset, cell,
seed), so an interrupted run resumes; prints a table and draws a PNG.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from metanas import api
from metanas.bench.plots import plot_bars
from metanas.jsonio import write_json

REFERENCE = {
    "resnet (NB201)": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|"
                      "skip_connect~2|",
    "table-best (ImageNet16-120)": "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|"
                                   "skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="docs/results/bench-v2/results.json")
    ap.add_argument("--datasets", default="cifar10-32px,fashion-mnist,mnist",
                    help="dataset names as the bench reports them, comma-separated")
    ap.add_argument("--seeds", default="0", help="bench seeds whose picks are fitted")
    ap.add_argument("--budget", type=float, default=60.0, help="fit seconds per cell")
    ap.add_argument("--search", action="append", default=[], metavar="METHOD[:KEY=VALUE,...]",
                    help="also fit the pick of a fresh search with these options, per seed "
                         "(e.g. value-net:train_budget=60); repeatable")
    ap.add_argument("--out", default="docs/results/bench_picks_fit")
    args = ap.parse_args()
    bench = json.loads(Path(args.bench).read_text())
    wanted = args.datasets.split(",")
    seeds = {int(s) for s in args.seeds.split(",")}
    out = Path(args.out)
    store = out / "bench_picks_fit.json"
    rows = json.loads(store.read_text())["rows"] if store.exists() else []
    done = {(r["dataset"], r["label"], r["seed"], r["budget"]) for r in rows}
    for name in wanted:
        picks = [r for r in bench["rows"] if r["dataset"] == name and r["seed"] in seeds]
        if not picks:
            print(f"skipping {name}: no picks in {args.bench}")
            continue
        data = api.as_dataset(picks[0]["dataset_spec"], progress=True)
        cells = [(f"{r['method']} (seed {r['seed']})", r["pick"], r["seed"], r["test_acc"],
                  r.get("search_seconds")) for r in picks]
        cells += [(label, arch, seed, None, None) for label, arch in REFERENCE.items()
                  for seed in sorted(seeds)]
        for spec in args.search:
            method, options = parse_search(spec)
            for seed in sorted(seeds):
                label = f"{spec} (seed {seed})"
                if (name, label, seed, args.budget) not in done:
                    found = api.search(data, method=method, seed=seed, top=1, options=options)
                    cells.append((label, found.architecture, seed, None,
                                  found.search_seconds))
        for label, arch, seed, proxy_acc, search_s in cells:
            if (name, label, seed, args.budget) in done:
                continue
            res = api.fit(data, arch, budget=args.budget, seed=seed, progress=True)
            rows.append({"dataset": name, "label": label, "arch": arch, "seed": seed,
                         "budget": args.budget, "fit_test_acc": res.test_acc,
                         "bench_proxy_test_acc": proxy_acc, "search_seconds": search_s,
                         "C": res.recipe["C"],
                         "N": res.recipe["N"], "epochs": res.summary["epochs_run"],
                         "wall_seconds": res.seconds, "device": res.metrics["device"]})
            write_json(store, {"bench": args.bench, "rows": rows}, option="--out")
            print(json.dumps(rows[-1]), flush=True)
    show(rows)
    plot_bars([{"dataset": r["dataset"], "method": r["label"], "test_acc_mean": r["fit_test_acc"],
                "test_acc_std": 0.0} for r in rows], out / "bench_picks_fit.png")
    print(f"wrote {store} and {out / 'bench_picks_fit.png'}")


def parse_search(spec: str) -> tuple[str, dict]:
    """``METHOD[:KEY=VALUE,...]`` as a method name and its options (integers, floats, else
    strings)."""
    method, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        for kind in (int, float, str):
            try:
                options[key] = kind(value)
                break
            except ValueError:
                continue
    return method, options


def show(rows: list[dict]) -> None:
    table = Table(title="bench picks judged by a budgeted fit (all labelled images)")
    for col in ("dataset", "cell", "budget s", "fit test acc", "bench proxy acc", "C, N",
                "epochs", "device"):
        table.add_column(col)
    for r in sorted(rows, key=lambda r: (r["dataset"], -r["fit_test_acc"])):
        proxy = "-" if r["bench_proxy_test_acc"] is None else f"{r['bench_proxy_test_acc']:.3f}"
        table.add_row(r["dataset"], r["label"], f"{r['budget']:g}", f"{r['fit_test_acc']:.3f}",
                      proxy, f"{r['C']}, {r['N']}", str(r["epochs"]), r["device"])
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
