from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from metanas.data import load_dataset
from metanas.errors import CheckpointError, ConfigError, KnowledgeBaseError
from metanas.features.metafeatures import FEATURE_NAMES
from metanas.kb import KnowledgeBase
from metanas.methods.value_net import ValueNetMethod, cross_validate
from metanas.methods.value_net.budget import cheap_cells
from metanas.spaces.nb201 import SPACE_SIZE, NB201Arch
from metanas.training.budget import dead_edges, relative_step_cost
from metanas.training.fit import fit_resolution


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
    # tasks another tool wrote with only some meta-features are skipped, not a KeyError
    with KnowledgeBase(tmp_path / "partial.db") as kb:
        for t in range(3):
            partial = ({"log2_classes": 1.0, "channels": 3.0} if t < 2 else  # a NaN stored as null
                       {**{n: 0.0 for n in FEATURE_NAMES}, "channels": float("nan")})
            tid = kb.add_task(f"p{t}", name=f"p{t}", source="other", meta_features=partial)
            for arch in NB201Arch.sample_distinct(3, seed=t):
                aid = kb.add_architecture(arch.to_string())
                kb.add_evaluation(tid, aid, recipe="r", recipe_hash="h", seed=0,
                                  metrics={"val_acc": 0.5, "test_acc": 0.5})
        with pytest.raises(KnowledgeBaseError, match=r"partial\.db: needs at least 2 tasks"):
            cross_validate(kb, folds=2, epochs=1)


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
    with pytest.raises(CheckpointError, match="does not exist"):
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
    exhaustive = model.search(ds, top=3, seed=0, mode="exhaustive", rerank="")
    assert exhaustive.details["exhaustive_rank_of_top"] <= 3


def test_fidelity_inputs_rank_for_the_requested_fidelity(tmp_path):
    """Cheap proxies favour pooling, full trainings convolutions (the KB v1 bias): a
    fidelity-aware network ranks for the fidelity asked for, and one that pools the sources
    without fidelity inputs cannot."""
    rng = np.random.default_rng(0)
    path = tmp_path / "fid.db"
    conv = NB201Arch.from_ops(["nor_conv_3x3"] * 6)
    pool = NB201Arch.from_ops(["avg_pool_3x3"] * 6)
    with KnowledgeBase(path) as kb:
        for t in range(16):
            full = t % 2 == 0
            recipe = {"epochs": 200, "C": 16, "N": 5} if full else {"epochs": 12, "C": 8, "N": 1}
            feats = {name: float(rng.normal()) for name in FEATURE_NAMES}
            tid = kb.add_task(f"t{t}", name=f"t{t}", source="full" if full else "proxy",
                              resolution=16, meta_features=feats)
            for _ in range(40):
                arch = NB201Arch.sample(rng)
                ops = np.array(arch.op_indices)
                sign = 1.0 if full else -1.0
                acc = 0.5 + 0.03 * sign * (np.sum(ops == 3) - np.sum(ops == 4)) \
                    + rng.normal(0, 0.005)
                aid = kb.add_architecture(arch.to_string(), canonical=arch.canonical_hash())
                kb.add_evaluation(tid, aid, recipe=f"r{int(full)}", recipe_hash=f"h{int(full)}",
                                  recipe_config=recipe, seed=0,
                                  metrics={"val_acc": acc, "test_acc": acc})
    with KnowledgeBase(path, readonly=True) as kb:
        aware = ValueNetMethod.meta_train(kb, epochs=80, seed=0)
        blind = ValueNetMethod.meta_train(kb, epochs=80, seed=0, fidelity_features=False)
    assert aware.info["fidelity_names"] and not blind.info["fidelity_names"]
    feats = {name: 0.0 for name in FEATURE_NAMES}
    full = aware.score(aware.encode_features(feats, "full"), [conv, pool])
    proxy = aware.score(aware.encode_features(feats, "proxy"), [conv, pool])
    assert full[0] > full[1] and proxy[1] > proxy[0]
    assert aware.target_fidelity("proxy") == {"epochs": 12, "C": 8, "N": 1}
    with pytest.raises(ConfigError, match="fidelity"):
        aware.target_fidelity("medium")
    # "auto": 40 cells per full-training task do not cover the space, so the proxy ...
    assert all(30 <= f["cells"] <= 40 for f in aware.info["fidelities"])
    assert aware.ranking_fidelity("auto") == "proxy"
    assert aware.target_fidelity("auto") == {"epochs": 12, "C": 8, "N": 1}
    # ... while a full-training table of the whole space makes it rank for a full training
    dense = copy.deepcopy(aware)
    next(f for f in dense.info["fidelities"] if f["epochs"] == 200)["cells"] = SPACE_SIZE
    assert dense.ranking_fidelity("auto") == "full"
    assert dense.ranking_fidelity("proxy") == "proxy"
    next(f for f in blind.info["fidelities"] if f["epochs"] == 200)["cells"] = SPACE_SIZE
    assert blind.ranking_fidelity("auto") == "proxy"  # no fidelity inputs: nothing to choose
    older = copy.deepcopy(dense)  # a checkpoint written before fidelities recorded cells
    for f in older.info["fidelities"]:
        f.pop("cells")
    assert older.ranking_fidelity("auto") == "proxy"
    path2 = tmp_path / "aware.safetensors"
    aware.save(path2)
    again = ValueNetMethod.load(path2)
    assert again.info["fidelities"] == aware.info["fidelities"]  # cells survive a round trip
    np.testing.assert_allclose(again.score(again.encode_features(feats, "full"), [conv, pool]),
                               full, rtol=1e-6)


