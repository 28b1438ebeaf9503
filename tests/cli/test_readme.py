"""README.md's CLI tour runs as written: the quick commands here, all of them with
``python benchmarks/readme_commands.py``. Passes without ``../shared`` (those are skipped)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "readme_commands.py"


def _load():
    spec = importlib.util.spec_from_file_location("readme_commands", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tour():
    if not SCRIPT.exists():
        pytest.skip("benchmarks/ is not part of this install")
    return _load()


def test_tour_is_parsed_into_commands(tour):
    commands = tour.tour_commands()
    assert len(commands) >= 15
    assert all(c.startswith("metanas ") for c in commands)
    assert not any("..." in c.replace("../", "") or "[" in c for c in commands)  # runnable
    assert any(not tour.is_slow(c) for c in commands)


@pytest.mark.slow  # ~25 s alone on 2 cores, ~45 s under load
def test_fast_tour_commands_run_as_written(tour):
    commands = tour.tour_commands()
    outcomes = tour.run_tour(commands, fast=True, timeout=120, shared=None, echo=False)
    assert not tour.failed(outcomes), tour.format_table(outcomes) + "\n" + "\n".join(
        o.tail for o in tour.failed(outcomes))
    assert sum(o.status == "ok" for o in outcomes) >= 8
