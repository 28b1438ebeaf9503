from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import metanas
from metanas.data import from_arrays, load_dataset
from metanas.errors import CheckpointError, ConfigError, DatasetError, KnowledgeBaseError
from metanas.kb import KnowledgeBase
from metanas.methods.metad2a import FeatureExtractor, MetaD2AConfig, MetaD2AMethod, SmallResNet
from metanas.methods.metad2a.extractor import ExtractorConfig
from metanas.methods.metad2a.training import new_generator, new_predictor
from metanas.methods.metad2a.validation import cross_validate
from metanas.spaces.nb201 import SPACE_SIZE, NB201Arch

from .conftest import TINY, stats_extractor


def tiny_resnet() -> SmallResNet:
    """A random-weight built-in extractor: cheap, and its checkpoint path is the shipped one."""
    torch.manual_seed(0)
    return SmallResNet(ExtractorConfig(widths=(8, 16), input_size=16)).eval()


@pytest.fixture(scope="module")
def model(image_kb, image_source) -> MetaD2AMethod:
    with KnowledgeBase(image_kb, readonly=True) as kb:
        return MetaD2AMethod.meta_train(kb, source=image_source, extractor=tiny_resnet(),
                                        cache=False, seed=0, **TINY)


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "metad2a.safetensors"
    model.save(path)
    return str(path)


def test_predictor_ranks_held_out_tasks(model):
    """Held-out tasks (never seen in training) are ranked far better than random (0)."""
    held = model.info["predictor"]["holdout"]
    assert len(held["per_task"]) >= 4
    assert held["summary"]["spearman_mean"] > 0.5
    assert held["summary"]["kendall_mean"] > 0.35
    assert {"pearson", "spearman", "kendall", "top1_regret"} <= set(held["per_task"][0])
    assert 0.0 <= model.info["generator_holdout"]["novelty"] <= 1.0


def test_search_through_api_returns_unique_valid_cells(checkpoint):
    result = metanas.search("digits", method="metad2a", checkpoint=checkpoint, top=7, seed=0,
                            options={"candidates": 40, "resamples": 3})
    archs = [NB201Arch.from_string(c.arch) for c in result.candidates]
    assert len(archs) == 7
    assert len({a.canonical_form for a in archs}) == 7
    assert all(a.is_connected for a in archs)
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)
    assert result.details["generation"]["unique"] == 40
    assert set(result.timings) == {"encode_seconds", "generate_seconds", "rank_seconds",
                                   "rerank_seconds"}
    again = metanas.search("digits", method="metad2a", checkpoint=checkpoint, top=7, seed=0,
                           options={"candidates": 40, "resamples": 3})
    assert [c.arch for c in again.candidates] == [c.arch for c in result.candidates]


def test_exhaustive_scores_agree_with_generate_mode(model):
    ds = load_dataset("digits")
    plain = {"pruned": False, "rerank": ""}
    gen = model.search(ds, top=15, seed=1, candidates=30, resamples=4, **plain)
    every = model.score_all(ds, seed=1, resamples=4)
    assert every.shape == (SPACE_SIZE,)
    for c in gen.candidates:
        assert c.score == pytest.approx(every[NB201Arch.from_string(c.arch).index], abs=1e-4)
    ex = model.search(ds, top=5, seed=1, resamples=4, mode="exhaustive", **plain)
    assert ex.details["scored"] == SPACE_SIZE
    connected = [a.index for a in NB201Arch.enumerate_all() if a.is_connected]
    assert ex.candidates[0].score == pytest.approx(every[connected].max(), abs=1e-5)
    assert ex.candidates[0].score >= gen.candidates[0].score - 1e-5


def test_cells_are_scored_by_their_pruned_form(model):
    ds = load_dataset("digits")
    every = model.score_all(ds, seed=1, resamples=4)
    for mode in ("generate", "exhaustive"):
        res = model.search(ds, top=10, seed=1, candidates=30, resamples=4, mode=mode,
                           rerank="")
        assert res.details["pruned"] is True
        for c in res.candidates:
            pruned = NB201Arch.from_string(c.arch).pruned()
            assert c.score == pytest.approx(every[pruned.index], abs=1e-4)