def test_small_tasks_are_pooled_per_source_and_sources_can_be_left_out(synthetic_kb, tmp_path):
    import shutil

    from metanas.methods.value_net import ValueNetConfig, load_training_data

    path = tmp_path / "kb.db"
    shutil.copyfile(synthetic_kb, path)
    rng = np.random.default_rng(1)
    with KnowledgeBase(path) as kb:
        for t in range(5):  # five one-record tasks of another source
            tid = kb.add_task(f"one{t}", name=f"one{t}", source="tiny",
                              meta_features={n: 0.0 for n in FEATURE_NAMES})
            arch = NB201Arch.sample(rng)
            aid = kb.add_architecture(arch.to_string(), canonical=arch.canonical_hash())
            kb.add_evaluation(tid, aid, recipe="synthetic", recipe_hash="s", seed=0,
                              metrics={"val_acc": 0.5 + 0.01 * t, "test_acc": 0.5})
    with KnowledgeBase(path, readonly=True) as kb:
        pooled = load_training_data(kb, ValueNetConfig())
        dropped = load_training_data(kb, ValueNetConfig(pool_small_tasks=False))
        left_out = load_training_data(kb, ValueNetConfig(exclude_sources="tiny,synthetic-x"))
    assert len(pooled.task_keys) == 25 and any(k.startswith("pooled:tiny") for k in
                                              pooled.task_keys)
    assert len(dropped.task_keys) == 24 == len(left_out.task_keys)
    assert (pooled.task_index == pooled.task_keys.index(
        next(k for k in pooled.task_keys if k.startswith("pooled")))).sum() == 5


