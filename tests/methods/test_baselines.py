from __future__ import annotations

import pytest

from metanas.data import load_dataset
from metanas.errors import ConfigError
from metanas.methods.baselines import RandomSearch, RegularizedEvolution
from metanas.methods.interface import Budget
from metanas.spaces.nb201 import NB201Arch
from metanas.training import get_recipe

FAST = get_recipe("cpu-tiny", epochs=3)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("cls", [RandomSearch, RegularizedEvolution])
def test_baseline_trains_within_budget_and_ranks_by_validation(cls, digits):
    kwargs = {"population": 2, "sample_size": 2} if cls is RegularizedEvolution else {}
    method = cls(FAST, max_train_per_class=120, **kwargs)
    res = method.search(digits, top=3, seed=0, budget=Budget(evaluations=3))
    assert res.timings["evaluations"] == 3
    assert len(res.details["history"]) == 3
    scores = [c.score for c in res.candidates]
    assert scores == sorted(scores, reverse=True)
    assert max(scores) > 0.3  # trained networks beat chance (0.1) on 10 classes
    forms = {NB201Arch.from_string(a).canonical_form for a in res.details["history"]}
    assert len(forms) == 3


def test_rea_mutates_parents_after_initial_population(digits):
    method = RegularizedEvolution("cpu-tiny", population=2, sample_size=1,
                                  max_train_per_class=30)
    res = method.search(digits, top=4, seed=1, budget=Budget(evaluations=4))
    hist = [NB201Arch.from_string(a) for a in res.details["history"]]
    # every child after the initial population is a one-edge mutation of an earlier cell
    for child in hist[2:]:
        assert any(sum(x != y for x, y in zip(child.op_indices, p.op_indices, strict=True)) == 1
                   for p in hist[: hist.index(child)])


def test_tiny_time_budget_still_returns_one_trained_candidate(digits):
    # The budget used to run out while the task was built: no candidate, IndexError on the pick.
    res = RandomSearch(FAST, max_train_per_class=30).search(digits, budget=Budget(seconds=1e-9))
    assert res.timings["evaluations"] == 1
    NB201Arch.from_string(res.architecture)


def test_budget_validation(digits):
    assert RandomSearch.check_budget(Budget()) is None  # empty: the default budget
    with pytest.raises(ConfigError):
        RegularizedEvolution("cpu-tiny", population=1)


def test_time_budget_stops_a_training_in_flight(digits):
    """The first candidate always completes; a later one stops at the deadline instead of
    overrunning the budget by a whole training (rea: 60 s budget, 106 s seen)."""
    import time

    from metanas.tasks import make_task
    from metanas.training import DeadlineReached, train_architecture

    task = make_task(digits, resolution=8, max_train_per_class=20, seed=0)
    with pytest.raises(DeadlineReached):
        train_architecture(NB201Arch.sample(0), task, FAST, deadline=time.perf_counter())
    res = RandomSearch(FAST, max_train_per_class=20).search(
        digits, top=3, seed=0, budget=Budget(seconds=1e-6))
    assert res.timings["evaluations"] == 1
