"""Cross-task analysis: agreement, leave-one-task-out regret, group structure, dense tasks."""

from __future__ import annotations

import numpy as np
import pytest

from metanas.kb.analysis import cross_task_agreement, dense_task_regret, group_agreement

CELLS = [f"c{i}" for i in range(12)]


def _table(rankings: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {k: dict(zip(CELLS, map(float, v), strict=True)) for k, v in rankings.items()}


def test_identical_rankings_agree_and_have_no_regret():
    base = np.linspace(0.3, 0.6, len(CELLS))
    table = _table({f"t{i}": base + 0.01 * i for i in range(6)})
    out = cross_task_agreement(table)
    assert out["kendall_mean"] == pytest.approx(1.0)
    assert out["global_best_is_task_best"] == 1.0
    assert out["global_best_regret_mean"] == pytest.approx(0.0)


def test_two_opposite_groups_show_up_within_vs_across():
    base = np.linspace(0.3, 0.6, len(CELLS))
    rng = np.random.default_rng(0)
    rankings, groups = {}, {}
    for i in range(8):
        flip = i % 2
        rankings[f"t{i}"] = (base[::-1] if flip else base) + rng.normal(0, 0.01, len(CELLS))
        groups[f"t{i}"] = "32" if flip else "16"
    table = _table(rankings)
    g = group_agreement(table, groups)
    assert g["within_group_kendall"] > 0.7 > -0.7 > g["across_group_kendall"]
    assert cross_task_agreement(table)["global_best_regret_mean"] > 0.1


def test_dense_regret_of_the_task_agnostic_pick():
    base = np.linspace(0.3, 0.6, len(CELLS))
    table = _table({f"t{i}": base for i in range(4)})
    table["dense"] = dict(zip(CELLS, map(float, base[::-1]), strict=True))
    out = dense_task_regret(table, ["dense"], top=3)
    row = out["tasks"][0]
    assert row["global_prior"] == "c11" and row["best"] == "c0"
    assert row["global_prior_rank"] == len(CELLS)
    assert row["global_prior_regret"] == pytest.approx(0.3)


def test_too_little_data_is_reported_not_invented():
    assert cross_task_agreement({"a": {"x": 0.5}})["enough_data"] is False


def test_seed_agreement_is_the_noise_ceiling(tmp_path):
    from metanas.kb import KnowledgeBase
    from metanas.kb.analysis import seed_agreement
    from metanas.spaces.nb201 import NB201Arch

    rng = np.random.default_rng(0)
    with KnowledgeBase(tmp_path / "kb.db") as kb:
        tid = kb.add_task("t", name="t", source="s")
        for i in range(12):
            aid = kb.add_architecture(NB201Arch.from_index(i * 7).to_string())
            for seed in (0, 1):
                acc = 0.3 + 0.02 * i + rng.normal(0, 0.001)
                kb.add_evaluation(tid, aid, recipe="r", recipe_hash="h", seed=seed,
                                  metrics={"val_acc": acc, "test_acc": acc})
        out = seed_agreement(kb)
    assert out["enough_data"] and out["kendall_mean"] > 0.9
