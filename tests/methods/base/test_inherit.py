"""``--set inherit=true``: BASE's final training starts from the adapted supernet's weights."""

from __future__ import annotations

import json
import time

import pytest
import torch
from typer.testing import CliRunner

from metanas import api
from metanas.cli import app
from metanas.errors import ConfigError
from metanas.methods.base import BASEMethod
from metanas.methods.base.config import BASEConfig
from metanas.spaces.nb201 import NB201Network
from metanas.supernet import NB201Supernet
from metanas.tasks import make_task
from metanas.training import get_recipe
from metanas.training.saved import load_model, save_model
from metanas.training.trainer import evaluate, train_architecture

CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
runner = CliRunner()


def _scrambled_supernet(resolutions=(16, 32)) -> NB201Supernet:
    torch.manual_seed(0)
    net = NB201Supernet(C=4, N=1, resolutions=resolutions, feature_size=16, num_classes=5)
    for p in net.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("resolution", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_plain_export_computes_the_supernet_function(resolution, channels) -> None:
    net = _scrambled_supernet()
    plain = net.export_network(CELL, resolution, in_channels=channels)
    assert type(plain.stem[0]) is torch.nn.Conv2d  # no RepeatChannels: a plain NB201Network
    assert plain.config.get("stem_strides", 0) == (resolution // 16).bit_length() - 1
    x = torch.randn(3, channels, resolution, resolution)
    with torch.no_grad():
        assert torch.allclose(net(x, net.arch_weights_for(CELL)), plain(x), atol=1e-5)
    # and a fresh NB201Network of that config takes its weights key for key
    cfg = {k: v for k, v in plain.config.items() if k != "resolution"}
    NB201Network(CELL, **cfg).load_state_dict(plain.state_dict())


def test_a_network_with_the_head_as_stem_saves_and_loads(digits, tmp_path) -> None:
    net = _scrambled_supernet()
    net.reset_classifier(10)
    task = make_task(digits, resolution=32, max_train_per_class=10, seed=0)
    plain = net.export_network(CELL, 32, in_channels=1)
    save_model(tmp_path / "m.safetensors", plain, task, recipe="test", input_resolution=32,
               metrics={})
    back = load_model(tmp_path / "m.safetensors")
    assert back.card.stem_strides == 1
    with torch.no_grad():
        assert torch.equal(back(task.x_test[:8]), plain(task.x_test[:8]))
    # a plain network's card does not carry the field (older readers keep reading them)
    from safetensors import safe_open

    save_model(tmp_path / "p.safetensors", NB201Network(CELL, C=4, N=1, in_channels=1),
               task, recipe="test", input_resolution=32, metrics={})
    with safe_open(str(tmp_path / "p.safetensors"), framework="pt") as fh:
        assert "stem_strides" not in json.loads(fh.metadata()["card"])


@pytest.fixture(scope="module")
def inherited(digits):
    """The shipped meta-supernet adapted for 30 steps (the tiny test checkpoint's adaptations
    stay at chance on 10 classes: nothing to inherit)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return api.search(digits, method="base", top=3,
                          options={"adapt_steps": 30, "prior": "none", "inherit": True})
    finally:
        torch.set_num_threads(threads)


def test_search_hands_over_the_adapted_network(inherited, digits) -> None:
    net = inherited.inherited
    assert isinstance(net, NB201Network) and net.arch.to_string() == inherited.architecture
    info = inherited.details["inherit"]
    assert (info["C"], info["N"], info["in_channels"], info["num_classes"]) == (8, 1, 1, 10)
    assert "inherited" not in json.dumps(inherited.to_dict())  # not serialised
    # training from it starts at exactly its weights: a deadline in the past stops before
    # the first step, and the model is the inherited network
    task = make_task(digits, resolution=info["resolution"], max_train_per_class=30, seed=0)
    recipe = get_recipe("cpu-tiny")  # C=8, N=1 as the shipped supernet
    res, model = train_architecture(inherited.architecture, task, recipe, init_model=net,
                                    deadline=time.perf_counter() - 1, stop_at_deadline=True,
                                    keep_best=True, return_model=True)
    for k, v in net.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    acc, _ = evaluate(net, task.x_test, task.y_test, 512)
    assert res.test_acc == acc and res.best_epoch == 0
    assert res.init_val_acc == evaluate(net, task.x_val, task.y_val, 512)[0]
    # the caller's network is not trained in place
    assert net.stem[0].weight.grad is None


def test_budgeted_fit_from_inherited_weights_trains_and_beats_chance(inherited, digits):
    fitted = api.fit(digits, inherited.architecture, budget=8, init_model=inherited.inherited)
    assert (fitted.recipe["C"], fitted.recipe["N"]) == (8, 1)  # the supernet's, not probed
    assert len(fitted.plan["probes"]) == 1 and "fixed" in fitted.plan["rule"]
    # before any step the network already knows the task (chance is 0.1) ...
    assert fitted.metrics["init_val_acc"] > 0.2
    # ... and training improves on it
    assert fitted.val_acc > fitted.metrics["init_val_acc"] and fitted.test_acc > 0.6
    with pytest.raises(ConfigError, match="head for 16 px"):
        api.fit(digits, inherited.architecture, budget=8, init_model=inherited.inherited,
                resolution=32)
    with pytest.raises(ConfigError, match="init_model is a network of"):
        api.fit(digits, CELL, budget=8, init_model=inherited.inherited)


def test_search_train_with_a_recipe_takes_the_supernet_size(tiny_checkpoint, digits):
    result = api.search(digits, method="base", checkpoint=tiny_checkpoint, top=2,
                        train=True, recipe="cpu-tiny", options={"adapt_steps": 3,
                                                             "inherit": True})
    trained = result.details["trained"]
    assert trained["recipe"].startswith("cpu-tiny[C=4") and trained["init_val_acc"] is None
    assert trained["params"] == sum(p.numel() for p in result.inherited.parameters())


@pytest.mark.parametrize(("method", "options", "needle"), [
    ("value-net", {"inherit": True}, "applies to method base"),
    ("base-prior", {"inherit": True}, "without adaptation"),
    ("base", {"inherit": True, "mode": "prior"}, "mode=prior"),
    ("base", {"inherit": True, "subset_classes": 3}, "all 10 classes"),
])
def test_inherit_where_it_cannot_apply_is_a_one_line_error(method, options, needle,
                                                           tiny_checkpoint, digits):
    checkpoint = tiny_checkpoint if method == "base" else None
    with pytest.raises(ConfigError, match=needle) as err:
        api.search(digits, method=method, checkpoint=checkpoint, options=options, top=2)
    assert "\n" not in str(err.value)


def test_inherit_from_a_darts_checkpoint_is_a_one_line_error(digits):
    method = BASEMethod.untrained(BASEConfig(space="darts", C=4, layers=2, resolutions=(16,)))
    with pytest.raises(ConfigError, match="darts supernet") as err:
        api.search(digits, method=method, options={"inherit": True, "adapt_steps": 1})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("args", "needle"), [
    (["--method", "base", "--set", "inherit=true"], "needs --train"),
    (["--method", "value-net", "--set", "inherit=true", "--train"], "method base"),
    (["--method", "base", "--mode", "prior", "--set", "inherit=true", "--train"], "mode=prior"),
])
def test_cli_refuses_inherit_where_it_cannot_apply(args, needle):
    res = runner.invoke(app, ["search", "-d", "digits", *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_cli_search_train_budget_with_inherit(tiny_checkpoint, tmp_path):
    model = tmp_path / "m.safetensors"
    res = runner.invoke(app, ["search", "-d", "digits", "--method", "base", "--checkpoint",
                              tiny_checkpoint, "--adapt-steps", "3", "--set", "inherit=true",
                              "--train", "--train-budget", "8", "--save-model", str(model),
                              "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "inherit" in res.output
    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["trained"]["recipe"]["C"] == 4 and payload["details"]["inherit"]["C"] == 4
    assert load_model(model).card.training["init"]["inherited"] is True
