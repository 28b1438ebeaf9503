"""The deterministic step-cost model and learning curve behind the budget-aware ranking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from metanas.spaces.nb201 import OPS, NB201Arch
from metanas.training.budget import (
    STEP_COST_OPS,
    dead_edges,
    epoch_deficit,
    executed_edges,
    relative_step_cost,
)

RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def test_executed_edges_skip_what_the_cell_does_not_run():
    assert executed_edges(RESNET) == {"skip_connect": 2, "nor_conv_1x1": 0,
                                      "nor_conv_3x3": 2, "avg_pool_3x3": 0}
    # node 1 is cut off (none~0), so the edges out of it never run
    cut = "|none~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
    assert executed_edges(cut) == {"skip_connect": 1, "nor_conv_1x1": 0,
                                   "nor_conv_3x3": 0, "avg_pool_3x3": 2}
    assert relative_step_cost("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|") == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(OPS) - 1), min_size=6, max_size=6),
       st.integers(0, 5), st.sampled_from([16, 32]))
def test_a_convolution_in_place_of_nothing_never_makes_a_step_cheaper(ops, edge, side):
    arch = NB201Arch.from_ops(ops)
    more = NB201Arch.from_ops([*ops[:edge], OPS.index("nor_conv_3x3"), *ops[edge + 1:]])
    if arch.ops[edge] == "none":
        assert relative_step_cost(more, side) >= relative_step_cost(arch, side)
    assert set(executed_edges(arch)) == set(STEP_COST_OPS)
    assert sum(executed_edges(arch).values()) <= 6


def test_more_epochs_cost_fewer_points():
    values = [epoch_deficit(e) for e in (0.5, 1, 2, 4, 8, 16, 64, 200)]
    assert all(v > 0 for v in values)
    assert values == sorted(values, reverse=True)


def test_edges_that_never_reach_the_output_run_forward_only():
    # node 3 takes only avg_pool(input): the convolutions into nodes 1 and 2 are dead ends
    arch = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|none~2|"
    assert dead_edges(arch) == {"skip_connect": 0, "nor_conv_1x1": 2,
                                "nor_conv_3x3": 1, "avg_pool_3x3": 0}
    assert dead_edges(RESNET) == dict.fromkeys(STEP_COST_OPS, 0)
    alive = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"
    assert relative_step_cost(arch) < relative_step_cost(alive)