def test_checkpoints_that_would_rank_by_nan_are_refused(model, tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "vn.safetensors"
    model.save(path)
    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        meta = fh.metadata()
    for name, bad in (("feature_std", torch.zeros_like(tensors["feature_std"])),
                      ("feature_mean", torch.full_like(tensors["feature_mean"], float("nan")))):
        save_file({**tensors, name: bad}, str(tmp_path / "bad.safetensors"), metadata=meta)
        with pytest.raises(CheckpointError, match="not finite and positive"):
            ValueNetMethod.load(tmp_path / "bad.safetensors")


def test_train_budget_ranks_for_the_epochs_the_budget_buys(model):
    """A tight budget orders the shortlist by the epochs each cell runs (tolerance 0: by
    them alone); an unlimited one keeps the vote's order; a given step time makes it exact."""
    ds = load_dataset("digits")
    fixed = {"budget_shortlist": 12, "budget_cheap": 0, "budget_step_seconds": 0.02}
    tight = model.search(ds, top=12, seed=0, train_budget=5.0, budget_tolerance=0.0, **fixed)
    epochs = [c.extra["epochs"] for c in tight.candidates]
    assert epochs == sorted(epochs, reverse=True)
    assert tight.details["train_budget"]["step_seconds"] == 0.02
    assert all(c.extra["deficit"] > 0 for c in tight.candidates)
    again = model.search(ds, top=12, seed=0, train_budget=5.0, budget_tolerance=0.0, **fixed)
    assert [c.arch for c in again.candidates] == [c.arch for c in tight.candidates]
    endless = model.search(ds, top=12, seed=0, train_budget=1e12, **fixed)
    votes = [c.extra["vote"] for c in endless.candidates]
    # the vote's order (equal votes, to rounding: cheapest first)
    assert all(a >= b - 1e-9 for a, b in zip(votes, votes[1:], strict=False))
    assert {c.arch for c in endless.candidates} == {c.arch for c in tight.candidates}
    # cells with convolutions that never reach the output are not ranked for a budget
    assert not any(any(dead_edges(c.arch).values()) for c in tight.candidates)
    assert model.search(ds, top=3, seed=0).details["train_budget"] is None
    # past the budget shortlist: in the network's order, scored at the shortlist's floor
    longer = model.search(ds, top=15, seed=0, train_budget=5.0, **fixed)
    scores = [c.score for c in longer.candidates]
    assert scores == sorted(scores, reverse=True) and len(set(scores[11:])) == 1
    assert "epochs" not in longer.candidates[-1].extra


def test_cheap_cells_are_the_cheapest_of_the_networks_best_share():
    scores = np.random.default_rng(0).normal(size=SPACE_SIZE)
    best = NB201Arch.from_index(int(np.argmax(scores)))
    got = cheap_cells(scores, share=0.02, n=8, resolution=32, exclude={best.canonical_form})
    top = {int(i) for i in np.argsort(-scores)[:round(0.02 * SPACE_SIZE)]}
    archs = [NB201Arch.from_string(c.arch) for c in got]
    assert len(got) == 8 and all(a.index in top for a in archs)
    assert all(a.is_connected and "dead" not in a.edge_roles for a in archs)
    assert len({a.canonical_form for a in archs}) == 8 and best.canonical_form not in {
        a.canonical_form for a in archs}
    costs = [relative_step_cost(a, 32) for a in archs]
    assert costs == sorted(costs)
    assert all(c.score == pytest.approx(scores[a.index]) for c, a in zip(got, archs, strict=True))
    # every valid cell of the share that was left out costs at least as much as the dearest kept
    kept = {a.canonical_form for a in archs} | {best.canonical_form}
    rest = [NB201Arch.from_index(i) for i in top]
    assert all(relative_step_cost(a, 32) >= costs[-1] for a in rest
               if a.is_connected and "dead" not in a.edge_roles and a.canonical_form not in kept)


def test_train_budget_shortlist_takes_cheap_cells_of_the_networks_best(model):
    ds = load_dataset("digits")
    fixed = {"budget_shortlist": 6, "budget_step_seconds": 0.02, "budget_tolerance": 0.0}
    plain = model.search(ds, top=40, seed=0, train_budget=5.0, budget_cheap=0, **fixed)
    wide = model.search(ds, top=40, seed=0, train_budget=5.0, budget_cheap=6, **fixed)
    cheap = wide.details["train_budget"]["cheap_cells"]
    assert plain.details["train_budget"]["cheap_cells"] == [] and len(cheap) == 6
    # drawn from the network's best 2% of all cells, none of them already shortlisted
    features = model.encode_features(wide.details["meta_features"],
                                     model.target_fidelity(wide.details["fidelity"]))
    best = set(np.argsort(-model.score_all(features))[:round(0.02 * SPACE_SIZE)].tolist())
    assert all(NB201Arch.from_string(a).index in best for a in cheap)
    shortlist = {NB201Arch.from_string(c.arch).canonical_form for c in plain.candidates[:6]}
    assert not shortlist & {NB201Arch.from_string(a).canonical_form for a in cheap}
    ranked = [c for c in wide.candidates if "epochs" in c.extra]
    assert len(ranked) == 12 and {c.arch for c in ranked} >= set(cheap)
    assert len({NB201Arch.from_string(c.arch).canonical_form for c in wide.candidates}) == len(
        wide.candidates)
    # a tight budget with no weight on the vote: the pick is the cheapest cell voted on
    side = fit_resolution(ds.image_size)
    cost = [relative_step_cost(c.arch, side) for c in ranked]
    assert relative_step_cost(wide.candidates[0].arch, side) == min(cost)
    assert min(cost) <= min(relative_step_cost(c.arch, side) for c in plain.candidates[:6])
    # the cells voted on, and so the pick, do not depend on how many candidates are returned
    one = model.search(ds, top=1, seed=0, train_budget=5.0, budget_cheap=6, **fixed)
    assert one.details["train_budget"]["cheap_cells"] == cheap
    assert one.candidates[0].arch == wide.candidates[0].arch


def test_epoch_order_keeps_grouped_tasks_together_and_otherwise_is_a_plain_permutation():
    import torch

    from metanas.methods.value_net.model import epoch_order

    tasks = torch.tensor([2, 0, 1, 2, 0, 2, 1, 1, 0, 2])
    grouped = torch.tensor([True, False, True])
    order = epoch_order(tasks, grouped, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(10))
    seq = tasks[order].tolist()
    for t in (0, 2):  # each grouped task's evaluations are one block
        at = [i for i, x in enumerate(seq) if x == t]
        assert at == list(range(at[0], at[0] + len(at)))
    plain = epoch_order(tasks, torch.zeros(3, dtype=torch.bool), torch.Generator().manual_seed(3))
    assert plain.tolist() == torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()


def test_task_grouped_batches_let_small_tasks_teach_their_ranking():
    """A big task (3,000 evaluations, its own random order) and 60 small tasks of another kind
    (4 evaluations each) that all rank four cells the same way. Drawn uniformly, two
    evaluations of one small task rarely share a batch, so the rank loss hardly sees them;
    grouped by task it does, and the network learns their order."""
    from metanas.methods.value_net.data import TrainingData
    from metanas.methods.value_net.model import ValueNetConfig

    rng = np.random.default_rng(0)
    small_cells = [NB201Arch.from_index(i) for i in (11, 2024, 7777, 15000)]
    big_cells = [NB201Arch.from_index(int(i)) for i in rng.integers(0, SPACE_SIZE, 3000)]
    features = np.concatenate([[[0.0, 0.0]], np.c_[np.ones(60), rng.normal(0, 0.1, 60)]])
    task_index = np.r_[np.zeros(3000, int), np.repeat(np.arange(1, 61), 4)]
    archs = np.stack([a.one_hot() for a in big_cells + small_cells * 60]).astype(np.float32)
    small_target = np.array([1.5, 0.5, -0.5, -1.5])  # z-scores: cell 0 best
    target = np.r_[rng.normal(0, 1, 3000), np.tile(small_target, 60)].astype(np.float32)
    data = TrainingData(task_keys=[f"t{i}" for i in range(61)], features=features,
                        task_index=task_index, archs=archs, target=target, accuracy=target,
                        resolutions=[16])
    data.task_sources = ["table"] + ["small"] * 60
    model = ValueNetMethod.fit(data, ValueNetConfig(epochs=30, seed=0,
                                                    group_sources="table, small"))
    scores = model.score(model.encode_vector(np.array([1.0, 0.0])), small_cells)
    assert list(np.argsort(-scores)) == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="no meta-training task comes from smal "):
        ValueNetMethod.fit(data, ValueNetConfig(epochs=1, group_sources="smal"))


