"""Golden picks: `metanas search --json` on digits for every method, with small fixed budgets.

A refactor must not change what a user gets: the same architectures in the same order, the
same scores (within a tolerance that holds across thread counts) and exit code 0. Budgets
here are counts (steps, evaluations), never seconds, so the picks do not depend on speed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metanas.cli import app
from metanas.methods.registry import METHODS

GOLDEN = Path(__file__).parent / "golden" / "search-digits.json"

CASES: dict[str, list[str]] = {
    "value-net": [],
    "value-net-norerank": ["--method", "value-net", "--set", "rerank="],
    "base": ["--adapt-steps", "5"],
    "base-prior": [],
    "darts": ["--set", "steps=5"],
    "gdas": ["--set", "steps=5"],
    "metad2a": [],
    "zero-cost": ["--budget-evals", "10"],
    "random": ["--budget-evals", "2"],
    "rea": ["--budget-evals", "2"],
    "fisher-nearest": ["--budget-evals", "2"],
    "nearest-best": [],
    "global-prior": [],
}


def run_case(argv: list[str], tmp: Path) -> dict:
    name = next((a for a in CASES if CASES[a] is argv), "case")
    out = tmp / f"{name}.json"
    method = [] if "--method" in argv else ["--method", name]
    res = CliRunner().invoke(app, ["search", "--dataset", "digits", "--top", "5", *method,
                                   *argv, "--json", str(out)])
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    got = {"exit_code": res.exit_code,
           "architectures": [c["architecture"] for c in payload["candidates"]],
           "scores": [c["score"] for c in payload["candidates"]]}
    if "neighbours" in payload["details"]:
        got["neighbours"] = [[n["key"], n["distance"]] for n in payload["details"]["neighbours"]]
    return got


def test_every_method_has_a_golden_case():
    assert set(METHODS) <= set(CASES)


TRAINED = {"random", "rea", "fisher-nearest"}
"""Scores are validation accuracies of trained cells: summation order (thread count, CPU)
moves them by a few of the 287 validation images, so they may also swap places. Measured on
one AMD EPYC: the same cell moved by 5 images between 1 and 2 threads and by 2 with
``ATEN_CPU_CAPABILITY=default``; 0.05 (14 images) leaves room for other CPUs and still fails
on broken training (the scores are ~0.92)."""

NEIGHBOUR_TIE = 0.03
"""Relative Fisher distance within which two knowledge-base tasks are a near-tie. The query
embedding comes from a probe trained for 200 SGD steps; on one AMD EPYC the distances moved by
up to 1.4% between PyTorch's AVX2 and plain kernels, and the nearest two tasks are 1.2% apart,
so on another CPU the nearest task (and with it every pick) may flip."""


@pytest.mark.parametrize("name", list(CASES))
def test_search_picks_match_golden(name, tmp_path):
    golden = json.loads(GOLDEN.read_text())[name]
    got = run_case(CASES[name], tmp_path)
    if "neighbours" in golden and got["neighbours"][0][0] != golden["neighbours"][0][0]:
        _assert_neighbour_near_tie(golden["neighbours"], got["neighbours"])
        return  # the picks follow another (equally near) task; its lookup is unit-tested
    tol = 0.05 if name in TRAINED else 1e-3
    if name in TRAINED:  # the same cells were trained (the proposals are seeded)
        assert sorted(got["architectures"]) == sorted(golden["architectures"])
    else:
        assert got["architectures"][0] == golden["architectures"][0]
        assert got["architectures"] == golden["architectures"] or _near_tie(golden, got, tol)
    for a, b in zip(sorted(got["scores"]), sorted(golden["scores"]), strict=True):
        assert math.isclose(a, b, rel_tol=tol, abs_tol=tol), (got["scores"], golden["scores"])


def _near_tie(golden: dict, got: dict, tol: float) -> bool:
    """Lower ranks may swap where two scores are equal within the tolerance."""
    return sorted(got["architectures"]) == sorted(golden["architectures"]) and all(
        math.isclose(a, b, rel_tol=tol, abs_tol=tol)
        for a, b in zip(sorted(got["scores"]), sorted(golden["scores"]), strict=True))


def _assert_neighbour_near_tie(golden: list, got: list) -> None:
    """Another nearest task is allowed only when it was within :data:`NEIGHBOUR_TIE` of the
    recorded nearest, and every task's distance is the recorded one within that tolerance."""
    recorded = dict(golden)
    nearest = golden[0][1]
    assert got[0][0] in recorded, (got, golden)
    assert recorded[got[0][0]] <= nearest * (1 + NEIGHBOUR_TIE), (got, golden)
    for key, distance in got:
        if key in recorded:
            assert math.isclose(distance, recorded[key], rel_tol=NEIGHBOUR_TIE), (key, got)
