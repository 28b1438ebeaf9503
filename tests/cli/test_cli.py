"""End-to-end tests of the command line on the embedded `digits` dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from metanas.cli import app
from metanas.spaces.nb201 import NB201Arch

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_search_digits_with_shipped_value_net(tmp_path):
    out = tmp_path / "r.json"
    res = run("search", "--dataset", "digits", "--top", "5", "--json", str(out))
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["method"] == "value-net"
    assert payload["space"] == "nb201"
    assert payload["dataset"] == "digits"
    assert len(payload["candidates"]) == 5
    NB201Arch.from_string(payload["architecture"])  # exact NATS-Bench format
    assert payload["architecture"] == payload["candidates"][0]["architecture"]
    scores = [c["score"] for c in payload["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert 0 < payload["search_seconds"] < 30
    assert payload["architecture"] in res.output
    # the shipped network saw the whole ImageNet16-120 table: "auto" ranks for a full training
    assert payload["details"]["fidelity"] == {"epochs": 200, "C": 16, "N": 5}


def test_search_is_reproducible(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path in (a, b):
        assert run("search", "-d", "digits", "--seed", "3", "--json", str(path)).exit_code == 0
    ca = json.loads(a.read_text())["candidates"]
    cb = json.loads(b.read_text())["candidates"]
    assert [c["architecture"] for c in ca] == [c["architecture"] for c in cb]


def test_search_with_train_reports_test_accuracy(tmp_path):
    out = tmp_path / "r.json"
    model = tmp_path / "model.safetensors"
    res = run("search", "-d", "digits", "--top", "3", "--train", "--recipe", "cpu-tiny",
              "--json", str(out), "--save-model", str(model))
    assert res.exit_code == 0, res.output
    trained = json.loads(out.read_text())["trained"]
    assert trained["test_acc"] > 0.3  # 10 classes: chance is 0.1; 2 epochs only
    assert model.stat().st_size > 1000
    assert model.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not safetensors' 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_random_baseline_from_cli(tmp_path):
    out = tmp_path / "r.json"
    res = run("search", "-d", "digits", "--method", "random", "--budget-evals", "2",
              "--recipe", "cpu-tiny", "--top", "2", "--json", str(out))
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["method"] == "random" and len(payload["candidates"]) == 2


def test_train_command(tmp_path):
    out = tmp_path / "t.json"
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    res = run("train", "-d", "digits", "--arch", arch, "--recipe", "cpu-tiny", "--json", str(out))
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["arch"] == arch and d["test_acc"] > 0.3 and d["params"] > 0


def test_space_info_and_datasets():
    res = run("space", "info", "nb201", "--json")
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info["cells"] == 15625 and info["unique_nb201_rule"] == 6466
    assert info["edges"][0] == "1<-0"
    res = run("datasets", "--json")
    assert res.exit_code == 0 and "digits" in res.output


def test_npz_dataset_through_cli(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (60, 12, 12), dtype=np.uint8)
    y = np.repeat(np.arange(3), 20)
    x[y == 1, :6] = 255  # make classes separable
    path = tmp_path / "toy.npz"
    np.savez(path, x=x, y=y)
    res = run("search", "-d", str(path), "--top", "2")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["search", "-d", "/no/such/file.npz"], "no/such/file.npz"),
        (["search", "-d", "no-such-builtin"], "digits"),
        (["train", "-d", "digits", "--arch", "|conv~0|+|x~0|y~1|+|a~0|b~1|c~2|"], "valid ops"),
        (["search", "-d", "digits", "--method", "magic"], "available"),
        (["search", "-d", "digits", "--checkpoint", "/no/ckpt.safetensors"], "ckpt"),
        (["kb", "stats", "/no/such.db"], "such.db"),
        (["search", "-d", "digits", "--budget", "5"], "value-net takes no search budget: it ranks without training"),
        (["search", "-d", "digits", "--method", "rea", "--mode", "exhaustive"], "no option(s) mode"),
        (["search", "-d", "digits", "--device", "foo"], "'foo'"),
        (["search", "-d", "digits", "--recipe", "nope"], "nope"),
        (["search", "-d", "digits", "--save-model", "m.safetensors"], "--train"),
        (["search", "-d", "digits", "--json", ""], "--json"),
        (["search", "-d", "digits", "--set", "seed=1"], "not a method option"),
        (["meta-train", "--method", "base", "--out", "x.safetensors", "--set", "seed=1"],
         "not a method option"),
        (["meta-train", "--method", "base", "--out", "x.safetensors", "--set", "meta_steps=1.5"],
         "base option meta_steps must be an integer"),
        (["meta-train", "--method", "value-net", "--kb", "default", "--out", "x.safetensors",
          "--set", "epochs=abc"], "value-net option epochs must be an integer"),
    ],
)
def test_user_errors_exit_2_without_traceback(args, needle, tmp_path):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert needle in res.output


def test_corrupt_npz_and_mismatched_lengths(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    res = runner.invoke(app, ["search", "-d", str(bad)])
    assert res.exit_code == 2 and "bad.npz" in res.output
    mism = tmp_path / "mism.npz"
    np.savez(mism, x=np.zeros((10, 8, 8), np.uint8), y=np.zeros(9, int))
    res = runner.invoke(app, ["search", "-d", str(mism)])
    assert res.exit_code == 2 and "mism.npz" in res.output


def test_console_script_exit_code():
    proc = subprocess.run(
        [sys.executable, "-m", "metanas.cli", "train", "-d", "digits", "--arch", "nonsense"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "error" in proc.stderr and "Traceback" not in proc.stderr


def test_unwritable_outputs_fail_before_any_work_and_leave_no_files(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    arch = NB201Arch.from_index(1234).to_string()
    cases = [
        (["search", "-d", "digits", "--json", str(tmp_path)], "--json"),
        (["search", "-d", "digits", "--train", "--save-model", str(blocker / "m.st")],
         "--save-model"),
        (["train", "-d", "digits", "--arch", arch, "--json", str(blocker / "t.json")], "--json"),
        (["meta-train", "--kb", str(tmp_path / "none.db"), "--out", str(tmp_path)], "--out"),
    ]
    for args, needle in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output and "Traceback" not in res.output
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]  # no temp or partial files


@pytest.mark.parametrize("method", ["value-net", "metad2a", "base", "global-prior"])
def test_meta_train_unknown_option_is_a_one_line_error(method, tmp_path):
    args = ["meta-train", "--method", method, "--out", str(tmp_path / "m.safetensors"),
            "--set", "bogus_option=1"]
    if method != "base":
        args += ["--kb", "default"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "bogus_option" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "m.safetensors").exists()


def test_search_explains_the_score_and_rejects_top_below_one():
    res = run("search", "-d", "digits", "--top", "2")
    assert res.exit_code == 0, res.output
    assert "score: rank vote of the value network and the zero-cost proxies (nwot)" in res.output
    res = run("search", "-d", "digits", "--top", "2", "--set", "rerank=")
    assert "score: the value network's prediction, standardised per task" in res.output
    res = run("search", "-d", "digits", "--top", "2", "--method", "metad2a")
    assert "score: rank vote of the meta-predictor and the zero-cost proxies (nwot, meco)" in (
        res.output)
    res = run("search", "-d", "digits", "--top", "2", "--method", "metad2a", "--set", "rerank=")
    assert "score: the meta-predictor's predicted accuracy" in res.output
    res = runner.invoke(app, ["search", "-d", "digits", "--top", "0"])
    assert res.exit_code == 2 and "--top must be >= 1" in res.output


def test_help_shows_flags_without_a_value_type():
    res = runner.invoke(app, ["search", "--help"], terminal_width=120)
    assert res.exit_code == 0
    rows = {ln.strip("│ ").split()[0]: ln for ln in res.output.splitlines()
            if ln.strip("│ ").startswith("--")}
    assert "<bool>" not in rows["--train"] and "<bool>" not in rows["--help"]
    assert "<int>" in rows["--top"]


def test_an_abort_inside_the_cli_exits_130_in_one_line(monkeypatch, capsys):
    """typer >= 0.2x carries click without ``Abort``; the handler must not crash on it."""
    import typer

    import metanas.cli as cli

    def abort(**_):
        raise typer.Abort()

    monkeypatch.setattr(cli, "app", abort)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 130
    assert "Traceback" not in capsys.readouterr().err
