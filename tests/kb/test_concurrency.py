"""Writers on one knowledge base exclude each other; readers leave the file as they found it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from metanas.cli import app
from metanas.errors import ConfigError, KnowledgeBaseError
from metanas.kb import KnowledgeBase, open_kb
from metanas.kb.store import open_for_writing, writer_lock

runner = CliRunner()
A1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
A2 = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _fill(kb: KnowledgeBase, arch: str = A1, seed: int = 0) -> None:
    t = kb.add_task("k" * 64, name="t", source="s")
    a = kb.add_architecture(arch)
    kb.add_evaluation(t, a, recipe="r", recipe_hash="h", seed=seed, metrics={"val_acc": 0.5})


def test_second_writer_fails_at_once_and_the_lock_file_goes_with_the_first(tmp_path):
    db = tmp_path / "kb.db"
    with writer_lock(db):
        start = time.perf_counter()
        with pytest.raises(KnowledgeBaseError, match=r"kb\.db is in use: another build holds"), \
                writer_lock(db):
            pass
        assert time.perf_counter() - start < 1
    assert not (tmp_path / "kb.db.lock").exists()
    with writer_lock(db):  # free again
        pass


def _race(first, second):
    """Run ``first(ready, done)`` in a thread; ``second`` runs once ``first`` holds the KB."""
    ready, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run():
        try:
            first(ready, done)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert ready.wait(10)
    try:
        second()
    finally:
        done.set()
        thread.join(10)
    return errors


def test_a_failing_build_does_not_delete_a_file_another_build_uses(tmp_path):
    db = tmp_path / "kb.db"

    def good(ready, done):  # holds the new file, stores rows, slowly
        with open_for_writing(db) as kb:
            _fill(kb)
            ready.set()
            done.wait(10)
            _fill(kb, A2)

    def bad():  # a build with a bad option on the same file
        with pytest.raises(KnowledgeBaseError, match="in use"), open_for_writing(db):
            raise ConfigError("--n-way 11 is not possible")

    assert _race(good, bad) == []
    with KnowledgeBase(db, readonly=True) as kb:
        rows = kb.evaluations()
    assert sorted(r["arch"] for r in rows) == sorted([A1, A2])
    assert sorted(os.listdir(tmp_path)) == ["kb.db"]


def test_a_failing_first_build_removes_only_its_own_empty_file(tmp_path):
    db = tmp_path / "kb.db"

    def bad(ready, done):
        with pytest.raises(ConfigError), open_for_writing(db):
            ready.set()
            done.wait(10)
            raise ConfigError("--n-way 11 is not possible")

    def good():  # refused while the failing build holds it, so it cannot lose its rows
        with pytest.raises(KnowledgeBaseError, match="in use"), open_for_writing(db) as kb:
            _fill(kb)

    assert _race(bad, good) == []
    assert os.listdir(tmp_path) == []
    with open_for_writing(db) as kb:  # afterwards the file is free and made anew
        _fill(kb)
    # an existing file, or one holding evaluations, is never removed on failure
    for _ in range(2):
        with pytest.raises(ConfigError), open_for_writing(db):
            raise ConfigError("bad")
    with KnowledgeBase(db, readonly=True) as kb:
        assert kb.counts()["evaluations"] == 1


def test_a_file_replaced_meanwhile_is_not_removed(tmp_path):
    db = tmp_path / "kb.db"
    with pytest.raises(ConfigError), open_for_writing(db):
        os.replace(db, tmp_path / "moved.db")
        KnowledgeBase(db).close()  # someone else's file now
        raise ConfigError("bad")
    assert db.exists()


def test_two_cli_builds_on_one_file_one_fails_cleanly_the_other_keeps_its_rows(tmp_path):
    db = tmp_path / "kb.db"
    build = ["kb", "build", "--source", "digits", "--tasks", "1", "--archs", "2", "--anchors",
             "1", "--n-way", "4", "--resolutions", "16", "--recipe", "cpu-tiny", "--executor",
             "local", "--kb", str(db)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "metanas.cli", *build],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while not (tmp_path / "kb.db.lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    second = runner.invoke(app, [*build, "--n-way", "11"])  # would fail and delete, before
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.exit_code == 2
    lines = second.output.strip().splitlines()
    assert len(lines) == 1 and "kb.db is in use" in lines[0], second.output
    with KnowledgeBase(db, readonly=True) as kb:
        rows = kb.evaluations()
    assert len(rows) == 2 == len({(r["task_key"], r["arch"], r["seed"]) for r in rows})
    assert sorted(os.listdir(tmp_path)) == ["kb.db"]


# ----- read-only opens ---------------------------------------------------------------------
def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _wal_at_rest(path):
    """Put a file in WAL mode and close it, as an older metanas left its knowledge bases."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    assert path.read_bytes()[18:20] == b"\2\2" and not path.with_name(path.name + "-wal").exists()


@pytest.mark.parametrize("legacy_wal", [False, True])
def test_read_only_commands_leave_no_sidecar_files_and_the_bytes_unchanged(tmp_path, legacy_wal):
    folder = tmp_path / "kbs"
    folder.mkdir()
    good, foreign, empty = folder / "kb.db", folder / "other.db", folder / "empty.db"
    with KnowledgeBase(good) as kb:
        _fill(kb)
    KnowledgeBase(empty).close()
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.commit()
    conn.close()
    if legacy_wal:
        for path in (good, foreign, empty):
            _wal_at_rest(path)
    before = _snapshot(folder)
    csv = tmp_path / "e.csv"
    cases = [
        (["kb", "stats", str(good)], 0),
        (["kb", "export", str(good), "--csv", str(csv)], 0),
        (["kb", "stats", str(foreign)], 2),
        (["kb", "export", str(foreign), "--csv", str(csv)], 2),
        (["validate", "--kb", str(empty)], 2),
        (["validate", "--kb", str(foreign)], 2),
        (["meta-train", "--kb", str(empty), "--out", str(tmp_path / "m.safetensors")], 2),
    ]
    for args, code in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == code, (args, res.output)
        assert _snapshot(folder) == before, args
    with open_kb(good) as kb:  # the library's read-only open, too
        assert kb.counts()["evaluations"] == 1
    assert _snapshot(folder) == before


def test_a_reader_of_a_file_a_writer_holds_sees_its_commits(tmp_path):
    db = tmp_path / "kb.db"
    with KnowledgeBase(db) as writer:
        _fill(writer)
        with KnowledgeBase(db, readonly=True) as reader:
            assert reader.counts()["evaluations"] == 1
            _fill(writer, A2)
            assert reader.counts()["evaluations"] == 2
    assert sorted(os.listdir(tmp_path)) == ["kb.db"]  # back in rollback mode, one file
    assert db.read_bytes()[18:20] == b"\1\1"