def test_a_dataset_in_a_neighbour_sources_regime_is_searched_by_its_measured_cells(
        synthetic_kb, tmp_path):
    """Six tasks of a "regime" source whose meta-features are digits' own all measure cell X
    best. Kept as neighbours (not trained on), they decide digits' search; a dataset whose
    nearest tasks are the network's own is searched by the network as before."""
    import shutil

    from metanas.api import as_dataset
    from metanas.features.metafeatures import compute_meta_features, feature_vector
    from metanas.methods.value_net.regime import find_regime
    from metanas.tasks import make_task

    digits = as_dataset("digits")
    path = tmp_path / "kb.db"
    shutil.copyfile(synthetic_kb, path)
    with KnowledgeBase(path, readonly=True) as kb:
        plain = ValueNetMethod.meta_train(kb, epochs=5, seed=0)
    task = make_task(digits, resolution=plain.task_resolution(digits), max_train_per_class=500,
                     seed=0, max_test_per_class=1)
    feats = compute_meta_features(task, seed=0)
    best = NB201Arch.from_ops(["avg_pool_3x3", "none", "nor_conv_1x1", "none", "none",
                               "skip_connect"])
    rng = np.random.default_rng(1)
    with KnowledgeBase(path) as kb:
        for t in range(6):
            tid = kb.add_task(f"regime{t}", name=f"regime-{t}", source="regime", resolution=16,
                              meta_features=feats)
            cells = [best] + [NB201Arch.sample(rng) for _ in range(9)]
            for i, arch in enumerate(cells):
                aid = kb.add_architecture(arch.to_string(), canonical=arch.canonical_hash())
                acc = 0.9 if i == 0 else 0.3 + 0.01 * i
                kb.add_evaluation(tid, aid, recipe="synthetic", recipe_hash="s", seed=0,
                                  metrics={"val_acc": acc, "test_acc": acc})
    with KnowledgeBase(path, readonly=True) as kb:
        model = ValueNetMethod.meta_train(kb, epochs=5, seed=0, neighbour_sources="regime")
        with pytest.raises(ConfigError, match="no task of 'nowhere'"):
            ValueNetMethod.meta_train(kb, epochs=1, neighbour_sources="nowhere")
    assert model.info["tasks"] == plain.info["tasks"] == 24  # the neighbours are not trained on
    model.save(tmp_path / "vn.safetensors")
    model = ValueNetMethod.load(tmp_path / "vn.safetensors")
    res = model.search(digits, top=3, rerank="")
    assert res.details["regime"]["source"] == "regime" and len(res.details["regime"]["tasks"]) == 5
    assert res.architecture == best.to_string()
    assert model.search(digits, top=3, rerank="", regime_k=0).details["regime"] is None
    budget = model.search(digits, top=3, train_budget=30, budget_step_seconds=0.01)
    assert budget.details["mode"] == "regime" and budget.details["train_budget"]["cheap_cells"] == []
    assert plain.search(digits, top=3, rerank="").details["regime"] is None
    # a dataset near the network's own tasks: no regime
    own = model.standardize(feature_vector(_features(0.5)))
    assert find_regime(model.info, own, 5) is None


