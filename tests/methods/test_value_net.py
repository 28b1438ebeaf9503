from __future__ import annotations

import numpy as np
import pytest

from metanas.data import load_dataset
from metanas.errors import CheckpointError, ConfigError, KnowledgeBaseError
from metanas.features.metafeatures import FEATURE_NAMES
from metanas.kb import KnowledgeBase
from metanas.methods.value_net import ValueNetMethod, cross_validate
from metanas.spaces.nb201 import NB201Arch


@pytest.fixture(scope="module")
def model(synthetic_kb) -> ValueNetMethod:
    with KnowledgeBase(synthetic_kb, readonly=True) as kb:
        return ValueNetMethod.meta_train(kb, epochs=150, seed=0)


def _features(rough: float) -> dict[str, float]:
    return {**{n: 0.0 for n in FEATURE_NAMES}, "roughness": rough}


def test_value_net_learns_task_dependent_preference(model):
    conv = NB201Arch.from_ops(["nor_conv_3x3"] * 6)
    pool = NB201Arch.from_ops(["avg_pool_3x3"] * 6)
    rough = model.score(_features(0.95), [conv, pool])
    smooth = model.score(_features(0.05), [conv, pool])
    assert rough[0] > rough[1]
    assert smooth[1] > smooth[0]


def test_gradient_ascent_finds_what_exhaustive_scoring_ranks_high(model):
    f = model.encode_features(_features(0.95))
    picks = model.gradient_ascent(f, restarts=4, seed=0)
    scores = model.score_all(f)
    rank = (scores > scores[picks[0].index]).sum() + 1
    assert rank <= 200  # top ~1% of 15,625


def test_leave_tasks_out_validation_is_task_aware(synthetic_kb):
    with KnowledgeBase(synthetic_kb, readonly=True) as kb:
        report = cross_validate(kb, folds=3, epochs=120, loss="mse", dropout=0.2, seed=0)
    assert report["tasks"] == 24
    aware, agnostic = report["task_aware"], report["task_agnostic"]
    assert aware["spearman_mean"] > 0.6
    assert aware["spearman_mean"] > agnostic["spearman_mean"] + 0.2
    assert {"spearman", "kendall", "top1_regret"} <= set(report["per_task"][0])


def test_rank_loss_option_trains(synthetic_kb):
    with KnowledgeBase(synthetic_kb, readonly=True) as kb:
        m = ValueNetMethod.meta_train(kb, epochs=60, loss="rank", seed=1)
    conv = NB201Arch.from_ops(["nor_conv_3x3"] * 6)
    pool = NB201Arch.from_ops(["avg_pool_3x3"] * 6)
    s = m.score(_features(0.95), [conv, pool])
    assert s[0] > s[1]


def test_bad_options_and_too_little_data(tmp_path, synthetic_kb):
    with pytest.raises(ConfigError, match="loss"):
        ValueNetMethod.meta_train(None, loss="hinge")
    with pytest.raises(ConfigError, match="epochs"):  # would write an untrained checkpoint
        ValueNetMethod.meta_train(None, epochs=0)
    with KnowledgeBase(synthetic_kb, readonly=True) as kb, pytest.raises(ConfigError,
                                                                         match="folds"):
        cross_validate(kb, folds=1, epochs=1)
    with KnowledgeBase(tmp_path / "empty.db") as kb, pytest.raises(KnowledgeBaseError,
                                                                   match="at least 2 tasks"):
        ValueNetMethod.meta_train(kb)


def test_checkpoint_round_trip_and_safety(model, tmp_path):
    path = tmp_path / "vn.safetensors"
    model.save(path)
    loaded = ValueNetMethod.load(path)
    archs = [NB201Arch.sample(i) for i in range(20)]
    np.testing.assert_allclose(loaded.score(_features(0.3), archs),
                               model.score(_features(0.3), archs), rtol=1e-6)
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        ValueNetMethod.load(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        ValueNetMethod.load(tmp_path / "missing.safetensors")


def test_save_into_a_folder_fails_cleanly(model, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(CheckpointError, match="taken"):
        model.save(tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temp file left


def test_search_on_digits_returns_deduplicated_connected_candidates(model):
    ds = load_dataset("digits")
    res = model.search(ds, top=8, seed=0)
    assert len(res.candidates) == 8
    archs = [NB201Arch.from_string(c.arch) for c in res.candidates]
    assert all(a.is_connected for a in archs)
    assert len({a.canonical_form for a in archs}) == 8
    scores = [c.score for c in res.candidates]
    assert scores == sorted(scores, reverse=True)
    assert res.details["resolution"] == 16
    assert res.search_seconds > 0
    again = model.search(ds, top=8, seed=0)
    assert [c.arch for c in again.candidates] == [c.arch for c in res.candidates]
    exhaustive = model.search(ds, top=3, seed=0, mode="exhaustive")
    assert exhaustive.details["exhaustive_rank_of_top"] <= 3
