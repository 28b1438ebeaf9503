"""Zero-cost proxies against NASLib's published scores (NAS-Bench-Suite-Zero, ImageNet16-120).

    OMP_NUM_THREADS=1 nohup python benchmarks/zero_cost_reference.py > zc.log 2>&1 &
    python benchmarks/zero_cost_reference.py --report-only      # tables/plot from the cache

NASLib's file (../shared/datasets/knowledge/naslib-zc-imagenet16-120.csv) has, for 724 NB201
cells, their proxy scores on ImageNet16-120 and the cell's NB201 validation accuracy. Their images
are not here, so the stand-in is Tiny-ImageNet at 16 px: a task of 120 seeded classes of its 200
(metanas.tasks.make_task; 100 train images per class for the normalisation statistics), one
seeded batch of 64 of its training images for every cell (metanas.features.zero_cost).

Sizes: ``16x5`` (NB201's C=16, N=5, what NASLib used) and a small proxy network ``8x1``. Cells are
processed in a seeded random order of the 724; ``--cells`` / ``--small-cells`` cap how many per
size (the first K of that order, so a capped run is a random subset). Every cell's scores are
appended to docs/results/zero_cost_reference_cells.jsonl as it is done; a rerun skips cells
already there (resumable), and scores a cached cell only for proxies added since. Writes docs/results/zero_cost_reference.json and .png.

Per proxy and size: Spearman of our score against NASLib's score, our Spearman against
``val_acc`` next to NASLib's own Spearman against ``val_acc`` on the same cells, seconds per cell;
between the sizes: Spearman of the small network's score against the NB201-size score.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from metanas.features.zero_cost import PROXIES, ZeroCostConfig, proxy_batch, score_cell
from metanas.paths import shared_datasets_dir
from metanas.spaces.nb201 import parse

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
CACHE = RESULTS / "zero_cost_reference_cells.jsonl"
SIZES = {"16x5": (16, 5), "8x1": (8, 1)}


def load_reference(datasets: Path) -> list[dict]:
    path = datasets / "knowledge" / "naslib-zc-imagenet16-120.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in list(r):
            if k != "arch":
                r[k] = float(r[k])
    return rows


def make_standin(datasets: Path, classes: int, seed: int):
    from metanas.data import load_dataset
    from metanas.tasks import make_task

    ds = load_dataset(datasets / "tiny-imagenet-200-64px.zip", progress=False)
    rng = np.random.default_rng(seed)
    chosen = tuple(sorted(int(c) for c in rng.choice(ds.num_classes, classes, replace=False)))
    return make_task(ds, classes=chosen, resolution=16, max_train_per_class=100,
                     max_test_per_class=1, seed=seed)


def load_cache() -> dict[tuple[str, str], dict]:
    done: dict[tuple[str, str], dict] = {}
    if CACHE.exists():
        for line in CACHE.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted run: that cell is scored again
            done[(rec["size"], rec["arch"])] = rec
    return done


def compute(rows, jobs, task, batch_size, seed, done) -> None:
    """``jobs``: (label, C, N, seed, cap); cells in one seeded order (``seed``) for every job."""
    order = np.random.default_rng(seed).permutation(len(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    for size, C, N, job_seed, cap in jobs:
        x, y = proxy_batch(task, batch_size, job_seed)
        config = ZeroCostConfig(C=C, N=N, batch_size=batch_size, seed=job_seed)
        todo = [rows[i]["arch"] for i in order[:cap]]
        # a cached cell scored before a proxy was added gets just the missing ones
        todo = [a for a in todo if set(PROXIES) - set(done.get((size, a), {}).get("scores", {}))]
        total, t0, last = len(todo), time.time(), 0.0
        print(f"[{size}] {cap - total} cells cached, {total} to score", flush=True)
        for i, arch in enumerate(todo, 1):
            old = done.get((size, arch), {"scores": {}, "seconds": {}, "seconds_total": 0.0,
                                          "nonfinite": []})
            missing = [p for p in PROXIES if p not in old["scores"]]
            r = score_cell(parse(arch), x, y, num_classes=task.num_classes, proxies=missing,
                           config=config, checked=i > 1)
            rec = {"size": size, "arch": arch, "seed": job_seed,
                   "scores": {**old["scores"], **r["scores"]},
                   "seconds": {**old["seconds"], **r["seconds"]},
                   "seconds_total": old["seconds_total"] + r["seconds_total"],
                   "nonfinite": old["nonfinite"] + r["nonfinite"]}
            with open(CACHE, "a") as f:
                f.write(json.dumps(rec) + "\n")
            done[(size, arch)] = rec
            now = time.time()
            if now - last > 10 or i == total:
                last = now
                rate = (now - t0) / i
                print(f"[{size}] {i}/{total} ({100 * i / total:.0f}%) {now - t0:.0f} s elapsed, "
                      f"{rate:.2f} s/cell, ETA {rate * (total - i) / 60:.1f} min", flush=True)


def nominal_macs(arch: str, C: int, N: int, resolution: int = 16, classes: int = 120) -> int:
    """MACs with every conv edge counted, also those whose input node is unreachable (a ``none``
    chain): the network skips those edges (count_macs does not see them); NASLib's counter,
    which runs them on zeros, does."""
    from metanas.spaces.nb201 import NB201Network, count_macs

    skip = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    total = count_macs(NB201Network(skip, C=C, N=N, num_classes=classes), resolution)
    ops = parse(arch).ops
    per_cell = 9 * ops.count("nor_conv_3x3") + ops.count("nor_conv_1x1")
    for stage in range(3):
        c, side = C * 2**stage, resolution // 2**stage
        total += N * per_cell * c * c * side * side
    return total


def _rho(a, b) -> float | None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    rho = float(spearmanr(a, b)[0])
    return rho if math.isfinite(rho) else None


def report(rows, done, sizes, noise: str | None = None) -> dict:
    by_arch = {r["arch"]: r for r in rows}
    # records cached before a proxy was added and not re-scored (beyond this run's caps)
    done = {k: v for k, v in done.items() if set(PROXIES) <= set(v["scores"])}
    out: dict = {"sizes": {}, "between_sizes": {}}
    for size in sizes:
        recs = [rec for (s, _), rec in done.items() if s == size]
        if not recs:
            continue
        acc = [by_arch[r["arch"]]["val_acc"] for r in recs]
        per = {}
        for p in PROXIES:
            ours = [r["scores"][p] for r in recs]
            ref = [by_arch[r["arch"]][p] for r in recs] if p in rows[0] else None
            secs = [r["seconds"][p] for r in recs]
            per[p] = {
                "rho_vs_naslib": _rho(ours, ref) if ref else None,
                "rho_vs_acc": _rho(ours, acc),
                "naslib_rho_vs_acc": _rho(ref, acc) if ref else None,
                "nonfinite_cells": sum(p in r["nonfinite"] for r in recs),
                "seconds_mean": float(np.mean(secs)),
                "seconds_median": float(np.median(secs)),
                "naslib_seconds_median": float(np.median(
                    [by_arch[r["arch"]][p + "_seconds"] for r in recs])) if ref else None,
            }
        C, N = SIZES[size]
        nominal = [nominal_macs(r["arch"], C, N) for r in recs]
        per["flops_nominal"] = {
            "rho_vs_naslib": _rho(nominal, [by_arch[r["arch"]]["flops"] for r in recs]),
            "rho_vs_acc": _rho(nominal, acc),
            "naslib_rho_vs_acc": per["flops"]["naslib_rho_vs_acc"],
            "nonfinite_cells": 0, "seconds_mean": 0.0, "seconds_median": 0.0,
            "naslib_seconds_median": None,
            "note": "diagnostic, not a proxy: MACs with unreached conv edges counted"}
        tot = [r["seconds_total"] for r in recs]
        out["sizes"][size] = {"cells": len(recs), "C": SIZES[size][0], "N": SIZES[size][1],
                              "seconds_per_cell_mean": float(np.mean(tot)),
                              "seconds_per_cell_median": float(np.median(tot)),
                              "proxies": per}
    if len(out["sizes"]) == 2:
        a, b = sizes
        common = [arch for (s, arch) in done if s == a and (b, arch) in done]
        acc = [by_arch[c]["val_acc"] for c in common]
        out["between_sizes"] = {"cells": len(common), "sizes": [a, b], "proxies": {}}
        for p in PROXIES:
            sa = [done[(a, c)]["scores"][p] for c in common]
            sb = [done[(b, c)]["scores"][p] for c in common]
            top_a = set(np.argsort(sa)[::-1][: max(1, len(common) // 10)])
            top_b = set(np.argsort(sb)[::-1][: max(1, len(common) // 10)])
            out["between_sizes"]["proxies"][p] = {
                "rho_small_vs_full": _rho(sa, sb),
                "top10pct_overlap": len(top_a & top_b) / max(1, len(top_a)),
                f"rho_vs_acc_{a}": _rho(sa, acc), f"rho_vs_acc_{b}": _rho(sb, acc)}
    if noise:
        common = [arch for (s, arch) in done if s == noise and (sizes[0], arch) in done]
        if len(common) >= 3:
            by = {}
            for p in PROXIES:
                a = [done[(sizes[0], c)]["scores"][p] for c in common]
                b = [done[(noise, c)]["scores"][p] for c in common]
                ref = [by_arch[c][p] for c in common] if p in rows[0] else None
                by[p] = {"rho_seed_vs_seed": _rho(a, b),
                         "rho_vs_naslib_seed0": _rho(a, ref) if ref else None,
                         "rho_vs_naslib_seed1": _rho(b, ref) if ref else None}
            out["seed_to_seed"] = {"cells": len(common), "size": sizes[0], "other": noise,
                                   "proxies": by}
    return out


def _fmt(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_tables(res: dict) -> None:
    for size, r in res["sizes"].items():
        print(f"\nsize {size} (C={r['C']}, N={r['N']}), {r['cells']} cells, "
              f"{r['seconds_per_cell_mean']:.2f} s/cell (all proxies, mean)")
        print(f"{'proxy':13} {'rho(ours,NASLib)':>16} {'rho(ours,acc)':>13} "
              f"{'rho(NASLib,acc)':>15} {'-inf':>5} {'s/cell':>7} {'NASLib s':>8}")
        for p, v in r["proxies"].items():
            print(f"{p:13} {_fmt(v['rho_vs_naslib']):>16} {_fmt(v['rho_vs_acc']):>13} "
                  f"{_fmt(v['naslib_rho_vs_acc']):>15} {v['nonfinite_cells']:>5} "
                  f"{v['seconds_median']:>7.3f} {_fmt(v['naslib_seconds_median'], 2):>8}")
    b = res.get("between_sizes")
    if b:
        a, s = b["sizes"]
        print(f"\nranking {s} vs {a} on {b['cells']} common cells")
        print(f"{'proxy':10} {'rho':>6} {'top10% overlap':>14} {'rho(acc) ' + a:>14} "
              f"{'rho(acc) ' + s:>14}")
        for p, v in b["proxies"].items():
            print(f"{p:10} {_fmt(v['rho_small_vs_full']):>6} {v['top10pct_overlap']:>14.2f} "
                  f"{_fmt(v[f'rho_vs_acc_{a}']):>14} {_fmt(v[f'rho_vs_acc_{s}']):>14}")


def print_noise(res: dict) -> None:
    n = res.get("seed_to_seed")
    if not n:
        return
    print(f"\nseed 0 vs seed 1 (another batch and init) at {n['size']}, {n['cells']} cells")
    print(f"{'proxy':10} {'rho(s0,s1)':>10} {'rho(s0,NASLib)':>14} {'rho(s1,NASLib)':>14}")
    for p, v in n["proxies"].items():
        print(f"{p:10} {_fmt(v['rho_seed_vs_seed']):>10} {_fmt(v['rho_vs_naslib_seed0']):>14} "
              f"{_fmt(v['rho_vs_naslib_seed1']):>14}")


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    xs = np.arange(len(PROXIES))
    series = []
    full = res["sizes"].get("16x5")
    small = res["sizes"].get("8x1")
    if full:
        series.append(("ours vs NASLib score (16x5)",
                       [full["proxies"][p]["rho_vs_naslib"] for p in PROXIES]))
        series.append(("ours vs val_acc (16x5)", [full["proxies"][p]["rho_vs_acc"] for p in PROXIES]))
    if small:
        series.append(("ours vs val_acc (8x1)", [small["proxies"][p]["rho_vs_acc"] for p in PROXIES]))
    ref = full or small
    series.append(("NASLib vs val_acc", [ref["proxies"][p]["naslib_rho_vs_acc"] for p in PROXIES]))
    w = 0.8 / len(series)
    for i, (label, vals) in enumerate(series):
        ax1.bar(xs + i * w, [np.nan if v is None else v for v in vals], w, label=label)
    ax1.set_xticks(xs + 0.4 - w / 2, PROXIES, rotation=45)
    ax1.set_ylabel("Spearman")
    ax1.axhline(0, color="k", lw=0.5)
    ax1.legend(fontsize=7, loc="lower left")
    ax1.set_title("Zero-cost proxies, NB201 on ImageNet16-120 (stand-in: Tiny-ImageNet 16 px)",
                  fontsize=9)
    for size, r in res["sizes"].items():
        ax2.bar(xs + (0 if size == "16x5" else 0.4), [r["proxies"][p]["seconds_median"]
                                                       for p in PROXIES], 0.4, label=size)
    ax2.set_yscale("log")
    ax2.set_xticks(xs + 0.2, PROXIES, rotation=45)
    ax2.set_ylabel("seconds per cell (median; shared passes counted per proxy)")
    ax2.legend()
    ax2.set_title(f"cost on this CPU ({platform.processor() or platform.machine()}, 1 thread)",
                  fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=724, help="cells at NB201 size (16x5)")
    ap.add_argument("--small-cells", type=int, default=724, help="cells at the small size (8x1)")
    ap.add_argument("--classes", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-cells", type=int, default=0,
                    help="also score this many cells at 16x5 with seed+1 (another batch and "
                    "init): the seed-to-seed agreement, a ceiling for agreement with NASLib")
    ap.add_argument("--report-only", action="store_true", help="no scoring; report the cache")
    args = ap.parse_args(argv)
    datasets = shared_datasets_dir()
    if datasets is None:
        sys.exit("no ../shared/datasets here")
    rows = load_reference(datasets)
    done = load_cache()
    sizes = ["16x5", "8x1"]
    noise = f"16x5-seed{args.seed + 1}"
    if not args.report_only:
        torch.set_num_threads(1)
        t0 = time.time()
        task = make_standin(datasets, args.classes, args.seed)
        print(f"stand-in task {task!r} built in {time.time() - t0:.0f} s", flush=True)
        # small first: it is quick and gives the size comparison early
        jobs = [("8x1", 8, 1, args.seed, args.small_cells), ("16x5", 16, 5, args.seed, args.cells)]
        if args.noise_cells:
            jobs.append((noise, 16, 5, args.seed + 1, args.noise_cells))
        compute(rows, jobs, task, args.batch_size, args.seed, done)
    res = report(rows, done, sizes, noise)
    res["setup"] = {
        "reference": "NAS-Bench-Suite-Zero zc_nasbench201.json (NASLib), ImageNet16-120, 724 cells",
        "standin": f"Tiny-ImageNet 200 at 16 px, {args.classes} seeded classes (seed {args.seed}), "
                   f"100 train images per class",
        "batch_size": args.batch_size, "seed": args.seed, "init": "PyTorch default, "
        "torch.manual_seed(seed) per cell", "cpu": platform.processor() or platform.machine(),
        "threads": 1, "proxies": list(PROXIES),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "zero_cost_reference.json").write_text(json.dumps(res, indent=1, default=_json))
    print_tables(res)
    print_noise(res)
    if res["sizes"]:
        plot(res, RESULTS / "zero_cost_reference.png")


def _json(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    raise TypeError(type(v))


if __name__ == "__main__":
    main()
