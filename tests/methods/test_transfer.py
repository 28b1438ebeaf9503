"""Transfer methods on a tiny real knowledge base: 4 digit-class tasks x 5 cells.

The accuracies are inserted by hand so the expected answers are known: task ``t``'s best cell
is cell ``t`` and cell 4 is second everywhere (so it has the best mean z-score). The tasks are
rebuilt from their stored spec on the builtin ``digits`` dataset, so the Fisher embedding is
the real one.
"""

from __future__ import annotations

import numpy as np
import pytest

from metanas.data import from_arrays, load_dataset
from metanas.errors import CheckpointError, ConfigError, DatasetError, KnowledgeBaseError
from metanas.kb import KnowledgeBase
from metanas.methods.interface import Budget
from metanas.methods.registry import create_method
from metanas.methods.transfer import (
    FisherNearest,
    GlobalPrior,
    NearestBest,
    resolve_source,
    seed_distance,
)
from metanas.spaces.nb201 import NB201Arch
from metanas.tasks import TaskSpec, make_task

GROUPS = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (1, 4, 7)]
CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|avg_pool_3x3~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
]
PROBE = {"probe_steps": 30, "probe_samples": 64}


def accuracy(task: int, cell: int) -> float:
    if cell == task:
        return 0.9
    return 0.8 if cell == 4 else 0.5 + 0.01 * cell


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def kb_path(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("kb") / "digits.db"
    with KnowledgeBase(path) as kb:
        for t, classes in enumerate(GROUPS):
            spec = TaskSpec(classes=classes, resolution=8, max_train_per_class=60, seed=0)
            task = make_task(digits, spec)
            tid = kb.add_task(task.key, name=f"digits-{t}", source="digits",
                              fingerprint=digits.fingerprint, classes=list(classes),
                              resolution=8, channels=1, num_classes=len(classes),
                              sizes={"train": len(task.y_train), "val": len(task.y_val),
                                     "test": len(task.y_test)}, spec=spec.to_dict())
            for c, arch in enumerate(CELLS):
                aid = kb.add_architecture(arch, canonical=NB201Arch.from_string(arch)
                                          .canonical_hash())
                acc = accuracy(t, c)
                kb.add_evaluation(tid, aid, recipe="manual", recipe_hash="m", seed=0,
                                  metrics={"val_acc": acc, "test_acc": acc})
    return path


@pytest.fixture(scope="module")
def trained(kb_path, tmp_path_factory):
    """The three methods meta-trained once; the embeddings are computed once (cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METANAS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        with KnowledgeBase(kb_path, readonly=True) as kb:
            return {cls.name: cls.meta_train(kb, **PROBE)
                    for cls in (NearestBest, FisherNearest, GlobalPrior)}


def query(digits, classes, seed=1):
    """The classes as a new dataset, with its own train/test split (other images)."""
    m, mt = np.isin(digits.y_train, classes), np.isin(digits.y_test, classes)
    x = np.concatenate([digits.x_train[m], digits.x_test[mt]])
    y = np.concatenate([digits.y_train[m], digits.y_test[mt]])
    return from_arrays(x, y, seed=seed, name=f"query-{'-'.join(map(str, classes))}")


@pytest.mark.slow
def test_global_prior_returns_the_best_mean_z_score(trained, digits):
    acc = np.array([[accuracy(t, c) for c in range(len(CELLS))] for t in range(len(GROUPS))])
    z = (acc - acc.mean(1, keepdims=True)) / acc.std(1, keepdims=True)
    res = trained["global-prior"].search(digits, top=3)
    assert res.architecture == CELLS[int(np.argmax(z.mean(0)))] == CELLS[4]
    assert [c.score for c in res.candidates] == sorted((c.score for c in res.candidates),
                                                       reverse=True)
    with pytest.raises(ConfigError, match="budget"):
        trained["global-prior"].search(digits, budget=Budget(seconds=5))


@pytest.mark.slow
@pytest.mark.parametrize("target", [1, 2])
def test_nearest_best_returns_the_best_cell_of_the_task_with_the_same_classes(
        trained, digits, target):
    res = trained["nearest-best"].search(query(digits, GROUPS[target]), top=3)
    neighbours = res.details["neighbours"]
    assert neighbours[0]["task"] == f"digits-{target}"
    assert [n["distance"] for n in neighbours] == sorted(n["distance"] for n in neighbours)
    assert res.architecture == CELLS[target]
    assert res.candidates[1].arch == CELLS[4]  # the task's runner-up
    assert res.search_seconds >= res.timings["embedding_seconds"] > 0


@pytest.mark.slow
def test_fisher_nearest_trains_within_budget_near_the_seed_cells(trained, digits):
    method = trained["fisher-nearest"]
    res = method.search(query(digits, GROUPS[1]), seed=0, budget=Budget(evaluations=2), k=2,
                        cells_per_task=1, radius=1, recipe="cpu-tiny[epochs=1]",
                        max_train_per_class=30)
    assert res.timings["evaluations"] == 2
    seeds = [NB201Arch.from_string(a) for a in res.details["seed_cells"]]
    assert res.details["seed_cells"][0] == CELLS[1]  # the nearest task's best cell first
    assert res.details["neighbours"][0]["task"] == "digits-1"
    for arch in res.details["history"]:
        assert seed_distance(NB201Arch.from_string(arch), seeds) <= 1
    assert res.search_seconds >= res.timings["embedding_seconds"] > 0
    assert all(0 <= c.score <= 1 for c in res.candidates)
    # the instance's own settings are restored after a search with overrides
    assert method.recipe.name == "cpu-proxy" and method.max_train_per_class == 500


@pytest.mark.slow
def test_fisher_nearest_local_search_stays_in_the_neighbourhood(trained):
    method = trained["fisher-nearest"]
    method._seed_cells = [NB201Arch.from_string(CELLS[0])]
    method._radius, method._tournament = 2, (3, 2)
    rng = np.random.default_rng(0)
    from metanas.methods.interface import Candidate

    history: list[Candidate] = []
    gen = method.propose(rng, history)
    for i in range(40):
        arch = next(gen)
        assert seed_distance(arch, method._seed_cells) <= 2
        history.append(Candidate(arch.to_string(), float(i % 7)))


@pytest.mark.slow
def test_save_load_round_trip_and_registry(trained, digits, tmp_path):
    for name, method in trained.items():
        path = tmp_path / f"{name}.safetensors"
        method.save(path)
        loaded = create_method(name, checkpoint=path)
        assert type(loaded) is type(method)
        assert loaded.tasks == method.tasks and loaded.prior == method.prior
        if name != "fisher-nearest":
            a = method.search(query(digits, GROUPS[0]), top=3).to_dict()
            b = loaded.search(query(digits, GROUPS[0]), top=3).to_dict()
            assert a["candidates"] == b["candidates"]
    # the registry hands the recipe to the one transfer method that trains candidates
    fn = create_method("fisher-nearest", checkpoint=tmp_path / "fisher-nearest.safetensors",
                       recipe="cpu-tiny")
    assert fn.recipe.name == "cpu-tiny"
    # one format for the three; only the Fisher methods need the embeddings
    with pytest.raises(CheckpointError, match="no Fisher task embeddings.*global-prior"):
        NearestBest.load(tmp_path / "global-prior.safetensors")
    prior = GlobalPrior.load(tmp_path / "fisher-nearest.safetensors")
    assert prior.prior == trained["global-prior"].prior
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        FisherNearest.load(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        GlobalPrior.load(tmp_path / "missing.safetensors")


def test_meta_train_reports_a_missing_source_and_unknown_options(kb_path, tmp_path):
    row = {"name": "t", "source": "no-such-dataset"}
    with pytest.raises(DatasetError, match="no-such-dataset.*source=PATH"):
        resolve_source(row, tmp_path)
    with pytest.raises(DatasetError, match="no such file"):
        resolve_source(row, tmp_path / "nothing.npz")
    with KnowledgeBase(kb_path, readonly=True) as kb, pytest.raises(ConfigError, match="bogus"):
        GlobalPrior.meta_train(kb, bogus=1)
    with KnowledgeBase(kb_path, readonly=True) as kb:  # its only source left out: nothing left
        assert GlobalPrior.meta_train(kb, exclude_sources="other").info["tasks"] == 4
        with pytest.raises(KnowledgeBaseError, match="no evaluations"):
            GlobalPrior.meta_train(kb, exclude_sources=" other, digits ")


def test_global_prior_can_average_over_the_tasks_of_the_matching_resolution(tmp_path, digits):
    """Three 8 px tasks prefer CELLS[0], two 16 px tasks CELLS[1]: the all-task prior is
    CELLS[0]; with resolution=match an 8 px dataset gets CELLS[0] and a 16 px one CELLS[1]."""
    path = _two_resolution_kb(tmp_path / "two-res.db", digits)
    with KnowledgeBase(path, readonly=True) as kb:
        method = GlobalPrior.meta_train(kb)
    method.save(tmp_path / "gp.safetensors")
    method = GlobalPrior.load(tmp_path / "gp.safetensors")
    rng = np.random.default_rng(0)
    big = from_arrays(rng.random((40, 16, 16)), np.repeat([0, 1], 20), name="sixteen-px")
    assert method.search(digits).architecture == CELLS[0]
    assert method.search(big).architecture == CELLS[0]
    assert method.search(digits, resolution="match").architecture == CELLS[0]
    res = method.search(big, resolution="match")
    assert res.architecture == CELLS[1] and res.details["resolution"] == 16
    with pytest.raises(ConfigError, match="must be one of all, match"):
        method.search(digits, resolution="nearest")
    method.info.pop("prior_by_resolution")
    with pytest.raises(CheckpointError, match="meta-train it again"):
        method.search(big, resolution="match")


def test_prior_exclude_sources_leaves_a_source_out_of_the_prior_only(tmp_path, digits):
    """The 16 px tasks come from a second source: left out of the prior, the 8 px tasks'
    cell leads at every resolution; the tasks stay in the checkpoint (the nearest methods')."""
    path = _two_resolution_kb(tmp_path / "two-src.db", digits, sources=("digits", "other"))
    with KnowledgeBase(path, readonly=True) as kb:
        kept = GlobalPrior.meta_train(kb, prior_exclude_sources="digits")
        dropped = GlobalPrior.meta_train(kb, prior_exclude_sources="other")
    assert kept.prior[0][0] == CELLS[1] and dropped.prior[0][0] == CELLS[0]
    assert kept.info["tasks"] == dropped.info["tasks"] == 5
    assert set(dropped.info["prior_by_resolution"]) == {"8"}
    with KnowledgeBase(path, readonly=True) as kb, pytest.raises(ConfigError, match="no task"):
        GlobalPrior.meta_train(kb, prior_exclude_sources="digits,other")


def _two_resolution_kb(path, digits, sources=("digits", "digits")):
    """Three 8 px tasks (of ``sources[0]``) prefer CELLS[0], two 16 px ones (``sources[1]``)
    CELLS[1]."""
    with KnowledgeBase(path) as kb:
        for t, res in enumerate((8, 8, 8, 16, 16)):
            spec = TaskSpec(classes=(t, t + 1), resolution=res, max_train_per_class=20, seed=t)
            tid = kb.add_task(f"task-{t}", name=f"t{t}", source=sources[res == 16],
                              fingerprint=digits.fingerprint, classes=[t, t + 1],
                              resolution=res, channels=1, num_classes=2,
                              sizes={"train": 30, "val": 10, "test": 10}, spec=spec.to_dict())
            for c, arch in enumerate(CELLS[:3]):
                aid = kb.add_architecture(arch, canonical=NB201Arch.from_string(arch)
                                          .canonical_hash())
                best = 0 if res == 8 else 1
                acc = 0.9 if c == best else 0.5 + 0.01 * c + 0.01 * t
                kb.add_evaluation(tid, aid, recipe="manual", recipe_hash="m", seed=0,
                                  metrics={"val_acc": acc, "test_acc": acc})
    return path


def test_global_prior_lets_each_source_vote_once():
    """Thirty tasks of a big source prefer cell 1, one dense task of another prefers cell 2: pooled,
    the big source decides; by source vote each counts once, and cell 2 (second in the big
    source, first in the other) wins. One source: the pooled prior, unchanged."""
    from metanas.kb.views import top_architectures
    from metanas.methods.transfer import TransferConfig, _prior

    a, b, c = CELLS[:3]
    table = {f"big{i}": {a: 0.9, b: 0.8, c: 0.1} for i in range(30)}
    table["dense"] = {a: 0.1, b: 0.9, c: 0.5, CELLS[3]: 0.5, CELLS[4]: 0.5}
    sources = {k: ("big" if k.startswith("big") else "table") for k in table}
    config = TransferConfig()
    pooled, _, _ = _prior(table, config)
    assert pooled[0][0] == a
    voted, min_tasks, _ = _prior(table, config, sources)
    assert voted[0][0] == b and min_tasks == 1
    assert voted[0][2] == 31  # tasks that measured it, over both sources
    one = {k: v for k, v in table.items() if k.startswith("big")}
    assert _prior(one, config, sources)[0] == top_architectures(one, 50, min_tasks=8)
    # a source of one-cell tasks has no z-scores: no voter, the one-source prior stands
    one["single"] = {c: 0.5}
    assert _prior(one, config, {**sources, "single": "sparse"})[0] == _prior(one, config)[0]