def _regime_info(sources_of_neighbours, network_points=((0.0, 0.0),)):
    """Stored regime data in two dimensions: network tasks at ``network_points``, one
    neighbour per entry of ``sources_of_neighbours`` at (10 + i, 0)."""
    a, b = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|",
            "|avg_pool_3x3~0|+|avg_pool_3x3~0|none~1|+|none~0|none~1|skip_connect~2|")
    return {"regime": {"network_tasks": [list(p) for p in network_points], "neighbours": [
        {"name": f"n{i}", "source": s, "x": [10.0 + i, 0.0], "cells": {a: 1.0, b: -1.0}}
        for i, s in enumerate(sources_of_neighbours)]}}


def test_find_regime_needs_a_majority_of_one_neighbour_source_and_pools_evidence():
    from metanas.methods.value_net.regime import find_regime

    info = _regime_info(["r", "r", "q"], network_points=[(9.0, 0.0), (8.0, 0.0)])
    target = np.array([10.0, 0.0])
    regime = find_regime(info, target, 3)  # nearest: n0 (r), n1 (r), the net task at 9
    assert regime.source == "r" and regime.tasks == ["n0", "n1"] and regime.k == 3
    best = next(iter(regime.evidence))
    assert best.startswith("|nor_conv_3x3") and regime.evidence[best] == pytest.approx(2 / 3)
    assert find_regime(info, target, 5) is None  # r has 2 of 5: no majority
    assert find_regime(info, np.array([8.0, 0.0]), 3) is None  # the network's own tasks
    assert find_regime({}, target, 3) is None


