"""Does the Fisher task distance find tasks whose best cells transfer? A knowledge-base-only check.

    python benchmarks/fisher_transfer.py [--kb default]
        [--checkpoint src/metanas/assets/transfer.safetensors] [--out docs/results]

Uses the KB tasks' Fisher embeddings stored in a nearest-best checkpoint (no training). On the
cells measured on every task (the KB's anchors), for each task held out in turn:

* transfer regret (accuracy points below the task's best anchor) of the best anchor of
  - the nearest other task by Fisher distance (what nearest-best does),
  - the nearest other task by metadata (same resolution, then same class count, then same
    images per class; ties broken by Fisher distance),
  - the farthest task by Fisher distance, and a random other task (mean over all others),
  - the global prior: best mean z-score over the other tasks;
* over all task pairs: Spearman correlation between Fisher distance and the similarity of the
  two tasks' anchor rankings (Spearman of their accuracies); negative = the distance predicts
  which tasks rank cells alike.

Prints a table, writes ``fisher_transfer.json`` and ``fisher_transfer.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats

from metanas.features.fisher import fisher_distances
from metanas.kb import open_kb
from metanas.kb.views import accuracy_table
from metanas.methods.transfer import NearestBest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", default="default")
    ap.add_argument("--checkpoint", default="src/metanas/assets/transfer.safetensors")
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()

    method = NearestBest.load(args.checkpoint)
    keys = [t.key for t in method.tasks]
    emb = method.sqrt_fisher.astype(np.float64) ** 2
    dist = np.stack([fisher_distances(emb, e) for e in emb])
    with open_kb(args.kb) as kb:
        table = accuracy_table(kb)
        rows = {t["key"]: t for t in kb.tasks()}
    anchors = sorted(set.intersection(*(set(table[k]) for k in keys)))
    acc = np.array([[table[k][a] for a in anchors] for k in keys])  # tasks x anchors
    meta = np.array([[rows[k]["resolution"], rows[k]["num_classes"],
                      rows[k]["spec"]["max_train_per_class"]] for k in keys])
    n = len(keys)
    z = (acc - acc.mean(1, keepdims=True)) / acc.std(1, keepdims=True)
    best = acc.argmax(1)
    regret = {name: [] for name in ("nearest (Fisher)", "nearest (metadata)",
                                    "farthest (Fisher)", "random other task",
                                    "global prior (LOO)", "oracle")}
    for t in range(n):
        others = np.array([o for o in range(n) if o != t])
        d = dist[t, others]
        near, far = others[np.argmin(d)], others[np.argmax(d)]
        same = (meta[others] == meta[t]).astype(int)
        key = np.lexsort((d, -same[:, 2], -same[:, 1], -same[:, 0]))
        by_meta = others[key[0]]
        prior = int(np.argmax(z[others].mean(0)))
        top = acc[t].max()
        regret["nearest (Fisher)"].append(top - acc[t, best[near]])
        regret["nearest (metadata)"].append(top - acc[t, best[by_meta]])
        regret["farthest (Fisher)"].append(top - acc[t, best[far]])
        regret["random other task"].append(float(np.mean(top - acc[t, best[others]])))
        regret["global prior (LOO)"].append(top - acc[t, prior])
        regret["oracle"].append(0.0)
    iu = np.triu_indices(n, 1)
    rank_sim = np.array([stats.spearmanr(acc[i], acc[j]).statistic for i, j in zip(*iu,
                                                                                 strict=True)])
    pair_d = dist[iu]
    corr = stats.spearmanr(pair_d, rank_sim)
    same_res = meta[iu[0], 0] == meta[iu[1], 0]
    result = {
        "kb": args.kb, "checkpoint": args.checkpoint, "tasks": n, "anchors": len(anchors),
        "regret_mean": {k: float(np.mean(v)) for k, v in regret.items()},
        "regret_median": {k: float(np.median(v)) for k, v in regret.items()},
        "distance_vs_rank_similarity_spearman": float(corr.statistic),
        "distance_vs_rank_similarity_p": float(corr.pvalue),
        "mean_distance_same_resolution": float(pair_d[same_res].mean()),
        "mean_distance_other_resolution": float(pair_d[~same_res].mean()),
        "nearest_has_same_resolution": float(np.mean([
            meta[np.argmin(np.where(np.arange(n) == t, np.inf, dist[t])), 0] == meta[t, 0]
            for t in range(n)])),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fisher_transfer.json").write_text(json.dumps(result, indent=2) + "\n")
    tab = Table(title=f"leave-one-task-out transfer on {n} KB tasks x {len(anchors)} anchor "
                      "cells (regret = accuracy points below the task's best anchor)")
    for col in ("source of the pick", "mean regret", "median regret"):
        tab.add_column(col)
    for name in regret:
        tab.add_row(name, f"{100 * result['regret_mean'][name]:.2f}",
                    f"{100 * result['regret_median'][name]:.2f}")
    console = Console()
    console.print(tab)
    console.print(f"Spearman(Fisher distance, anchor-ranking similarity) over {len(pair_d)} "
                  f"pairs: {corr.statistic:.3f} (p={corr.pvalue:.2g}); mean distance same "
                  f"resolution {result['mean_distance_same_resolution']:.3f}, other "
                  f"{result['mean_distance_other_resolution']:.3f}; nearest task has the same "
                  f"resolution for {100 * result['nearest_has_same_resolution']:.0f}% of tasks")
    _plot(pair_d, rank_sim, same_res, out / "fisher_transfer.png")


def _plot(pair_d, rank_sim, same_res, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(pair_d[same_res], rank_sim[same_res], s=6, alpha=0.5, label="same resolution")
    ax.scatter(pair_d[~same_res], rank_sim[~same_res], s=6, alpha=0.5,
               label="16 px vs 32 px")
    ax.set_xlabel("Fisher distance between two KB tasks")
    ax.set_ylabel("Spearman of their anchor accuracies")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
