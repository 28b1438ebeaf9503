"""PNG plots of a bench summary (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metanas.figures import pyplot, save_png

__all__ = ["plot_accuracy_vs_cost", "plot_bars"]

MARKERS = "os^Dv<>PX*ph"
MIN_SECONDS = 0.01
"""Searches faster than this are drawn at it (a log axis has no 0)."""


def _layout(summary: list[dict[str, Any]]) -> tuple[Any, list[str], list[str], dict[str, Any]]:
    """pyplot, the datasets and methods in order of appearance, and a colour per method."""
    plt = pyplot()
    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    methods = list(dict.fromkeys(s["method"] for s in summary))
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return plt, datasets, methods, {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def plot_accuracy_vs_cost(summary: list[dict[str, Any]], path: Path) -> None:
    """One panel per dataset: test accuracy (mean ± std over seeds) against search seconds."""
    plt, datasets, methods, colors = _layout(summary)
    marker = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.4),
                             squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for s in (s for s in summary if s["dataset"] == dataset):
            if s["test_acc_mean"] is None:
                continue
            x = max(s["search_seconds"] or 0.0, MIN_SECONDS)
            ax.errorbar(x, s["test_acc_mean"], yerr=s["test_acc_std"] or 0.0,
                        fmt=marker[s["method"]], color=colors[s["method"]], label=s["method"],
                        capsize=3, alpha=0.85)
        ax.set_xscale("log")
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("search seconds (log; < 0.01 at 0.01)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy of the pick")
    handles = [plt.Line2D([], [], marker=marker[m], ls="", color=colors[m]) for m in methods]
    fig.tight_layout()
    fig.legend(handles, methods, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               frameon=False)
    save_png(fig, path)


def plot_bars(summary: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: for each dataset, each method's test accuracy (mean ± std)."""
    plt, datasets, methods, colors = _layout(summary)
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.35 * len(datasets) * len(methods)), 3.6))
    by_key = {(s["dataset"], s["method"]): s for s in summary}
    for j, method in enumerate(methods):
        xs, ys, errs = [], [], []
        for i, dataset in enumerate(datasets):
            s = by_key.get((dataset, method))
            if s is None or s["test_acc_mean"] is None:
                continue
            xs.append(i + (j - (len(methods) - 1) / 2) * width)
            ys.append(s["test_acc_mean"])
            errs.append(s["test_acc_std"] or 0.0)
        ax.bar(xs, ys, width=width, yerr=errs, color=colors[method], label=method, capsize=2)
    ax.set_xticks(range(len(datasets)), datasets, fontsize=8)
    ax.set_ylabel("test accuracy of the pick")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
