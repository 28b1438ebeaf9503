"""The zero-cost search method: a proxy vote over sampled cells, within its budget."""

from __future__ import annotations

import time

import pytest

from metanas.api import search
from metanas.data import load_dataset
from metanas.errors import ConfigError
from metanas.methods import zero_cost as method_module
from metanas.methods.interface import Budget
from metanas.spaces.nb201 import NB201Arch


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_ranks_sampled_cells_by_a_proxy_vote(digits):
    res = search(digits, method="zero-cost", top=5, seed=0, budget=Budget(evaluations=12),
                 options={"C": 4, "N": 1, "batch_size": 16})
    assert res.timings["cells"] == 12 and len(res.candidates) == 5
    scores = [c.score for c in res.candidates]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] <= 1
    top = NB201Arch.from_string(res.candidates[0].arch)
    assert sum(op.startswith("nor_conv") for op in top.ops) >= 1  # not a parameter-free cell
    again = search(digits, method="zero-cost", top=5, seed=0, budget=Budget(evaluations=12),
                   options={"C": 4, "N": 1, "batch_size": 16})
    assert [c.arch for c in again.candidates] == [c.arch for c in res.candidates]


def test_bad_proxy_is_a_config_error(digits):
    with pytest.raises(ConfigError, match="proxy"):
        search(digits, method="zero-cost", budget=Budget(evaluations=2),
               options={"proxies": "nope"})


def test_value_net_reranks_its_shortlist_with_proxies(digits):
    plain = search(digits, method="value-net", top=20, seed=0)
    res = search(digits, method="value-net", top=5, seed=0,
                 options={"rerank": "nwot,zico", "shortlist": 20})
    shortlist = [c.arch for c in plain.candidates]
    assert all(c.arch in shortlist for c in res.candidates)
    assert {"value", "nwot", "zico"} <= set(res.candidates[0].extra)
    assert res.details["rerank"] == ["nwot", "zico"] and res.timings["rerank_seconds"] > 0
    with pytest.raises(ConfigError, match="shortlist"):
        search(digits, method="value-net", options={"rerank": "nwot", "shortlist": 0})


def test_value_net_keeps_its_ranking_when_the_images_carry_no_signal():
    import numpy as np

    x = np.full((200, 8, 8), 127, dtype=np.uint8)  # constant images: proxies are undefined
    y = np.repeat(np.arange(10), 20)
    res = search((x, y), method="value-net", top=3, seed=0)
    assert len(res.candidates) == 3 and res.details["rerank"] == []
    assert res.details["rerank_skipped"]  # the proxies' one-line reason
    assert all(np.isfinite(c.score) for c in res.candidates)


def test_a_seconds_budget_alone_stops_at_its_deadline(digits):
    res = search(digits, method="zero-cost", top=2, seed=0, budget=Budget(seconds=0.5),
                 options={"C": 4, "N": 1, "batch_size": 16})
    assert 1 <= res.timings["cells"] < 1000


def test_a_seconds_budget_sizes_its_groups_to_the_time_left(digits, monkeypatch):
    """A first cell alone measures the time per cell; later groups (cells side by side) hold
    no more cells than the seconds left allow, so scoring stops about one cell past the
    deadline, not a whole group past it."""
    sizes = []
    real = method_module.score_batch

    def slow(cells, *args, **kwargs):
        sizes.append(len(cells))
        time.sleep(0.05 * len(cells))
        return real(cells, *args, **kwargs)

    monkeypatch.setattr(method_module, "score_batch", slow)
    res = search(digits, method="zero-cost", top=2, seed=0, budget=Budget(seconds=0.5),
                 options={"C": 4, "N": 1, "batch_size": 16})
    assert sizes[0] == 1 and max(sizes) <= method_module.CELLS_AT_ONCE
    assert res.timings["cells"] == sum(sizes) <= 0.5 / 0.05 + 1