@pytest.mark.parametrize("damage", [
    lambda r: r.update(neighbours=5),
    lambda r: r["neighbours"][0].pop("cells"),
    lambda r: r["neighbours"][0].update(cells={"|bogus~0|": 1.0}),
    lambda r: r["neighbours"][0].update(cells={}),
    lambda r: r["neighbours"][0].update(x=[float("nan"), 0.0]),
    lambda r: r["neighbours"][0]["cells"].update({next(iter(r["neighbours"][0]["cells"])): "x"}),
    lambda r: r.update(network_tasks=[[0.0, 0.0, 0.0]]),
])
def test_damaged_regime_data_is_one_checkpoint_error(damage):
    from metanas.methods.value_net.regime import check_regime

    info = _regime_info(["r"])
    check_regime(info, 2, "ck.safetensors")  # intact: fine
    damage(info["regime"])
    with pytest.raises(CheckpointError, match=r"^ck.safetensors: malformed regime data"):
        check_regime(info, 2, "ck.safetensors")


def _tensors_and_meta(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()  # noqa: SIM118


@pytest.fixture(scope="module")
def ensemble(synthetic_kb) -> ValueNetMethod:
    with KnowledgeBase(synthetic_kb, readonly=True) as kb:
        return ValueNetMethod.meta_train(kb, epochs=40, seed=3, ensemble=3)


def test_an_ensemble_is_the_mean_of_the_networks_its_seeds_train_alone(ensemble, synthetic_kb):
    """Member i is exactly the network meta-training with seed + i trains on its own, and the
    ensemble (batched in eval mode) scores their mean, also during the gradient search."""
    import torch

    with KnowledgeBase(synthetic_kb, readonly=True) as kb:
        alone = [ValueNetMethod.meta_train(kb, epochs=40, seed=3 + i) for i in range(3)]
    members = ensemble.net.members
    assert len(members) == 3 and ensemble.config.ensemble == 3
    for member, single in zip(members, alone, strict=True):
        for (k, v), w in zip(member.state_dict().items(), single.net.state_dict().values(),
                             strict=True):
            assert torch.equal(v, w), k
    archs = [NB201Arch.sample(i) for i in range(50)]
    mean = np.mean([m.score(_features(0.7), archs) for m in alone], axis=0)
    np.testing.assert_allclose(ensemble.score(_features(0.7), archs), mean, atol=1e-5)
    f = ensemble.encode_features(_features(0.7))
    soft = torch.softmax(torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(0)), -1)
    soft.requires_grad_(True)
    (grad,) = torch.autograd.grad(ensemble.net(f.expand(4, -1), soft).sum(), soft)
    loop = torch.stack([m(f.expand(4, -1), soft) for m in members]).mean(0).sum()
    (want,) = torch.autograd.grad(loop, soft)
    torch.testing.assert_close(grad, want, atol=1e-5, rtol=1e-4)
    # weights written in place, replaced, converted, copied: the next call sees them
    before = ensemble.score(_features(0.7), archs)
    saved = copy.deepcopy(ensemble.net.state_dict())
    try:
        with torch.no_grad():
            members[1].base[2].bias.add_(3.0)
        np.testing.assert_allclose(ensemble.score(_features(0.7), archs), before + 1.0,
                                   atol=1e-5)
        shifted = {k: v + 3.0 if k == "members.2.base.2.bias" else v
                   for k, v in saved.items()}
        ensemble.net.load_state_dict(shifted, assign=True)
        np.testing.assert_allclose(ensemble.score(_features(0.7), archs), before + 1.0,
                                   atol=1e-5)
        twin = copy.deepcopy(ensemble.net)
        assert twin._stacked is None
        members[2].base[2].bias.data = members[2].base[2].bias.data - 3.0
        np.testing.assert_allclose(ensemble.score(_features(0.7), archs), before, atol=1e-5)
        doubled = twin.double()
        onehots = torch.as_tensor(np.stack([a.one_hot() for a in archs]), dtype=torch.float64)
        np.testing.assert_allclose(doubled(f.double().expand(len(archs), -1), onehots).numpy(),
                                   before + 1.0, atol=1e-5)
        members[0].train()  # one member in train mode: no batched path (dropout is per member)
        assert ensemble.net(f.expand(3, -1), soft.detach()[:3]).shape == (3,)
    finally:
        members[0].eval()
        ensemble.net.load_state_dict(saved)
    np.testing.assert_array_equal(ensemble.score(_features(0.7), archs), before)


