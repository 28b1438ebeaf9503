"""The shared accuracy view and the elite neighbourhoods of a build plan."""

from __future__ import annotations

import numpy as np
import pytest

from metanas.errors import ConfigError
from metanas.kb import KnowledgeBase
from metanas.kb.views import accuracy_table, heldout_accuracy, top_architectures
from metanas.kb_build import BuildPlan
from metanas.spaces.nb201 import NB201Arch

A, B, C = (NB201Arch.from_index(i).to_string() for i in (100, 200, 300))


def test_heldout_pools_val_and_test_by_size():
    row = {"val_acc": 0.5, "test_acc": 0.8}
    assert heldout_accuracy(row, {"n_val": 100, "n_test": 300}) == pytest.approx(0.725)
    assert heldout_accuracy({"val_acc": None, "test_acc": 0.8}, {}) == pytest.approx(0.8)
    assert heldout_accuracy(row, {}, "val_acc") == 0.5


def test_accuracy_table_averages_seeds(tmp_path):
    with KnowledgeBase(tmp_path / "kb.db") as kb:
        tid = kb.add_task("t", name="t", source="s", sizes={"train": 10, "val": 10, "test": 10})
        aid = kb.add_architecture(A)
        for seed, acc in ((0, 0.4), (1, 0.6)):
            kb.add_evaluation(tid, aid, recipe="r", recipe_hash="h", seed=seed,
                              metrics={"val_acc": acc, "test_acc": acc})
        assert accuracy_table(kb) == {"t": {A: pytest.approx(0.5)}}


def test_top_architectures_prefers_consistent_winners_over_one_lucky_run():
    table = {f"t{i}": {A: 0.6, B: 0.5, C: 0.4} for i in range(5)}
    table["lucky"] = {"x": 0.9, A: 0.5, B: 0.5}
    ranked = [a for a, _, _ in top_architectures(table, 3)]
    assert ranked[0] == A
    assert ranked.index(A) < ranked.index("x")


def test_elite_neighbourhoods_are_near_the_elite_and_deterministic():
    elite = NB201Arch.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "nor_conv_3x3~2|")
    plan = BuildPlan(source="digits", tasks=2, archs_per_task=12, anchors=2, elite_per_task=6,
                     elite=(elite.to_string(),))
    anchors = plan.anchor_archs()
    archs = plan.task_archs(0, anchors)
    assert archs == plan.task_archs(0, anchors)
    assert len({a.canonical_form for a in archs}) == 12
    distance = [int(np.sum(np.array(a.op_indices) != np.array(elite.op_indices)))
                for a in archs[2:8]]
    assert all(1 <= d <= 2 for d in distance)


def test_elite_options_are_checked():
    with pytest.raises(ConfigError, match="--elite"):
        BuildPlan(source="digits", archs_per_task=5, anchors=2, elite_per_task=2)
    with pytest.raises(ConfigError, match="--elite"):
        BuildPlan(source="digits", archs_per_task=5, anchors=2, elite_per_task=4, elite=(A,))
