"""The benchmark harness behind ``metanas bench``: methods x datasets x seeds, resumable.

Every method picks a cell for every dataset under the declared search budget, every pick is
trained with the same recipe and seeds, and the results become JSON, CSV, a Markdown table and
PNG plots. Finished cells are stored as they complete, so a rerun skips them.
"""

from __future__ import annotations

from metanas.bench.lookup import Lookup, parse_lookup
from metanas.bench.plan import BenchConfig, BenchPlan, Cell, accepts_budget
from metanas.bench.report import BenchReport
from metanas.bench.runner import run_bench

__all__ = [
    "BenchConfig", "BenchPlan", "BenchReport", "Cell", "Lookup", "accepts_budget",
    "parse_lookup", "run_bench",
]