def test_proxies_re_rank_the_predictors_shortlist(model):
    ds = load_dataset("digits")
    plain = model.search(ds, top=6, seed=0, candidates=30, resamples=2, rerank="")
    voted = model.search(ds, top=6, seed=0, candidates=30, resamples=2, rerank="nwot",
                         shortlist=4)
    assert voted.details["rerank"] == ["nwot"] and "rerank_seconds" in voted.timings
    head = [c.arch for c in plain.candidates]
    assert sorted(c.arch for c in voted.candidates[:4]) == sorted(head[:4])
    assert [c.arch for c in voted.candidates[4:]] == head[4:]
    assert all(np.isfinite(c.extra["nwot"]) for c in voted.candidates[:4])
    scores = [c.score for c in voted.candidates[:4]]
    assert scores == sorted(scores, reverse=True)
    # the best by both the predictor and nwot wins the vote
    best_nwot = max(voted.candidates[:4], key=lambda c: c.extra["nwot"]).arch
    if best_nwot == head[0]:
        assert voted.candidates[0].arch == head[0]
    # rerank_batch reaches the proxies: nwot's kernel is batch x batch
    small = model.search(ds, top=6, seed=0, candidates=30, resamples=2, rerank="nwot",
                         shortlist=4, rerank_batch=8)
    nwot = {c.arch: c.extra["nwot"] for c in voted.candidates[:4]}
    assert all(c.extra["nwot"] != pytest.approx(nwot[c.arch]) for c in small.candidates[:4])
    constant = from_arrays(np.full((40, 8, 8), 7, np.uint8),
                                        np.repeat(np.arange(4), 10), name="constant")
    flat = model.search(constant, top=3, seed=0, candidates=20, resamples=2)
    assert flat.details["rerank"] == [] and flat.details["rerank_skipped"]
    assert len(flat.candidates) == 3


def test_checkpoint_round_trip_gives_identical_predictions(model, checkpoint):
    loaded = MetaD2AMethod.load(checkpoint)
    ds = load_dataset("digits")
    archs = [NB201Arch.sample(i) for i in range(25)]
    np.testing.assert_array_equal(loaded.score_cells(ds, archs, seed=2, resamples=3),
                                  model.score_cells(ds, archs, seed=2, resamples=3))
    a = loaded.search(ds, top=5, seed=0, candidates=20, resamples=2)
    b = model.search(ds, top=5, seed=0, candidates=20, resamples=2)
    assert [(c.arch, c.score) for c in a.candidates] == [(c.arch, c.score) for c in b.candidates]
    assert loaded.config == model.config


def test_custom_extractor_checkpoint_needs_the_extractor(tmp_path):
    config = MetaD2AConfig(**{k: v for k, v in TINY.items()})
    ext = stats_extractor()
    torch.manual_seed(0)
    m = MetaD2AMethod(new_generator(ext.dim, config), new_predictor(ext.dim, config), ext,
                      config, {"resolutions": [16]})
    path = tmp_path / "custom.safetensors"
    m.save(path)
    with pytest.raises(CheckpointError, match="custom feature extractor"):
        MetaD2AMethod.load(path)
    loaded = MetaD2AMethod.load(path, extractor=stats_extractor())
    ds = load_dataset("digits")
    archs = [NB201Arch.sample(i) for i in range(5)]
    np.testing.assert_array_equal(loaded.score_cells(ds, archs), m.score_cells(ds, archs))
    wrong = FeatureExtractor(lambda x: x.mean((2, 3)), name="rgb-means")  # 3-d, not 8-d
    with pytest.raises(CheckpointError, match="8-d"):
        MetaD2AMethod.load(path, extractor=wrong)


