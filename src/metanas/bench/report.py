"""Tables of a bench run: JSON and CSV rows, a Markdown summary, and the plots.

Rank of a pick: on one dataset and seed, every method that trains candidates during its search
(random, rea, fisher-nearest, ...) trains them on the same task with the same recipe and seed
as the bench's final training, so all those numbers are comparable. The pool is the union of
these candidates over all methods (by functional equivalence); a pick's rank is 1 + the number
of pool cells with a higher test accuracy than the pick's final one, out of the pool plus the
pick. With no method that trains candidates there is no pool and no rank.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metanas.bench.plan import BenchPlan, accepts_budget
from metanas.bench.store import write_atomic
from metanas.jsonio import json_safe
from metanas.spaces.nb201 import NB201Arch

__all__ = ["CSV_COLUMNS", "BenchReport", "summarize", "write_report"]

CSV_COLUMNS = (
    "dataset", "method", "seed", "pick", "test_acc", "val_acc", "search_seconds",
    "train_seconds", "total_seconds", "pick_rank", "pool_size", "params", "macs", "budget",
    "recipe", "max_train_per_class",
)


@dataclass
class BenchReport:
    """What a run produced: per-cell rows, the per (dataset, method) summary and file paths."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    files: dict[str, str]
    computed: int
    seconds: float
    lookups: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"computed_cells": self.computed, "cells": len(self.rows),
                "seconds": self.seconds, "files": self.files, "summary": self.summary}


def add_ranks(rows: list[dict[str, Any]]) -> None:
    """Set ``pick_rank`` and ``pool_size`` on each row (None without a pool)."""
    pools: dict[tuple[str, int], dict[str, float]] = {}
    for r in rows:
        pool = pools.setdefault((r["dataset"], r["seed"]), {})
        for c in r.get("trained_candidates") or []:
            form = NB201Arch.from_string(c["arch"]).canonical_form
            pool[form] = max(pool.get(form, -math.inf), float(c["test_acc"]))
    for r in rows:
        pool = pools[(r["dataset"], r["seed"])]
        if not pool:
            r["pick_rank"] = r["pool_size"] = None
            continue
        own = NB201Arch.from_string(r["pick"]).canonical_form
        others = [v for form, v in pool.items() if form != own]
        r["pick_rank"] = 1 + sum(v > r["test_acc"] for v in others)
        r["pool_size"] = len(others) + 1


