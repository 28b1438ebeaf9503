"""Rich tables of what the API returns, for the CLI (the top floor: nothing imports it but
:mod:`metanas.cli`)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

__all__ = ["format_stats"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}"


def _mean_std(summary: dict[str, Any]) -> str:
    if not summary["n"]:
        return "-"
    return f"{_pct(summary['mean'])} ± {_pct(summary['std'])}"


def format_stats(stats: dict[str, Any], *, max_tasks: int | None = 50) -> list[Table]:
    """Rich tables for :func:`kb_stats` output: summary, sources, and tasks.

    Accuracies are shown in percent (mean ± std, and max); at most ``max_tasks`` tasks
    are listed (``None``: all).
    """
    counts = stats["counts"]
    overall = stats["overall"]
    summary = Table(title="Knowledge base", show_header=False)
    summary.add_column("what", style="bold")
    summary.add_column("value", overflow="fold")
    summary.add_row("file", escape(stats["path"]))
    summary.add_row("schema version", str(stats["schema_version"]))
    summary.add_row("tasks", str(counts["tasks"]))
    summary.add_row("architectures", str(counts["architectures"]))
    summary.add_row("evaluations", str(counts["evaluations"]))
    summary.add_row("evaluated architectures", str(overall["distinct_architectures"]))
    summary.add_row("distinct canonical cells", str(overall["distinct_canonical"]))
    summary.add_row("tasks with >= 2 evaluations", str(overall["tasks_with_2plus_evals"]))
    summary.add_row("tasks with meta-features", str(overall["tasks_with_meta_features"]))
    for recipe, n in overall["recipes"].items():
        summary.add_row(escape(f"evaluations, recipe {recipe}"), str(n))

    sources = Table(title="Sources")
    sources.add_column("source")
    sources.add_column("tasks", justify="right")
    sources.add_column("evaluations", justify="right")
    sources.add_column("fidelity")
    sources.add_column("licence")
    for name, row in stats["sources"].items():
        sources.add_row(escape(name), str(row["tasks"]), str(row["evaluations"]),
                        escape(row.get("fidelity", "")), escape(row.get("licence", "-")))

    all_tasks = stats["tasks"]
    shown = all_tasks if max_tasks is None else all_tasks[:max_tasks]
    tasks = Table(title="Tasks (accuracies in %)")
    tasks.add_column("task", overflow="fold")
    tasks.add_column("source")
    tasks.add_column("key")
    tasks.add_column("evals", justify="right")
    tasks.add_column("archs", justify="right")
    tasks.add_column("val mean ± std", no_wrap=True)
    tasks.add_column("val max", justify="right")
    tasks.add_column("test mean ± std", no_wrap=True)
    tasks.add_column("test max", justify="right")
    tasks.add_column("best architecture", overflow="fold")
    for t in shown:
        b = t["best"]
        best = "-" if b is None else f"{b['arch']} ({b['metric']} {_pct(b['value'])})"
        tasks.add_row(
            escape(str(t["name"] or "")),
            escape(t["source"]),
            t["key"][:12],
            str(t["evaluations"]),
            str(t["architectures"]),
            _mean_std(t["val_acc"]),
            _pct(t["val_acc"]["max"]),
            _mean_std(t["test_acc"]),
            _pct(t["test_acc"]["max"]),
            escape(best),
        )
    if len(shown) < len(all_tasks):
        tasks.caption = f"{len(all_tasks) - len(shown)} more task(s) not shown"
    return [summary, sources, tasks]
