"""BASE adaptation, derivation, search through the API, checkpoints, baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metanas import api
from metanas.errors import CheckpointError, ConfigError
from metanas.methods.base import BASEConfig, BASEMethod
from metanas.methods.base.derive import rank_nb201
from metanas.methods.interface import Budget
from metanas.spaces.nb201 import NB201Arch


def test_rank_nb201_orders_by_log_probability() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=6)
    ranked = rank_nb201(probs, 20)
    assert ranked[0][0] == NB201Arch.from_probabilities(probs) or not \
        NB201Arch.from_probabilities(probs).is_connected
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    for arch, score in ranked:
        assert score == pytest.approx(float(np.log(probs[np.arange(6), arch.op_indices]).sum()))
        assert arch.is_connected
    assert len({a.canonical_form for a, _ in ranked}) == len(ranked)


def test_adaptation_beats_chance_and_moves_logits(digits) -> None:
    config = BASEConfig(C=4, resolutions=(16,), adapt_batch_size=32, adapt_lr=0.1)
    method = BASEMethod.untrained(config, seed=0)
    task = method.make_task(digits, max_train_per_class=60)
    before = method.supernet.probabilities()["cell"].copy()
    ad = method.adapt(task, steps=40, sampling="softmax")
    assert ad.stats.steps == 40
    assert ad.accuracy("test") > 0.3  # chance is 0.1
    assert np.abs(ad.probabilities["cell"] - before).max() > 1e-3
    # the meta-supernet itself is untouched
    assert np.array_equal(method.supernet.probabilities()["cell"], before)
    frozen = method.adapt(task, steps=5, freeze_arch=True)
    assert np.array_equal(frozen.probabilities["cell"], before)
    net = ad.network()  # the discrete cell with the adapted weights
    with torch.no_grad():
        assert net(task.x_test[:4]).shape == (4, 10)


def test_search_through_api_returns_valid_cells(tiny_checkpoint, digits, tmp_path) -> None:
    result = api.search(digits, method="base", checkpoint=tiny_checkpoint, top=5,
                        options={"adapt_steps": 3})
    assert result.method == "base" and result.space == "nb201"
    assert 1 <= len(result.candidates) <= 5
    for c in result.candidates:
        assert NB201Arch.from_string(c.arch).is_connected
    assert [c.score for c in result.candidates] == sorted((c.score for c in result.candidates),
                                                          reverse=True)
    assert result.details["adaptation"][0]["steps"] == 3
    assert result.timings["adapt_seconds"] > 0
    # the adapted supernet can be saved and reloaded (classifier included)
    method = api.load_method("base", checkpoint=tiny_checkpoint)
    method.search(digits, top=1, adapt_steps=2)
    ad = method.last_adaptations[0]
    ad.save(tmp_path / "adapted.safetensors")
    again = BASEMethod.load(tmp_path / "adapted.safetensors")
    assert again.supernet.classifier.out_features == 10
    x = ad.task.x_test[:8]
    ad.supernet.eval()
    again.supernet.eval()
    with torch.no_grad():
        assert torch.allclose(ad.supernet(x), again.supernet(x), atol=1e-6)


def test_prior_mode_derives_without_training(tiny_checkpoint, digits) -> None:
    method = BASEMethod.load(tiny_checkpoint)
    raw = method.search(digits, top=3, mode="prior", prior="none")
    expected = rank_nb201(method.supernet.probabilities()["cell"], 1)[0][0]
    assert raw.architecture == expected.to_string()
    # the default adds the knowledge base's op prior to the meta-learned distribution
    result = method.search(digits, top=3, mode="prior")
    assert "adaptation" not in result.details and method.last_adaptations == []
    logits = np.log(method.supernet.probabilities()["cell"]) + method.kb_prior_logits()
    assert result.architecture == rank_nb201(np.exp(logits), 1)[0][0].to_string()
    assert result.timings["adapt_seconds"] == 0.0
    # the same pick as a method of its own (the bench's base-prior), which takes no budget
    prior = api.search(digits, method="base-prior", checkpoint=tiny_checkpoint, top=3)
    assert prior.method == "base-prior"
    assert [c.arch for c in prior.candidates] == [c.arch for c in result.candidates]
    with pytest.raises(ConfigError, match="takes no search budget"):
        api.search(digits, method="base-prior", checkpoint=tiny_checkpoint,
                   budget=Budget(seconds=5))
    with pytest.raises(ConfigError, match="no option"):
        api.search(digits, method="base-prior", checkpoint=tiny_checkpoint,
                   options={"adapt_steps": 3})


def test_search_options_and_budget(tiny_checkpoint, digits) -> None:
    method = BASEMethod.load(tiny_checkpoint)
    with pytest.raises(ConfigError, match="budget in seconds, not in evaluations"):
        method.search(digits, budget=Budget(evaluations=3))
    with pytest.raises(ConfigError, match="prior"):
        method.search(digits, mode="prior", adapt_steps=3)
    with pytest.raises(ConfigError, match="mode"):
        method.search(digits, mode="fast")
    with pytest.raises(ConfigError, match="darts"):
        method.search(digits, space="darts")
    with pytest.raises(ConfigError, match="no option"):
        api.search(digits, method="base", checkpoint=tiny_checkpoint, options={"stepz": 1})
    timed = method.search(digits, top=2, budget=Budget(seconds=0.5))
    assert timed.details["adaptation"][0]["steps"] >= 1
    assert timed.timings["adapt_seconds"] < 5
    averaged = method.search(digits, top=2, adapt_steps=2, subsets=2, subset_classes=5,
                             sampling="softmax")
    assert len(averaged.details["adaptation"]) == 2
    assert averaged.details["adaptation"][0]["sampling"] == "softmax"
    probs = np.array(averaged.details["probabilities"]["cell"])
    assert np.allclose(probs.sum(1), 1, atol=1e-3)


def test_shipped_checkpoint(digits) -> None:
    from metanas.methods.registry import default_checkpoint

    path = default_checkpoint("base")
    assert path.is_file() and path.stat().st_size < 5_000_000
    method = BASEMethod.load(path)
    assert method.supernet.space == "nb201" and method.info["meta_step"] >= 1
    assert set(method.supernet.resolutions) >= {16, 32}
    result = method.search(digits, top=3, mode="prior")
    assert NB201Arch.from_string(result.architecture).is_connected


def test_checkpoint_round_trip_and_bad_files(tiny_checkpoint, tmp_path) -> None:
    method = BASEMethod.load(tiny_checkpoint)
    method.save(tmp_path / "copy.safetensors")
    again = BASEMethod.load(tmp_path / "copy.safetensors")
    assert again.config == method.config and again.info == method.info
    a, b = method.supernet.meta_state(), again.supernet.meta_state()
    assert all(torch.equal(a[k], b[k]) for k in a)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        BASEMethod.load(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        BASEMethod.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"),
              metadata={"format": "metanas.value-net/1"})
    with pytest.raises(CheckpointError, match="not a base checkpoint"):
        BASEMethod.load(tmp_path / "other.safetensors")


def test_darts_space_through_the_python_api(digits) -> None:
    config = BASEConfig(space="darts", C=4, layers=2, resolutions=(16,), feature_size=8,
                        adapt_batch_size=8)
    method = BASEMethod.untrained(config)
    result = method.search(digits, top=3, adapt_steps=1, space="darts",
                           max_train_per_class=10)
    from metanas.spaces.darts import DartsGenotype

    assert result.space == "darts"
    genos = [DartsGenotype.from_string(c.arch) for c in result.candidates]
    assert len(set(genos)) == len(genos) >= 2


@pytest.mark.parametrize("name", ["darts", "gdas"])
def test_gradient_baselines_run_within_a_tiny_budget(name: str, digits) -> None:
    result = api.search(digits, method=name, top=3, options={"steps": 4})
    assert result.method == name
    assert result.details["adaptation"][0]["steps"] == 4
    assert result.details["adaptation"][0]["bilevel"] is True
    for c in result.candidates:
        assert NB201Arch.from_string(c.arch).is_connected
    timed = api.search(digits, method=name, top=1, budget=Budget(seconds=0.3))
    assert timed.details["adaptation"][0]["steps"] >= 1
    with pytest.raises(ConfigError, match="checkpoint"):
        api.load_method(name, checkpoint="x.safetensors")