def add_lookups(rows: list[dict[str, Any]], plan: BenchPlan) -> None:
    for r in rows:
        r["published"] = {
            lk.label: lk.value(r["pick"]) for lk in plan.lookups
            if lk.dataset in (r["dataset"], r["dataset_spec"])
        }


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals))


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (dataset, method), in first-seen order: means and stds over seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"]), []).append(r)
    out = []
    for (dataset, method), rs in groups.items():
        acc, acc_std = _mean_std([r["test_acc"] for r in rs])
        published: dict[str, float | None] = {}
        for label in {k for r in rs for k in r.get("published", {})}:
            published[label] = _mean_std([r["published"].get(label) for r in rs])[0]
        ranks = [r for r in rs if r.get("pick_rank") is not None]
        out.append({
            "dataset": dataset, "method": method, "seeds": len(rs),
            "test_acc_mean": acc, "test_acc_std": acc_std,
            "search_seconds": _mean_std([r["search_seconds"] for r in rs])[0],
            "train_seconds": _mean_std([r["train_seconds"] for r in rs])[0],
            "total_seconds": _mean_std([r["total_seconds"] for r in rs])[0],
            "pick_rank": _mean_std([r["pick_rank"] for r in ranks])[0],
            "pool_size": _mean_std([r["pool_size"] for r in ranks])[0],
            "published": published,
            "picks": sorted({r["pick"] for r in rs}),
        })
    return out


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(plan: BenchPlan, summary: list[dict[str, Any]]) -> str:
    cfg = plan.config
    labels = [lk.label for lk in plan.lookups]
    head = ["dataset", "method", f"test acc (mean ± std, {cfg.seeds} seed(s))", *labels,
            "search s", "total s", "pick rank / pool"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        rank = "-" if s["pick_rank"] is None else f"{s['pick_rank']:.1f} / {s['pool_size']:.0f}"
        pub = [_fmt(s["published"].get(label)) for label in labels]
        lines.append("| " + " | ".join([
            s["dataset"], s["method"], f"{_fmt(s['test_acc_mean'])} ± {_fmt(s['test_acc_std'])}",
            *pub, _fmt(s["search_seconds"], ".1f"), _fmt(s["total_seconds"], ".1f"), rank,
        ]) + " |")
    budgets = ", ".join(f"{m}: {'--budget' if accepts_budget(spec) else 'none'}"
                        for m, spec in plan.specs.items())
    picks = ["", "| dataset | method | picks |", "|---|---|---|"]
    picks += [f"| {s['dataset']} | {s['method']} | "
              f"{'<br>'.join(_code(p) for p in s['picks'])} |" for s in summary]
    notes = [
        "",
        f"Recipe {cfg.recipe}, max {cfg.max_train_per_class or 'all'} labelled images per "
        f"class, seeds 0..{cfg.seeds - 1}, search budget "
        f"{'method default' if cfg.budget is None else f'{cfg.budget:g} s'} ({budgets}). "
        "Total s = search + final training. Pick rank: among all cells trained during the "
        "searches on the same dataset and seed (1 = best).",
    ]
    return "\n".join(lines + picks + notes) + "\n"


def _code(arch: str) -> str:
    """An architecture string as Markdown code inside a table (its ``|`` escaped)."""
    return "`" + arch.replace("|", "\\|") + "`"


def _csv(rows: list[dict[str, Any]], labels: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"published:{lb}" for lb in labels)])
    for r in rows:
        values = []
        for c in CSV_COLUMNS:
            v = r.get(c)
            values.append(json.dumps(v) if isinstance(v, dict) else ("" if v is None else v))
        values += ["" if r["published"].get(lb) is None else r["published"][lb] for lb in labels]
        writer.writerow(values)
    return buf.getvalue()


def write_report(plan: BenchPlan, records: list[dict[str, Any]], *, computed: int,
                 seconds: float) -> BenchReport:
    """Write results.json, results.csv, results.md and the PNG plots into the plan's folder."""
    from metanas.bench.plots import plot_accuracy_vs_cost, plot_bars

    rows = [dict(r) for r in records]
    add_ranks(rows)
    add_lookups(rows, plan)
    summary = summarize(rows)
    out: Path = plan.out
    labels = [lk.label for lk in plan.lookups]
    cfg = plan.config
    payload = {
        "config": {"datasets": cfg.datasets, "methods": cfg.methods, "budget": cfg.budget,
                   "seeds": cfg.seeds, "recipe": cfg.recipe, "lookups": cfg.lookups,
                   "max_train_per_class": cfg.max_train_per_class, "device": cfg.device,
                   "checkpoints": cfg.checkpoints, "options": cfg.options},
        "budget_semantics": {m: spec.budget for m, spec in plan.specs.items()},
        "summary": summary,
        "rows": rows,
    }
    files = {
        "json": out / "results.json", "csv": out / "results.csv", "markdown": out / "results.md",
        "cost_plot": out / "accuracy_vs_search_cost.png", "bar_plot": out / "accuracy_by_method.png",
    }
    write_atomic(files["json"], json.dumps(json_safe(payload), indent=1, default=str) + "\n")
    write_atomic(files["csv"], _csv(rows, labels))
    write_atomic(files["markdown"], markdown(plan, summary))
    plot_accuracy_vs_cost(summary, files["cost_plot"])
    plot_bars(summary, files["bar_plot"])
    return BenchReport(rows, summary, {k: str(v) for k, v in files.items()}, computed, seconds,
                       labels)

