"""`metanas bench` on the embedded digits dataset: outputs, reuse, resume, lookups, bad input."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

import metanas
from metanas.bench import BenchConfig, accepts_budget, parse_lookup, run_bench
from metanas.bench import runner as bench_runner
from metanas.cli import app
from metanas.errors import ConfigError
from metanas.methods.registry import METHODS

RECIPE = "cpu-tiny[epochs=1]"
cli = CliRunner()


def bench_args(out, *extra):
    return ["bench", "--datasets", "digits", "--methods", "value-net,random", "--budget",
            "0.001", "--seeds", "1", "--recipe", RECIPE, "--max-train-per-class", "30",
            "--out", str(out), *extra]


def config(out, **kw):
    base = dict(datasets=["digits"], methods=["value-net", "random"], budget=0.001, seeds=1,
                out=out, recipe=RECIPE, max_train_per_class=30)
    return BenchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete run through the command line."""
    out = tmp_path_factory.mktemp("bench")
    res = cli.invoke(app, bench_args(out), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.slow
def test_bench_writes_json_csv_markdown_and_plots(finished):
    payload = json.loads((finished / "results.json").read_text())
    rows = payload["rows"]
    assert [(r["dataset"], r["method"], r["seed"]) for r in rows] == [
        ("digits", "value-net", 0), ("digits", "random", 0)]
    for r in rows:
        assert 0.0 <= r["test_acc"] <= 1.0 and r["train_seconds"] > 0
        extra = 0.0 if r["train_reused"] else r["train_seconds"]
        assert r["total_seconds"] == pytest.approx(r["search_seconds"] + extra)
    by_method = {r["method"]: r for r in rows}
    assert by_method["value-net"]["budget"] is None  # "none" budget semantics: not passed
    assert by_method["random"]["budget"] == {"seconds": 0.001, "evaluations": None}
    # random trained one candidate on the bench's own task: it is the pool
    assert len(by_method["random"]["trained_candidates"]) == 1
    assert by_method["random"]["pick_rank"] == 1
    # random trained its pick on the bench's task: reused, and training it again agrees
    assert by_method["random"]["train_reused"] and not by_method["value-net"]["train_reused"]
    again = metanas.train("digits", by_method["random"]["pick"], recipe=RECIPE,
                          max_train_per_class=30, seed=0)
    assert again.test_acc == by_method["random"]["test_acc"]
    assert payload["budget_semantics"]["value-net"].startswith("none")
    with (finished / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [t["method"] for t in table] == ["value-net", "random"]
    assert {"search_seconds", "train_seconds", "total_seconds", "pick", "test_acc"} <= set(table[0])
    md = (finished / "results.md").read_text()
    assert "| digits | value-net |" in md and "| digits | random |" in md
    for png in ("accuracy_vs_search_cost.png", "accuracy_by_method.png"):
        assert (finished / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((finished / "cells").glob("*.json"))) == 2


@pytest.mark.slow
def test_rerun_skips_finished_cells_and_applies_a_new_lookup(finished, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(bench_runner, "run_cell", boom)
    rows = json.loads((finished / "results.json").read_text())["rows"]
    table = finished / "published.csv"
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "cifar10-test"])
        for i, r in enumerate(rows):
            writer.writerow([r["pick"], 90.0 + i])  # percent: read as fractions
    res = cli.invoke(app, bench_args(finished, "--lookup", f"{table}:cifar10-test=digits"),
                     catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "0 cell(s) computed" in res.output
    again = json.loads((finished / "results.json").read_text())["rows"]
    assert [r["test_acc"] for r in again] == [r["test_acc"] for r in rows]
    published = [r["published"]["published:cifar10-test"] for r in again]
    assert published == pytest.approx([0.90, 0.91])
    assert "published:cifar10-test" in (finished / "results.md").read_text()


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    calls = []
    real = bench_runner.run_cell

    def interrupted(*args, **kwargs):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(bench_runner, "run_cell", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_bench(config(tmp_path / "a"))
    assert len(list((tmp_path / "a" / "cells").glob("*.json"))) == 1
    monkeypatch.setattr(bench_runner, "run_cell", real)
    resumed = run_bench(config(tmp_path / "a"))
    assert resumed.computed == 1 and len(resumed.rows) == 2
    straight = run_bench(config(tmp_path / "b"))
    key = ("method", "pick", "test_acc", "val_acc")
    assert [[r[k] for k in key] for r in resumed.rows] == [[r[k] for k in key]
                                                           for r in straight.rows]


@pytest.mark.parametrize("change, message", [
    (["--methods", "value-net,nope"], "unknown method 'nope'"),
    (["--datasets", "no/such/data.npz"], "no such file"),
    (["--lookup", "table.csv-without-column"], "TABLE.csv:COLUMN=DATASET"),
    (["--lookup", "missing.csv:acc=digits"], "does not exist"),
    (["--seeds", "0"], "--seeds"),
    (["--recipe", "nope"], "unknown recipe"),
    (["--checkpoint", "random=x.safetensors"], "not meta-learned"),
    (["--set", "value-net=mode"], "METHOD:KEY=VALUE"),
    (["--set", "rea:mode=exhaustive"], "options for 'rea'"),
    (["--set", "value-net:bogus=1"], "no option(s) bogus"),
])
def test_bad_arguments_exit_2_before_any_work(tmp_path, change, message):
    args = bench_args(tmp_path / "out")
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    res = cli.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()  # nothing was started


def test_unwritable_out_and_lookup_of_an_unknown_dataset(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = cli.invoke(app, bench_args(blocker / "out"))
    assert res.exit_code == 2 and "cannot write --out" in res.output
    table = tmp_path / "t.csv"
    table.write_text("arch,acc\n|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|,0.5\n")
    res = cli.invoke(app, bench_args(tmp_path / "o", "--lookup", f"{table}:acc=cifar10"))
    assert res.exit_code == 2 and "not one of --datasets" in res.output
    res = cli.invoke(app, bench_args(tmp_path / "o", "--lookup", f"{table}:nope=digits"))
    assert res.exit_code == 2 and "no column 'nope'" in res.output


def test_lookup_matches_by_canonical_form(tmp_path):
    table = tmp_path / "t.csv"
    listed = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    same_function = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    table.write_text(f"arch_str,test-accuracy\n{listed},71.5\n")
    lookup = parse_lookup(f"{table}:test-accuracy=cifar10")
    assert lookup.dataset == "cifar10" and lookup.column == "test-accuracy"
    assert lookup.value(listed) == pytest.approx(0.715)
    assert lookup.value(same_function) == pytest.approx(0.715)
    assert lookup.value("|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|") is None
    with pytest.raises(ConfigError):
        parse_lookup(f"{table}=cifar10")


def test_budget_semantics_come_from_the_registry():
    assert not accepts_budget(METHODS["value-net"])
    assert accepts_budget(METHODS["random"]) and accepts_budget(METHODS["rea"])
    assert accepts_budget(METHODS["fisher-nearest"])
    assert not accepts_budget(METHODS["global-prior"])
    assert not accepts_budget(METHODS["nearest-best"])


def test_cell_keys_follow_the_checkpoint_actually_used(tmp_path):
    """A re-trained checkpoint, shipped or given, recomputes that method's cells only."""
    import shutil

    from metanas.bench import BenchPlan
    from metanas.methods.registry import default_checkpoint

    def keys(**kw):
        plan = BenchPlan.build(config(tmp_path / "out", **kw))
        return {c.method: c.key for c in plan.cells}

    shipped = keys()
    copy = tmp_path / "same.safetensors"
    shutil.copy(default_checkpoint("value-net"), copy)
    assert keys(checkpoints={"value-net": str(copy)}) == shipped  # same bytes, same cells
    other = tmp_path / "other.safetensors"
    other.write_bytes(copy.read_bytes() + b"\0")
    changed = keys(checkpoints={"value-net": str(other)})
    assert changed["value-net"] != shipped["value-net"]
    assert changed["random"] == shipped["random"]


def test_cell_keys_do_not_depend_on_how_the_dataset_path_is_spelled(tmp_path, monkeypatch):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 255, (40, 8, 8), dtype=np.uint8),
             y=np.arange(40) % 4)
    monkeypatch.chdir(tmp_path)
    from metanas.bench import BenchPlan

    a = BenchPlan.build(config(tmp_path / "out", datasets=["d.npz"]))
    b = BenchPlan.build(config(tmp_path / "out", datasets=[str(tmp_path / "d.npz")]))
    assert [c.key for c in a.cells] == [c.key for c in b.cells]
    assert {c.file_name for c in a.cells} == {c.file_name for c in b.cells}


def _small_npz(path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 255, (80, 8, 8), dtype=np.uint8), y=np.arange(80) % 4)


def test_the_same_dataset_under_two_spellings_is_refused(tmp_path, monkeypatch):
    """Cells are keyed by content: two spellings of one file would share every cell file."""
    _small_npz(tmp_path / "d.npz")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"same dataset twice: d\.npz and .*d\.npz"):
        run_bench(config(tmp_path / "out", datasets=["d.npz", str(tmp_path / "d.npz")]))
    assert not (tmp_path / "out").exists()


