"""Knowledge-base files with damaged pages, rows of the wrong kind and foreign schemas,
opened read-only and read the way the commands read them."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metanas.kb import KnowledgeBase, kb_stats, open_kb

from .conftest import FUZZ, loads_cleanly

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
COLUMNS = {"evaluations": ["val_acc", "test_acc", "train_loss", "seed", "params", "extra",
                           "seconds", "arch_id"],
           "tasks": ["meta_features", "classes", "spec", "resolution", "num_classes", "key"],
           "recipes": ["config", "name"], "architectures": ["arch", "canonical"]}
VALUES = st.one_of(st.sampled_from(["abc", "{bad", "[1, 2]", '{"a": "x"}', "", "NaN"]),
                   st.floats(allow_nan=False), st.integers(-2**63, 2**63 - 1), st.binary(max_size=8))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("kb") / "good.db"
    with KnowledgeBase(path) as kb:
        for i in range(3):
            t = kb.add_task(f"{i}" * 64, name=f"t{i}", source="s", classes=[0, 1],
                            meta_features={"log2_classes": 1.0, "channels": 3.0})
            for seed in range(3):
                a = kb.add_architecture(A)
                kb.add_evaluation(t, a, recipe="r", recipe_hash="h", seed=seed,
                                  metrics={"val_acc": 0.5, "test_acc": 0.4}, extra={"n": 1})
    conn = sqlite3.connect(path)  # the same bytes every run, so a damage offset means the same
    for table in ("meta", "tasks", "recipes", "evaluations"):
        column = "value" if table == "meta" else "created_at"
        where = " WHERE key = 'created_at'" if table == "meta" else ""
        conn.execute(f"UPDATE {table} SET {column} = '2026-01-01T00:00:00+00:00'{where}")
    conn.commit()
    conn.execute("VACUUM")
    conn.close()
    return path


def _read(path, csv):
    with open_kb(path) as kb:
        stats = kb_stats(kb)
        kb.export_csv(csv)
        kb.tasks()
        kb.recipes()
        kb.evaluations()
    return stats


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(sorted(COLUMNS)), st.data()), min_size=1,
                max_size=3))
def test_rows_of_the_wrong_kind_are_one_line(tmp_path_factory, good, edits):
    folder = tmp_path_factory.mktemp("rows")
    path = folder / "kb.db"
    shutil.copy(good, path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA ignore_check_constraints = ON")
    for table, data in edits:
        column = data.draw(st.sampled_from(COLUMNS[table]))
        with contextlib.suppress(sqlite3.IntegrityError):  # NOT NULL, UNIQUE
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = 1", (data.draw(VALUES),))
    conn.commit()
    conn.close()
    loads_cleanly(_read, path, folder / "e.csv")


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1,
                max_size=40), st.booleans())
def test_damaged_pages_are_one_line(tmp_path_factory, good, damage, truncate):
    folder = tmp_path_factory.mktemp("pages")
    path = folder / "kb.db"
    data = bytearray(good.read_bytes())
    for offset, byte in damage:
        data[offset % len(data)] = byte
    if truncate:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    loads_cleanly(_read, path, folder / "e.csv")
    assert sorted(p.name for p in folder.iterdir() if p.suffix != ".csv") == ["kb.db"]


@pytest.mark.parametrize("sql", [
    "ALTER TABLE evaluations ADD COLUMN foreign_col TEXT",
    "ALTER TABLE evaluations DROP COLUMN macs",
    "ALTER TABLE tasks RENAME COLUMN meta_features TO mf",
    "DROP TABLE recipes",
    "PRAGMA user_version = 99",
    "PRAGMA application_id = 7",
])
def test_foreign_schemas_are_one_line(tmp_path, good, sql):
    path = tmp_path / "kb.db"
    shutil.copy(good, path)
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()
    loads_cleanly(_read, path, tmp_path / "e.csv")
