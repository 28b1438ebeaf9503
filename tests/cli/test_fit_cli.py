"""``metanas fit`` and ``metanas search --train --train-budget``: one code path, one-line
errors (exit 2) for bad budgets and model paths, before any training."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from metanas.cli import app
from metanas.training.saved import load_model

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
runner = CliRunner()


@pytest.mark.parametrize("budget", ["0", "-5", "nan", "inf", "0.001"])
def test_bad_budgets_exit_2_in_one_line(budget, tmp_path):
    res = runner.invoke(app, ["fit", "-d", "digits", "--arch", ARCH, "--budget", budget,
                              "--out", str(tmp_path / "m.safetensors")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "budget" in res.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fit", "-d", "digits", "--arch", ARCH, "--budget", "60", "--out",
          "/no/such/dir/m.safetensors"], "does not exist"),
        (["fit", "-d", "digits", "--arch", "nonsense", "--budget", "60"], "nonsense"),
        (["search", "-d", "digits", "--train-budget", "60"], "--train"),
        (["search", "-d", "digits", "--train", "--train-budget", "0"], "--train-budget"),
        (["search", "-d", "digits", "--train", "--train-budget", "60", "--save-model",
          "/no/such/dir/m.safetensors"], "does not exist"),
    ],
)
def test_user_errors_before_any_work(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_fit_command_writes_model_json_and_curves(tmp_path):
    model, out = tmp_path / "m.safetensors", tmp_path / "fit.json"
    res = runner.invoke(app, ["fit", "-d", "digits", "--arch", ARCH, "--budget", "6",
                              "--out", str(model), "--json", str(out)],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["test_acc"] > 0.5 and payload["recipe"]["C"] >= 8
    assert payload["files"]["model"] == str(model)
    assert (tmp_path / "m.curves.json").exists() and (tmp_path / "m.curves.png").exists()
    assert load_model(model).card.training["recipe"] == payload["recipe"]
    assert "test accuracy" in res.output


def test_search_train_budget_uses_fit(tmp_path):
    model, out = tmp_path / "pick.safetensors", tmp_path / "r.json"
    res = runner.invoke(app, ["search", "-d", "digits", "--top", "2", "--train",
                              "--train-budget", "6", "--save-model", str(model), "--json",
                              str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    trained = payload["trained"]
    assert trained["arch"] == payload["architecture"] and trained["budget"] == 6
    assert trained["plan"]["probes"] and trained["summary"]["epochs_run"] >= 1
    assert trained["seconds"] <= 12  # 2x the budget: loose, the machine is shared
    assert load_model(model).card.arch == payload["architecture"]
    assert (tmp_path / "pick.curves.json").exists()
    # the value network ranked its shortlist for those 6 seconds
    assert payload["details"]["train_budget"]["train_budget"] == 6
    assert payload["candidates"][0]["epochs"] > 0
    assert "budget score" in res.output


def test_budget_options_reach_only_the_methods_that_rank_for_a_budget():
    from metanas import api

    assert api.budget_options("value-net", None, 60.0) == {"train_budget": 60.0}
    assert api.budget_options("value-net", {"train_budget": 9.0}, 60.0) == {"train_budget": 9.0}
    assert api.budget_options("random", {"x": 1}, 60.0) == {"x": 1}
    assert api.budget_options("value-net", {"rerank": ""}, None) == {"rerank": ""}
