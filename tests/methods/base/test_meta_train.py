"""Algorithm 1: the Reptile step, 2-process data parallelism, resume, logs, errors."""

from __future__ import annotations

import json

import pytest
import torch

from metanas.data import load_dataset
from metanas.errors import ConfigError, DatasetError
from metanas.methods.base import BASEConfig, BASEMethod, TaskData, run_inner_loop
from metanas.methods.base.meta import make_sampler, task_seed

from .conftest import TINY


def _state(method: BASEMethod) -> dict[str, torch.Tensor]:
    return method.supernet.meta_state()


def _max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_reptile_step_is_the_mean_of_the_task_deltas() -> None:
    """One meta-step by hand: adapt each task from the shared state, average the deltas."""
    opts = {k: v for k, v in TINY.items() if k != "source"}
    config = BASEConfig.from_options({**opts, "meta_steps": 1, "meta_lr": 0.7,
                                      "meta_lr_end": 0.7})
    start = BASEMethod.untrained(config, seed=config.seed)
    shared = {k: v.clone() for k, v in _state(start).items()}
    sampler = make_sampler(load_dataset("digits", progress=False), config)
    deltas = []
    for c in range(config.tasks_per_step):
        net = start.supernet
        net.load_meta_state(shared)
        task = sampler.sample(c)
        net.reset_classifier(task.num_classes)
        run_inner_loop(net, TaskData.from_task(task), config.inner(),
                       generator=torch.Generator().manual_seed(task_seed(config.seed, c)),
                       tau=config.temperature()(0))
        deltas.append({k: v - shared[k] for k, v in net.meta_state().items()})
    expected = {k: shared[k] + 0.7 * sum(d[k] for d in deltas) / len(deltas) for k in shared}
    trained = BASEMethod.meta_train(None, **{**TINY, "meta_steps": 1, "meta_lr": 0.7,
                                             "meta_lr_end": 0.7})
    assert _max_diff(_state(trained), expected) < 1e-6
    # the logits moved too (joint update of weights and architecture)
    assert float((_state(trained)["arch.cell"] - shared["arch.cell"]).abs().max()) > 0


@pytest.mark.slow
def test_two_processes_equal_one_process() -> None:
    """Real torch.distributed (gloo on localhost, 2 spawned ranks) vs single process."""
    single = BASEMethod.meta_train(None, **{**TINY, "meta_steps": 2})
    multi = BASEMethod.meta_train(None, nproc=2, **{**TINY, "meta_steps": 2})
    assert multi.info["world_size"] == 2 and single.info["world_size"] == 1
    assert _max_diff(_state(single), _state(multi)) < 1e-5
    assert _max_diff(_state(single), _state(BASEMethod.untrained(single.config))) > 1e-3


def test_resume_equals_uninterrupted(tmp_path) -> None:
    full = BASEMethod.meta_train(None, **TINY)
    state = tmp_path / "state.safetensors"
    log = tmp_path / "log.jsonl"
    first = BASEMethod.meta_train(None, state=str(state), log=str(log), stop_after=1, **TINY)
    assert first.info["meta_step"] == 1
    resumed = BASEMethod.meta_train(None, state=str(state), log=str(log), resume=True, **TINY)
    assert resumed.info["meta_step"] == TINY["meta_steps"]
    assert _max_diff(_state(full), _state(resumed)) == 0.0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    probs = rows[-1]["probs"]["cell"]
    assert len(probs) == 6 and all(abs(sum(p) - 1) < 1e-3 for p in probs)
    assert rows[0]["tau"] == 1.0 > rows[-1]["tau"]
    with pytest.raises(ConfigError, match="different configuration"):
        BASEMethod.meta_train(None, state=str(state), resume=True, **{**TINY, "inner_steps": 5})


def test_meta_train_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no option"):
        BASEMethod.meta_train(None, **TINY, inner_stepz=3)
    with pytest.raises(ConfigError, match="resume"):
        BASEMethod.meta_train(None, resume=True, state=str(tmp_path / "none"), **TINY)
    with pytest.raises(ConfigError, match="n_way"):
        BASEMethod.meta_train(None, **{**TINY, "n_way": 1})


def test_missing_default_source_is_a_config_error(monkeypatch, tmp_path) -> None:
    import metanas.data.locate as locate
    import metanas.methods.base.meta as meta

    monkeypatch.setattr(locate, "shared_datasets_dir", lambda: None)
    with pytest.raises(DatasetError, match="source=PATH"):
        meta.resolve_source(None)
    monkeypatch.setattr(locate, "shared_datasets_dir", lambda: tmp_path)
    with pytest.raises(DatasetError, match="tiny-imagenet"):
        meta.resolve_source(None)


def test_inner_update_rules_match_torch_optim() -> None:
    from metanas.methods.base.inner import _SGD, _Adam

    gen = torch.Generator().manual_seed(0)
    for mine_cls, theirs_cls, kw_mine, kw_theirs in (
        (_SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=5e-4),
         dict(lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)),
        (_Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.5, 0.999), weight_decay=1e-3),
         dict(lr=0.01, betas=(0.5, 0.999), weight_decay=1e-3)),
    ):
        a = torch.randn(4, 3, generator=gen, requires_grad=True)
        b = a.detach().clone().requires_grad_(True)
        mine, theirs = mine_cls([a], **kw_mine), theirs_cls([b], **kw_theirs)
        for _ in range(5):
            target = torch.randn(4, 3, generator=gen)
            for p in (a, b):
                p.grad = None
                ((p - target) ** 2).sum().backward()
            mine.step()
            theirs.step()
        assert torch.allclose(a, b, atol=1e-6)
