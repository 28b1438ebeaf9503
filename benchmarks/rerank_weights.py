"""Learn how much the value network and each zero-cost proxy should weigh in the re-rank vote,
from the knowledge base's own tasks, and check the result on the leave-ImageNet16-120-out
protocol (issue 13, the meta-learned ranker).

1. The value network is cross-fitted over the knowledge base's tasks (``--folds``, the held-out
   source left out): every task's cells are scored by a network that never saw that task.
2. Per task with >= 5 cells (``--tasks`` of them, seeded), its ``--shortlist`` best cells by
   that score play the shortlist; the proxies are computed on a stand-in of the task's images
   (a seeded subset of Tiny-ImageNet with the task's class count, at <= 16 px, as the search
   does), cached in ``--cache`` (resumable).
3. The weights (network, proxy, ...) on a simplex grid that maximise the mean per-task
   Spearman of the weighted vote against the measured accuracies are the learned ones.
4. Leave-IN16-out: value networks meta-trained without the table (``--seeds``) search the
   Tiny-ImageNet stand-in at 16 px with equal and with learned weights; the picks are looked up
   in the 200-epoch table.

    python benchmarks/leave_source_out.py ...   # the protocol this extends
    python benchmarks/rerank_weights.py --tasks 100 --seeds 0,1,2,3

Prints tables; writes JSON and a PNG (``--out``, default docs/results/rerank_weights).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from metanas.data import load_dataset
from metanas.features.zero_cost import ZeroCostConfig, proxy_batch, rank_vote, score_cell
from metanas.kb import open_kb
from metanas.methods.validation import task_folds
from metanas.methods.value_net import (
    ValueNetConfig,
    ValueNetMethod,
    load_training_data,
    task_subset,
)
from metanas.paths import shared_datasets_dir
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import make_task
from metanas.training.trainer import resize

HELDOUT = "nb201-imagenet16-120"


def cross_fitted_scores(data, config: ValueNetConfig, folds: int) -> np.ndarray:
    """Each row's value-network score from a network trained without its task."""
    scores = np.full(len(data.target), np.nan)
    for held, train in task_folds(len(data.task_keys), folds, config.seed):
        model = ValueNetMethod.fit(task_subset(data, train), config)
        for t in held:
            rows = np.flatnonzero(data.task_index == t)
            archs = [NB201Arch.from_probabilities(a) for a in data.archs[rows]]
            scores[rows] = model.score(model.encode_vector(data.features[t]), archs)
    return scores


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def proxy_scores(standin, key: str, classes: int, resolution: int, archs: list[str],
                 proxies: tuple[str, ...], cache: dict) -> list[dict]:
    """Proxies of ``archs`` on a stand-in of the task (cached by task key and cell)."""
    todo = [a for a in archs if f"{key}|{a}" not in cache]
    if todo:
        rng = np.random.default_rng(_seed("rerank-standin", key))
        chosen = tuple(int(c) for c in np.sort(rng.choice(standin.num_classes, classes,
                                                          replace=False)))
        task = make_task(standin, classes=chosen, resolution=resolution,
                         max_train_per_class=max(8, -(-128 // classes)), max_test_per_class=1,
                         seed=_seed("rerank-task", key) % 2**31)
        config = ZeroCostConfig(C=8, N=1, seed=0)
        x, y = proxy_batch(task, config.batch_size, config.seed)
        if x.shape[-1] > 16:
            x = resize(x, 16)
        for a in todo:
            r = score_cell(a, x, y, num_classes=task.num_classes, proxies=proxies,
                           config=config)
            cache[f"{key}|{a}"] = r["scores"]
    return [{"arch": a, "scores": cache[f"{key}|{a}"]} for a in archs]


def simplex(n: int, step: float) -> list[tuple[float, ...]]:
    k = round(1 / step)
    return [tuple(c / k for c in combo) for combo in itertools.product(range(k + 1), repeat=n)
            if sum(combo) == k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", default="default")
    ap.add_argument("--proxies", default="nwot,zico")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--shortlist", type=int, default=20)
    ap.add_argument("--step", type=float, default=0.1)
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--cache", default="docs/results/rerank_weights_proxies.json")
    ap.add_argument("--out", default="docs/results/rerank_weights")
    args = ap.parse_args()
    proxies = tuple(p.strip() for p in args.proxies.split(",") if p.strip())
    shared = shared_datasets_dir()
    standin = load_dataset(shared / "tiny-imagenet-200-64px.zip")
    cache_path = Path(args.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    # 1-2: cross-fitted network scores and proxies on the knowledge base's tasks
    config = ValueNetConfig(exclude_sources=HELDOUT, epochs=args.epochs, seed=0)
    t0 = time.perf_counter()
    with open_kb(args.kb) as kb:
        data = load_training_data(kb, config)
    value = cross_fitted_scores(data, config, args.folds)
    counts = np.bincount(data.task_index, minlength=len(data.task_keys))
    eligible = np.flatnonzero(counts >= 5)
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.choice(eligible, min(args.tasks, len(eligible)), replace=False))
    print(f"{len(data.task_keys)} tasks, {len(eligible)} with >= 5 cells, {len(chosen)} used; "
          f"cross-fitting took {time.perf_counter() - t0:.0f} s", flush=True)
    per_task = []
    with Bars(True) as bars:
        bar = bars.add("proxies on stand-in tasks", len(chosen))
        for n, t in enumerate(chosen):
            rows = np.flatnonzero(data.task_index == t)
            rows = rows[np.argsort(-value[rows], kind="stable")][: args.shortlist]
            archs = [NB201Arch.from_probabilities(a).to_string() for a in data.archs[rows]]
            raw = data.features[t]
            classes = int(round(2 ** raw[1]))
            resolution = int(round(2 ** raw[3]))
            results = proxy_scores(standin, data.task_keys[t], classes, resolution, archs,
                                   proxies, cache)
            per_task.append({"key": data.task_keys[t], "acc": data.accuracy[rows].tolist(),
                             "results": results})
            bars.advance(bar)
            if n % 10 == 9:
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                cache_path.write_text(json.dumps(cache) + "\n")
    cache_path.write_text(json.dumps(cache) + "\n")

    # 3: weights on the simplex by mean per-task Spearman of the vote
    def quality(w) -> tuple[float, float]:
        rhos, regrets = [], []
        for rec in per_task:
            acc = np.array(rec["acc"])
            if np.ptp(acc) == 0:
                continue
            vote = rank_vote(rec["results"], proxies, prior_order=True, weights=w)
            rhos.append(stats.spearmanr(vote, acc).statistic)
            regrets.append((acc.max() - acc[int(np.argmax(vote))]) / (acc.std() + 1e-9))
        return float(np.nanmean(rhos)), float(np.mean(regrets))

    grid = [w for w in simplex(len(proxies) + 1, args.step) if sum(w) > 0]
    scored = sorted(((quality(w), w) for w in grid), key=lambda kv: -kv[0][0])
    equal = quality([1.0] * (len(proxies) + 1))
    (best_rho, best_regret), best = scored[0]
    print(f"\nweights (network, {', '.join(proxies)}) on {len(per_task)} knowledge-base tasks")
    print(f"{'weights':24s} {'Spearman':>9s} {'top-1 regret (task sd)':>23s}")
    print(f"{'equal':24s} {equal[0]:9.3f} {equal[1]:23.3f}")
    for (rho, reg), w in scored[:5]:
        print(f"{str(w):24s} {rho:9.3f} {reg:23.3f}")
    singles = {name: quality(tuple(float(i == j) for j in range(len(proxies) + 1)))
               for i, name in enumerate(("network", *proxies))}
    for name, (rho, reg) in singles.items():
        print(f"{name + ' alone':24s} {rho:9.3f} {reg:23.3f}")

    # 4: leave-IN16-out with equal and learned weights
    truth = {}
    import csv
    with (shared / "knowledge" / "nb201-imagenet16-120.csv").open(newline="") as fh:
        truth = {r["arch"]: float(r["test_acc"]) for r in csv.DictReader(fh)}
    rows = []
    with open_kb(args.kb) as kb:
        for seed in [int(s) for s in args.seeds.split(",")]:
            model = ValueNetMethod.meta_train(kb, seed=seed, epochs=args.epochs,
                                              exclude_sources=HELDOUT)
            for label, w in (("equal", ""), ("learned", ",".join(f"{v:g}" for v in best))):
                res = model.search(standin, top=5, seed=seed, resolution=16,
                                   rerank=",".join(proxies), rerank_weights=w)
                picks = [c.arch for c in res.candidates]
                rows.append({"weights": label, "seed": seed, "top1": truth[picks[0]],
                             "best5": max(truth[a] for a in picks), "picks": picks})
                print(f"seed {seed} {label}: top-1 {rows[-1]['top1']:.2f} best-of-5 "
                      f"{rows[-1]['best5']:.2f}", flush=True)
    summary = {label: {"top1": float(np.mean([r["top1"] for r in rows if r["weights"] == label])),
                       "best5": float(np.mean([r["best5"] for r in rows
                                               if r["weights"] == label]))}
               for label in ("equal", "learned")}
    print(f"\nleave-IN16-out (oracle 47.31): {summary}")
    out = Path(args.out)
    payload = {"proxies": list(proxies), "kb_tasks": len(per_task), "shortlist": args.shortlist,
               "learned_weights": list(best), "learned": {"spearman": best_rho,
                                                          "regret": best_regret},
               "equal": {"spearman": equal[0], "regret": equal[1]},
               "singles": {k: {"spearman": v[0], "regret": v[1]} for k, v in singles.items()},
               "top_weights": [{"weights": list(w), "spearman": q[0], "regret": q[1]}
                               for q, w in scored[:10]],
               "leave_in16_out": {"summary": summary, "rows": rows}}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(scored, proxies, out.with_suffix(".png"))


def plot(scored, proxies, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    w_net = [w[0] for _, w in scored]
    rho = [q[0] for q, _ in scored]
    ax.scatter(w_net, rho, s=12)
    ax.set_xlabel("weight of the value network in the vote")
    ax.set_ylabel("mean per-task Spearman (knowledge-base tasks)")
    ax.set_title(f"re-rank vote weights: network + {', '.join(proxies)}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
