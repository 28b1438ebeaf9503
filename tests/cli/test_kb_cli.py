"""The knowledge-base commands end to end: build (resumable), stats, export, import-table."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from metanas.cli import app
from metanas.errors import KnowledgeBaseError
from metanas.kb import KnowledgeBase

runner = CliRunner()
BUILD = ["kb", "build", "--source", "digits", "--tasks", "2", "--archs", "3", "--anchors", "1",
         "--n-way", "4", "--resolutions", "16", "--recipe", "cpu-tiny", "--executor", "local"]


def test_build_stats_export_and_resume(tmp_path):
    db = tmp_path / "kb.db"
    res = runner.invoke(app, [*BUILD, "--kb", str(db), "--limit", "2"])
    assert res.exit_code == 0, res.output
    with KnowledgeBase(db, readonly=True) as kb:
        assert kb.counts()["evaluations"] == 2
        assert all(t["meta_features"] for t in kb.tasks())
    res = runner.invoke(app, [*BUILD, "--kb", str(db), "--batch-archs", "3"])  # resume batched
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["already_done"] == 2 and report["trained"] == 4
    with KnowledgeBase(db, readonly=True) as kb:
        rows = kb.evaluations()
        assert len(rows) == 6
        assert len({(r["task_key"], r["arch"], r["seed"]) for r in rows}) == 6
        assert sum(bool(r["extra"] and r["extra"].get("batched")) for r in rows) == 4
        assert sum(r["val_acc"] for r in rows) / len(rows) > 0.4  # 4-way: chance 0.25
    res = runner.invoke(app, ["kb", "stats", str(db), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["counts"]["evaluations"] == 6
    out = tmp_path / "e.csv"
    assert runner.invoke(app, ["kb", "export", str(db), "--csv", str(out)]).exit_code == 0
    with open(out) as fh:
        assert len(list(csv.DictReader(fh))) == 6


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    if not os.path.exists(path):
        pytest.skip("needs Linux /proc to list child processes")
    with open(path) as fh:
        return [int(p) for p in fh.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_build_killed_with_sigkill_resumes_without_duplicates(tmp_path):
    db = tmp_path / "kb.db"
    args = [sys.executable, "-m", "metanas.cli", *BUILD, "--kb", str(db), "--archs", "6",
            "--executor", "process", "--workers", "1"]  # last --executor wins
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.3)
        if db.exists():
            try:  # the builder may have created the file and not yet its schema
                with KnowledgeBase(db, readonly=True) as kb:
                    if kb.counts()["evaluations"] >= 1:
                        break
            except KnowledgeBaseError:
                continue
    children = _children(proc.pid)
    assert children  # the pool's worker (and multiprocessing's resource tracker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the pool's workers notice their build is gone and exit instead of idling on, holding GBs
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)]
    with KnowledgeBase(db, readonly=True) as kb:
        before = kb.counts()["evaluations"]
    assert 1 <= before < 12
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    with KnowledgeBase(db, readonly=True) as kb:
        rows = kb.evaluations()
    assert len(rows) == 12
    assert len({(r["task_key"], r["arch"], r["seed"]) for r in rows}) == 12


def test_import_table(tmp_path):
    table = tmp_path / "nb201.csv"
    table.write_text(
        "arch_str,test-accuracy\n"
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|,94.37\n"
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10.0\n"
    )
    db = tmp_path / "kb.db"
    res = runner.invoke(app, ["kb", "import-table", str(table), "--kb", str(db),
                              "--dataset", "cifar10"])
    assert res.exit_code == 0, res.output
    with KnowledgeBase(db, readonly=True) as kb:
        accs = sorted(r["test_acc"] for r in kb.evaluations(source="cifar10"))
    assert accs == pytest.approx([0.1, 0.9437])
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    res = runner.invoke(app, ["kb", "import-table", str(bad), "--kb", str(db), "--dataset", "x"])
    assert res.exit_code == 2 and "bad.csv" in res.output


def test_failed_commands_leave_no_new_kb_file(tmp_path):
    header_only = tmp_path / "bad.csv"
    header_only.write_text("arch,test_acc\n")
    cases = [
        ["kb", "import-table", str(header_only), "--kb", str(tmp_path / "a.db"), "--dataset", "x"],
        [*BUILD, "--kb", str(tmp_path / "b.db"), "--workers", "0"],
        [*BUILD, "--kb", str(tmp_path / "c.db"), "--n-way", "11"],  # digits has 10 classes
        [*BUILD, "--kb", str(tmp_path / "d.db"), "--source", str(tmp_path / "missing.npz")],
        ["kb", "import-table", str(header_only), "--kb", str(header_only / "e.db"),
         "--dataset", "x"],  # a KB path below a file
        ["kb", "import-source", "nb201-imagenet16-120", "--csv", str(header_only), "--kb",
         str(tmp_path / "f.db"), "--no-features"],  # not the published table
    ]
    for args in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]


def test_stats_rejects_negative_max_tasks(tmp_path):
    KnowledgeBase(tmp_path / "e.db").close()
    res = runner.invoke(app, ["kb", "stats", str(tmp_path / "e.db"), "--max-tasks", "-1"])
    assert res.exit_code == 2 and "--max-tasks" in res.output


def test_kb_list_shows_recipe_names_with_brackets_verbatim():
    """A description like 'cpu-proxy[epochs=12]' is text, not rich markup."""
    res = runner.invoke(app, ["kb", "list"], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert "cpu-proxy[epochs=12]" in res.output


def test_build_with_fewer_archs_than_the_default_anchors(tmp_path):
    db = tmp_path / "kb.db"
    args = [a for a in BUILD if a not in ("--anchors", "1")]
    args[args.index("--archs") + 1] = "2"
    res = runner.invoke(app, [*args, "--kb", str(db), "--tasks", "1"])
    assert res.exit_code == 0, res.output
    with KnowledgeBase(db, readonly=True) as kb:
        assert kb.counts()["evaluations"] == 2


def test_merge_a_shipped_kb_twice_adds_nothing_the_second_time(tmp_path):
    db = tmp_path / "merged.db"
    res = runner.invoke(app, ["kb", "merge", "tinyimagenet-v0", "--kb", str(db)])
    assert res.exit_code == 0, res.output
    first = json.loads(res.output)
    assert first["merged"] == [{"source": "tinyimagenet-v0", "tasks": 48, "evaluations": 1440}]
    res = runner.invoke(app, ["kb", "merge", "tinyimagenet-v0", "tinyimagenet-v0", "--kb", str(db)])
    assert [(m["tasks"], m["evaluations"]) for m in json.loads(res.output)["merged"]] == [
        (0, 0), (0, 0)]
    res = runner.invoke(app, ["kb", "merge", str(tmp_path / "missing.db"), "--kb",
                              str(tmp_path / "new.db")])
    assert res.exit_code == 2 and "missing.db" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "new.db").exists()
    res = runner.invoke(app, ["kb", "merge", "tinyimagenet-v0", "--kb", "tinyimagenet-v1"])
    assert res.exit_code == 2 and "read-only" in res.output
    with KnowledgeBase(db) as kb:  # a row another tool wrote, that this schema refuses
        kb.conn.execute("UPDATE tasks SET classes = '[1.5]' WHERE id = 1")
        kb.conn.commit()
    res = runner.invoke(app, ["kb", "merge", str(db), "--kb", str(tmp_path / "new.db")])
    assert res.exit_code == 2 and "cannot merge" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "new.db").exists()