def test_bad_checkpoints_raise_checkpoint_error(tmp_path, model):
    with pytest.raises(CheckpointError, match="does not exist"):
        MetaD2AMethod.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        MetaD2AMethod.load(junk)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "metanas.value-net/1"})
    with pytest.raises(CheckpointError, match="not a MetaD2A checkpoint"):
        MetaD2AMethod.load(other)
    broken = tmp_path / "broken.safetensors"
    model.save(broken)
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(broken), framework="pt") as fh:
        meta = fh.metadata()
    tensors = {k: v for k, v in load_file(str(broken)).items() if not k.startswith("predictor.")}
    save_file(tensors, str(broken), metadata=meta)
    with pytest.raises(CheckpointError, match="incompatible"):
        MetaD2AMethod.load(broken)


def test_search_rejects_budget_and_bad_options(model):
    ds = load_dataset("digits")
    with pytest.raises(ConfigError, match="budget"):
        model.search(ds, budget=metanas.Budget(seconds=10))
    with pytest.raises(ConfigError, match="mode"):
        model.search(ds, mode="gradient")
    with pytest.raises(ConfigError, match="candidates"):
        model.search(ds, candidates=0)
    with pytest.raises(ConfigError, match="no option"):
        metanas.search(ds, method=model, options={"restarts": 3})


def test_meta_train_errors(image_kb, image_source, tmp_path):
    with pytest.raises(ConfigError, match="gen_epochs"):
        MetaD2AMethod.meta_train(None, gen_epochs=0)
    with pytest.raises(ConfigError, match="no option"):
        MetaD2AMethod.meta_train(None, restarts=3)
    both = MetaD2AConfig.from_options({"epochs": 7, "pred_epochs": 9})  # CLI --epochs
    assert (both.gen_epochs, both.pred_epochs) == (7, 9)
    with KnowledgeBase(image_kb, readonly=True) as kb:
        with pytest.raises(DatasetError, match="source=PATH"):  # not in the shared folder
            MetaD2AMethod.meta_train(kb, extractor=stats_extractor(), cache=False, **TINY)
        with pytest.raises(KnowledgeBaseError, match="not the dataset"):
            MetaD2AMethod.meta_train(kb, source="digits", extractor=stats_extractor(),
                                     cache=False, **TINY)
    with KnowledgeBase(tmp_path / "empty.db") as kb, pytest.raises(KnowledgeBaseError,
                                                                   match="at least 3 tasks"):
        MetaD2AMethod.meta_train(kb, extractor=stats_extractor())


@pytest.mark.slow
def test_leave_tasks_out_validation_reports_per_task_correlations(image_kb, image_source):
    with KnowledgeBase(image_kb, readonly=True) as kb:
        report = cross_validate(kb, folds=2, control=False, source=image_source,
                                extractor=stats_extractor(), cache=False,
                                **TINY)
    assert report["tasks"] == 24 and report["folds"] == 2
    assert len(report["per_task"]) == 24
    assert report["task_aware"]["spearman_mean"] > 0.3


def test_meta_train_through_the_cli_and_registry(image_kb, image_source, tmp_path):
    """``metanas meta-train --method metad2a`` with ``--set`` options (shipped extractor)."""
    from typer.testing import CliRunner

    from metanas.cli import app

    out = tmp_path / "cli.safetensors"
    sets = {**{k: v for k, v in TINY.items() if k not in ("gen_epochs", "pred_epochs")},
            "epochs": 2, "holdout": 0, "source": image_source, "cache": False}
    args = ["meta-train", "--method", "metad2a", "--kb", image_kb, "--out", str(out)]
    for key, value in sets.items():
        args += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    loaded = metanas.load_method("metad2a", checkpoint=out)
    assert loaded.config.gen_epochs == loaded.config.pred_epochs == 2
    assert loaded.extractor.name == "metanas-smallresnet" and loaded.info["tasks"] == 24
    assert len(loaded.search(load_dataset("digits"), top=3, candidates=10,
                             resamples=2).candidates) == 3