def test_cells_reused_under_another_spelling_match_a_lookup_of_that_spelling(tmp_path,
                                                                            monkeypatch):
    _small_npz(tmp_path / "d.npz")
    monkeypatch.chdir(tmp_path)
    first = run_bench(config(tmp_path / "out", datasets=["d.npz"], methods=["global-prior"]))
    assert first.computed == 1

    def boom(*args, **kwargs):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(bench_runner, "run_cell", boom)
    table = tmp_path / "published.csv"
    table.write_text(f"arch,acc\n{first.rows[0]['pick']},0.5\n")
    spelled = str(tmp_path / "d.npz")
    again = run_bench(config(tmp_path / "out", datasets=[spelled], methods=["global-prior"],
                             lookups=[f"{table}:acc={spelled}"]))
    assert again.computed == 0
    assert again.rows[0]["dataset_spec"] == spelled
    assert again.rows[0]["published"] == {"published:acc": pytest.approx(0.5)}


def test_set_passes_a_search_option_to_one_method_and_keys_its_cells(tmp_path):
    """--set METHOD:KEY=VALUE reaches that method's search (its details say so) and is part of
    the cell key, so the same cell with another option is computed, not reused."""
    base = ["bench", "--datasets", "digits", "--methods", "value-net", "--seeds", "1",
            "--recipe", RECIPE, "--max-train-per-class", "30", "--out", str(tmp_path)]
    for mode in ("gradient", "exhaustive"):
        res = cli.invoke(app, [*base, "--set", f"value-net:mode={mode}"],
                         catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert "1 cell(s) computed" in res.output
    rows = [json.loads(p.read_text()) for p in sorted((tmp_path / "cells").glob("*.json"))]
    assert sorted(r["search"]["details"]["mode"] for r in rows) == ["exhaustive", "gradient"]