def test_ensemble_checkpoint_round_trip_and_damage(ensemble, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "ens.safetensors"
    ensemble.save(path)
    loaded = ValueNetMethod.load(path)
    archs = [NB201Arch.sample(i) for i in range(30)]
    np.testing.assert_allclose(loaded.score(_features(0.2), archs),
                               ensemble.score(_features(0.2), archs), atol=1e-6)
    ds = load_dataset("digits")
    assert ([c.arch for c in loaded.search(ds, top=3, seed=0, rerank="").candidates]
            == [c.arch for c in ensemble.search(ds, top=3, seed=0, rerank="").candidates])
    tensors, meta = _tensors_and_meta(path)
    assert meta["format"] == "metanas.value-net/2"
    bad = tmp_path / "bad.safetensors"
    missing = {k: v for k, v in tensors.items() if not k.startswith("net.members.2.")}
    save_file(missing, str(bad), metadata=meta)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors.*no tensor net\.members\.2\."):
        ValueNetMethod.load(bad)
    config = json.loads(meta["config"])
    for members, match in ((10**6, "ensemble must be <= 64"), (0, "ensemble must be >= 1"),
                           (2, "unexpected tensor net.members.2")):
        save_file(tensors, str(bad),
                  metadata={**meta, "config": json.dumps({**config, "ensemble": members})})
        with pytest.raises(CheckpointError, match=match):
            ValueNetMethod.load(bad)


def _saved(path, method):
    method.save(path)
    return path


def test_single_network_checkpoints_of_format_1_still_load(model, ensemble, tmp_path):
    """Checkpoints written before ensembles (format /1, no ``ensemble`` in the config)."""
    from safetensors.torch import save_file

    path = tmp_path / "vn.safetensors"
    model.save(path)
    tensors, meta = _tensors_and_meta(path)
    config = json.loads(meta["config"])
    del config["ensemble"]
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={**meta, "format": "metanas.value-net/1",
                                           "config": json.dumps(config)})
    loaded = ValueNetMethod.load(old)
    assert loaded.config.ensemble == 1
    archs = [NB201Arch.sample(i) for i in range(20)]
    np.testing.assert_allclose(loaded.score(_features(0.3), archs),
                               model.score(_features(0.3), archs), atol=1e-6)
    ens_tensors, ens_meta = _tensors_and_meta(_saved(tmp_path / "e.safetensors", ensemble))
    save_file(ens_tensors, str(old), metadata={**ens_meta, "format": "metanas.value-net/1"})
    with pytest.raises(CheckpointError, match="holds one network, its config declares an "
                                              "ensemble of 3"):
        ValueNetMethod.load(old)
    save_file(tensors, str(old), metadata={**meta, "format": "metanas.value-net/9"})
    with pytest.raises(CheckpointError, match="expected 'metanas.value-net/2'"):
        ValueNetMethod.load(old)
