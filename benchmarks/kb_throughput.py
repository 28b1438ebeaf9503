"""Knowledge-base build throughput per executor (evaluations per hour, startup included).

    python benchmarks/kb_throughput.py --source ../shared/datasets/tiny-imagenet-200-64px.zip \\
        [--tasks 2 --archs 12] [--out docs/results]

Builds the same small plan into a fresh KB with each configuration (local in-process, a process
pool of 1 and 2 workers, Ray with 2 workers when installed), prints a table and writes
``kb_throughput.json``. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from metanas.kb import KnowledgeBase
from metanas.kb_build import BuildPlan, build_kb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="digits")
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--recipe", default="cpu-proxy")
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()
    plan = BuildPlan(source=args.source, tasks=args.tasks, archs_per_task=args.archs, anchors=2,
                     n_way=(10,), resolutions=(16,), train_per_class=(100,), recipe=args.recipe)
    configs = [("local", 1), ("process", 1), ("process", 2)]
    if importlib.util.find_spec("ray") is not None:
        configs.append(("ray", 2))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for executor, workers in configs:
            start = time.perf_counter()
            with KnowledgeBase(Path(tmp) / f"{executor}-{workers}.db") as kb:
                report = build_kb(kb, plan, workers=workers, executor=executor, progress=False)
            wall = time.perf_counter() - start
            rows.append({"executor": executor, "workers": workers, "evaluations": report.trained,
                         "wall_seconds": wall, "per_hour": 3600 * report.trained / wall})
    table = Table(title=f"kb build throughput ({args.tasks} tasks x {args.archs} cells, "
                        f"{args.recipe}, 10-way 16 px)")
    for col in ("executor", "workers", "evaluations", "wall s", "evaluations / hour"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["executor"], str(r["workers"]), str(r["evaluations"]),
                      f"{r['wall_seconds']:.1f}", f"{r['per_hour']:.0f}")
    Console().print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kb_throughput.json").write_text(json.dumps({"args": vars(args), "rows": rows},
                                                       indent=2) + "\n")


if __name__ == "__main__":
    main()
