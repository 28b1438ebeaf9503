"""Leave one source out, judged on real ground truth: the development protocol of issue 12.

Meta-train every variant on a knowledge base *without* the held-out published source (default:
the NB201 ImageNet16-120 table), search that source's stand-in dataset (Tiny-ImageNet at 16 px),
and look the picks up in the held-out table (200-epoch test accuracy): top-1 and best of the
top 5, next to random search's best-of-N (exact expectation over the table) and the oracle.

    python benchmarks/leave_source_out.py --kb kb/staging/tinyimagenet-v2.db --seeds 0,1

Prints a table; writes JSON and a PNG (``--out``, default docs/results/leave_in16_out).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from dataclasses import replace
from math import comb
from pathlib import Path

import numpy as np

from metanas.api import load_method
from metanas.data import load_dataset
from metanas.kb import KnowledgeBase
from metanas.kb.views import accuracy_table, top_architectures
from metanas.methods.transfer import GlobalPrior
from metanas.methods.value_net import ValueNetMethod
from metanas.methods.value_net.model import as_value_net
from metanas.paths import shared_datasets_dir
from metanas.version import __version__

PUBLISHED = ("nb201-imagenet16-120", "metad2a-imagenet32")


def expected_best_of(values: np.ndarray, n: int) -> float:
    """E[max of n cells drawn without replacement] over the table (exact order statistics)."""
    v = np.sort(values)
    m = len(v)
    # P(max = v[i]) = C(i, n-1) / C(m, n) for the i-th smallest (0-based)
    weights = np.array([comb(i, n - 1) for i in range(m)], dtype=float) / comb(m, n)
    return float((weights * v).sum())


def read_table(path: Path) -> dict[str, float]:
    with path.open(newline="") as fh:
        return {r["arch"]: float(r["test_acc"]) for r in csv.DictReader(fh)}


def variants(heldout: str) -> dict[str, tuple[dict, dict]]:
    """name -> (meta-training options, search options); ``heldout`` is always left out."""
    others = [s for s in PUBLISHED if s != heldout]
    v1_only = {"exclude_sources": ",".join([heldout, *others])}
    every = {"exclude_sources": heldout}
    no_fid = {**every, "fidelity_features": False}
    return {
        "value-net, KB v1 only": (v1_only, {"prior_pool": False}),
        "value-net, published only": (
            {"exclude_sources": ",".join([heldout, "tiny-imagenet-200-64px"])}, {}),
        "value-net, all sources, no fidelity input, gradient pool": (
            no_fid, {"prior_pool": False}),
        "value-net, all sources, no fidelity input, + prior cells": (no_fid, {}),
        "value-net, all sources, fidelity-aware (full), + prior cells": (
            every, {"fidelity": "full"}),
        "value-net, all sources, fidelity-aware (proxy), + prior cells": (
            every, {"fidelity": "proxy"}),
        "value-net, all sources, fidelity-aware (mix), + prior cells": (
            every, {"fidelity": "mix"}),
        "value-net, KB v1 only, re-ranked by nwot+zico": (
            v1_only, {"prior_pool": False, "rerank": "nwot,zico"}),
        "value-net, all sources, no fidelity input, re-ranked by nwot+zico": (
            no_fid, {"rerank": "nwot,zico"}),
        "value-net, all sources, fidelity-aware (proxy), re-ranked by nwot+zico": (
            every, {"fidelity": "proxy", "rerank": "nwot,zico"}),
        "value-net, all sources, fidelity-aware (full), re-ranked by nwot+zico": (
            every, {"fidelity": "full", "rerank": "nwot,zico"}),
        # the default search options: fidelity "auto" (proxy here: the table left out, no
        # full-training task covers the space), re-ranked by nwot on 5 cells
        "value-net, the default search (fidelity auto)": (every, {}),
        # tasks kept together in batches, so their cells are compared (session 14): every
        # source's, or only the Omniglot-background tasks'
        "value-net, the default search, every task grouped in batches": (
            {**every, "group_sources": "all"}, {}),
        "value-net, the default search, Omniglot tasks grouped in batches": (
            {**every, "group_sources": "omniglot-28px-background"}, {}),
        # the shipped rule since session 14: Omniglot tasks as neighbours, not trained on
        "value-net, the default search, Omniglot tasks as neighbours": (
            {**every, "neighbour_sources": "omniglot-28px-background"}, {}),
        # the shortlist's vote with MeCo next to nwot (session 15)
        **{f"value-net, the default search, Omniglot tasks as neighbours, re-ranked by "
           f"{p.replace(',', '+')}, shortlist {n}": (
               {**every, "neighbour_sources": "omniglot-28px-background"},
               {"rerank": p, "shortlist": n})
           for p, n in (("nwot,meco", 5), ("nwot,meco", 10), ("nwot", 10))},
        # more gradient-ascent restarts: the pool holds the network's favourites more often
        **{f"value-net, the default search, Omniglot tasks as neighbours, {r} restarts{note}": (
               {**every, "neighbour_sources": "omniglot-28px-background"},
               {"restarts": r, **extra})
           for r in (16, 32, 64)
           for note, extra in (("", {}), (", no re-rank", {"rerank": ""}))},
        # the mean of networks meta-trained with consecutive seeds (session 16's default: 8)
        **{f"value-net, the default search, Omniglot tasks as neighbours, ensemble of {k}": (
               {**every, "neighbour_sources": "omniglot-28px-background", "ensemble": k}, {})
           for k in (4, 8)},
        "value-net, the default search, Omniglot tasks as neighbours, ensemble of 8, no re-rank": (
            {**every, "neighbour_sources": "omniglot-28px-background", "ensemble": 8},
            {"rerank": ""}),
        "value-net, the default search, Omniglot tasks as neighbours, no re-rank": (
            {**every, "neighbour_sources": "omniglot-28px-background"}, {"rerank": ""}),
        # the proxy ranking re-ranked by nwot+zico (the default of session 11) at other shortlist lengths
        **{f"value-net, all sources, fidelity-aware (proxy), re-ranked by nwot+zico, "
           f"shortlist {n}": (every, {"fidelity": "proxy", "rerank": "nwot,zico",
                                      "shortlist": n})
           for n in (5, 10, 40)},
        # the cheaper vote: nwot needs one forward pass per cell, zico two forward+backward
        **{f"value-net, all sources, fidelity-aware (proxy), re-ranked by nwot alone, "
           f"shortlist {n}": (every, {"fidelity": "proxy", "rerank": "nwot", "shortlist": n})
           for n in (5, 10)},
        "value-net, all sources, fidelity-aware (proxy), re-ranked by zico alone, shortlist 10": (
            every, {"fidelity": "proxy", "rerank": "zico"}),
        # every cell scored by the network (no gradient ascent; faster on a CPU)
        "value-net, all sources, fidelity-aware (proxy), exhaustive, no re-rank": (
            every, {"fidelity": "proxy", "mode": "exhaustive", "rerank": ""}),
        **{f"value-net, all sources, fidelity-aware (proxy), exhaustive, re-ranked by {p}, "
           f"shortlist {n}": (every, {"fidelity": "proxy", "mode": "exhaustive", "rerank": p,
                                      "shortlist": n})
           for p, n in (("nwot", 5), ("nwot", 10), ("nwot,zico", 10), ("nwot,zico", 5))},
        # nwot alone outvotes the network only with more weight (2 ballots: ties go to the
        # network)
        **{f"value-net, all sources, fidelity-aware (proxy), {mode}, re-ranked by nwot "
           f"(weights 1,2), shortlist {n}": (every, {
               "fidelity": "proxy", "mode": mode, "rerank": "nwot", "rerank_weights": "1,2",
               "shortlist": n})
           for mode in ("gradient", "exhaustive") for n in (5, 10)},
    }


def meta_trained(kb: KnowledgeBase, kb_path: Path, options: dict, seed: int, epochs: int,
                 cache: Path) -> ValueNetMethod:
    """A value network meta-trained with ``options`` (the held-out source excluded), loaded
    from ``cache`` when a run already trained it on this knowledge base (same path and the
    same task and evaluation counts per source): a study of search variants then re-uses one
    meta-training per seed across runs."""
    k = int(options.get("ensemble", 1))
    if k > 1:  # member i is the network seed + i trains alone (tests/methods/test_value_net.py)
        single = {o: v for o, v in options.items() if o != "ensemble"}
        members = [meta_trained(kb, kb_path, single, seed + i, epochs, cache) for i in range(k)]
        return ensemble_of(members)
    key = hashlib.sha256(json.dumps(
        [options, seed, epochs, str(kb_path.resolve()), kb.source_counts(), __version__],
        sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache / f"value-net-{key}.safetensors"
    if path.exists():
        return ValueNetMethod.load(path)
    model = ValueNetMethod.meta_train(kb, seed=seed, epochs=epochs, **options)
    cache.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


def ensemble_of(members: list[ValueNetMethod]) -> ValueNetMethod:
    """One value-net method searching the mean of these networks (meta-trained alone on one
    knowledge base): with consecutive seeds, what meta-training with ``ensemble=len(members)``
    trains."""
    first = members[0]
    for m in members[1:]:  # one knowledge base: one input standardisation
        if not all(np.array_equal(getattr(m, k), getattr(first, k))
                   for k in ("feature_mean", "feature_std", "feature_mask")):
            raise ValueError("ensemble members meta-trained on different knowledge bases")
    return ValueNetMethod(as_value_net([m.net for m in members]),
                          feature_mean=first.feature_mean, feature_std=first.feature_std,
                          feature_mask=first.feature_mask,
                          config=replace(first.config, ensemble=len(members)), info=first.info)


def prior_pick(kb: KnowledgeBase, source: str) -> list[str]:
    """The best cells of one source by shrunken mean per-task z-score (a task-agnostic prior)."""
    table = accuracy_table(kb, source=source)
    return [a for a, _, _ in top_architectures(table, 5)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", default="kb/staging/tinyimagenet-v2.db")
    ap.add_argument("--heldout", default="nb201-imagenet16-120")
    ap.add_argument("--table", default=None, help="CSV of the held-out source (arch,test_acc)")
    ap.add_argument("--standin", default=None, help="dataset searched for the held-out task")
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--out", default="docs/results/leave_in16_out")
    ap.add_argument("--zero-cost", action="store_true", help="also the zero-cost method")
    ap.add_argument("--zero-cost-proxies", default="nwot,meco",
                    help="with --zero-cost: proxy sets compared, separated by ';'")
    ap.add_argument("--zero-cost-cells", default="100,500",
                    help="with --zero-cost: sampled cells per search (comma list)")
    ap.add_argument("--cache", default="runs/leave-out-checkpoints",
                    help="meta-trained value networks, re-used by later runs")
    ap.add_argument("--only", default=None, help="comma-separated substrings: run only the "
                    "variants whose name contains one")
    args = ap.parse_args()

    shared = shared_datasets_dir()
    table_path = Path(args.table) if args.table else shared / "knowledge" / (
        "nb201-imagenet16-120.csv")
    standin = args.standin or str(shared / "tiny-imagenet-200-64px.zip")
    truth = read_table(table_path)
    values = np.array(list(truth.values()))
    reference = {"oracle": float(values.max()), "median": float(np.median(values)),
                 **{f"random best of {n}": expected_best_of(values, n) for n in (10, 100)}}
    data = load_dataset(standin)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    shipped = load_method("value-net")
    for seed in seeds:
        res = shipped.search(data, top=5, seed=seed, resolution=args.resolution)
        picks = [c.arch for c in res.candidates]
        rows.append({"variant": "value-net, shipped checkpoint", "seed": seed,
                     "top1": truth[picks[0]], "best5": max(truth[a] for a in picks),
                     "picks": picks, "meta_train_s": 0.0, "search_s": res.search_seconds})
    if args.zero_cost:
        from metanas.api import search
        from metanas.methods.interface import Budget

        for seed, proxies, cells in ((s, p, int(c)) for s in seeds
                                     for p in args.zero_cost_proxies.split(";")
                                     for c in args.zero_cost_cells.split(",")):
            res = search(data, method="zero-cost", top=5, seed=seed,
                         budget=Budget(evaluations=cells),
                         options={"resolution": args.resolution, "proxies": proxies})
            picks = [c.arch for c in res.candidates]
            rows.append({"variant": f"zero-cost ({proxies.replace(',', '+')}), {cells} "
                                    "sampled cells",
                         "seed": seed, "top1": truth[picks[0]],
                         "best5": max(truth[a] for a in picks), "picks": picks,
                         "meta_train_s": 0.0, "search_s": res.search_seconds})
            print(f"zero-cost {proxies} {cells} cells seed {seed}: top-1 "
                  f"{rows[-1]['top1']:.2f} ({res.search_seconds:.1f} s)", flush=True)
    with KnowledgeBase(args.kb, readonly=True) as kb:
        for source in ("metad2a-imagenet32", "tiny-imagenet-200-64px"):
            picks = prior_pick(kb, source)
            if picks:
                rows.append({"variant": f"global prior of {source}", "seed": None,
                             "top1": truth[picks[0]], "best5": max(truth[a] for a in picks[:5]),
                             "picks": picks, "meta_train_s": 0.0, "search_s": 0.0})
        # the shipped global-prior's rule (each source votes once, the shipped checkpoint's
        # non-voting sources left out), without the held-out table
        shipped_prior = load_method("global-prior").config.prior_exclude_sources
        prior = GlobalPrior.meta_train(kb, exclude_sources=args.heldout,
                                       prior_exclude_sources=shipped_prior).search(data, top=5)
        picks = [c.arch for c in prior.candidates]
        rows.append({"variant": "global-prior, all sources without it (each votes once)",
                     "seed": None, "top1": truth[picks[0]],
                     "best5": max(truth[a] for a in picks), "picks": picks,
                     "meta_train_s": 0.0, "search_s": prior.search_seconds})
        trained: dict[tuple, ValueNetMethod] = {}
        chosen = variants(args.heldout)
        if args.only:
            keys = [k.strip() for k in args.only.split(",")]
            chosen = {n: v for n, v in chosen.items() if any(k in n for k in keys)}
        for name, (options, search_options) in chosen.items():
            for seed in seeds:
                t0 = time.perf_counter()
                key = (json.dumps(options, sort_keys=True), seed)
                if key not in trained:
                    trained[key] = meta_trained(kb, Path(args.kb), options, seed, args.epochs,
                                                Path(args.cache))
                model = trained[key]
                t1 = time.perf_counter()
                res = model.search(data, top=5, seed=seed, resolution=args.resolution,
                                   **search_options)
                picks = [c.arch for c in res.candidates]
                rows.append({"variant": name, "seed": seed, "top1": truth[picks[0]],
                             "best5": max(truth[a] for a in picks), "picks": picks,
                             "meta_train_s": t1 - t0, "search_s": res.search_seconds,
                             "tasks": model.info["tasks"],
                             "evaluations": model.info["evaluations"]})
                print(f"{name} seed {seed}: top-1 {rows[-1]['top1']:.2f} best-of-5 "
                      f"{rows[-1]['best5']:.2f} ({t1 - t0:.0f} s meta-training)", flush=True)

    summary = {}
    for r in rows:
        s = summary.setdefault(r["variant"], {"top1": [], "best5": []})
        s["top1"].append(r["top1"])
        s["best5"].append(r["best5"])
    print(f"\nheld out: {args.heldout}; searched: {Path(standin).name} at {args.resolution} px")
    print(f"{'variant':48s} {'top-1':>7s} {'best of 5':>10s}")
    for name, s in summary.items():
        print(f"{name:48s} {np.mean(s['top1']):7.2f} {np.mean(s['best5']):10.2f}")
    for name, v in reference.items():
        print(f"{name:48s} {v:7.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"heldout": args.heldout, "kb": str(args.kb), "standin": Path(standin).name,
               "resolution": args.resolution, "seeds": seeds, "reference": reference,
               "summary": {k: {m: float(np.mean(v)) for m, v in s.items()}
                           for k, s in summary.items()}, "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(summary, reference, out.with_suffix(".png"), args.heldout)


def draw_references(ax, reference: dict[str, float], top: float) -> None:
    """The oracle and random search's best-of-N as labelled vertical lines (the median is
    left out: it would stretch the axis far below every pick)."""
    styles = iter(("-", ":", "--", "-.", "--", "--"))
    for name, v in reference.items():
        if name != "median":
            ax.axvline(v, color="grey", ls=next(styles), lw=0.8)
            ax.text(v, top, name, rotation=90, fontsize=7, va="top")


def plot(summary: dict, reference: dict, path: Path, heldout: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    ax.barh(y - 0.2, [np.mean(summary[n]["top1"]) for n in names], 0.4, label="top-1")
    ax.barh(y + 0.2, [np.mean(summary[n]["best5"]) for n in names], 0.4, label="best of top 5")
    for (label, v), style in zip(reference.items(), ("-", ":", "--", "-."), strict=False):
        ax.axvline(v, color="k", linestyle=style, linewidth=1, label=f"{label} {v:.1f}")
    ax.set_yticks(y, names)
    ax.set_xlim(min(reference.values()) - 5, reference["oracle"] + 1)
    ax.set_xlabel(f"{heldout} test accuracy of the pick (%, 200 epochs)")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
