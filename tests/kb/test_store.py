"""Tests of the knowledge-base store (metanas.kb.store) and its statistics (metanas.kb.stats)."""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3

import numpy as np
import pytest
from rich.console import Console

import metanas
from metanas.cli.display import format_stats
from metanas.errors import KnowledgeBaseError
from metanas.kb import KnowledgeBase, kb_stats
from metanas.kb.store import EVALUATION_COLUMNS, SCHEMA_VERSION

A1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
A2 = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
A3 = "|avg_pool_3x3~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"
K1 = "1" * 64
K2 = "2" * 64
K3 = "3" * 64


@pytest.fixture
def kb(tmp_path):
    with KnowledgeBase(tmp_path / "kb.sqlite") as store:
        yield store


def _task(kb: KnowledgeBase, key: str = K1, source: str = "cifar10", **kw) -> int:
    return kb.add_task(key, name=kw.pop("name", f"task-{key[:4]}"), source=source, **kw)


def _eval(kb, task_id, arch_id, *, seed=0, recipe_hash="h1", recipe="quick", **metrics) -> bool:
    metrics = metrics or {"val_acc": 0.5, "test_acc": 0.4}
    return kb.add_evaluation(
        task_id, arch_id, recipe=recipe, recipe_hash=recipe_hash, seed=seed, metrics=metrics
    )


# ----------------------------------------------------------------------------- create / open


def test_create_and_reopen_persists(tmp_path):
    path = tmp_path / "sub" / "dir" / "kb.sqlite"  # parent folders are created
    with KnowledgeBase(path) as kb:
        tid = _task(kb, classes=[3, 1, 4], resolution=32, sizes={"train": 100, "val": 20})
        aid = kb.add_architecture(A1, canonical="c1")
        assert kb.add_evaluation(
            tid,
            aid,
            recipe="quick",
            recipe_hash="h1",
            seed=7,
            metrics={"val_acc": 0.61, "test_acc": 0.6, "params": 1234, "train_loss": 1.5},
            recipe_config={"epochs": 3},
            seconds=12.5,
            device="cpu",
            extra={"note": "x"},
        )
    assert path.is_file()

    with KnowledgeBase(path) as kb:
        assert kb.counts() == {"tasks": 1, "architectures": 1, "evaluations": 1}
        assert kb.schema_version == SCHEMA_VERSION
        meta = kb.meta()
        assert meta["schema_version"] == str(SCHEMA_VERSION)
        assert meta["metanas_version"] == metanas.__version__
        assert meta["created_at"].endswith("+00:00")
        assert kb.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert kb.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        (row,) = kb.evaluations()
        assert row["task_key"] == K1
        assert row["arch"] == A1 and row["canonical"] == "c1"
        assert row["seed"] == 7 and row["val_acc"] == pytest.approx(0.61)
        assert row["params"] == 1234 and row["train_loss"] == pytest.approx(1.5)
        assert row["val_loss"] is None and row["macs"] is None
        assert row["seconds"] == pytest.approx(12.5) and row["device"] == "cpu"
        assert row["extra"] == {"note": "x"}
        assert row["version"] == metanas.__version__
        (recipe,) = kb.recipes()
        assert (recipe["name"], recipe["hash"]) == ("quick", "h1")
        assert recipe["config"] == {"epochs": 3} and recipe["evaluations"] == 1
        task = kb.task(K1)
        assert task["classes"] == [3, 1, 4] and task["resolution"] == 32
        assert task["sizes"] == {"train": 100, "val": 20, "test": None}
        assert task["n_train"] == 100


def test_readonly(tmp_path):
    path = tmp_path / "kb.sqlite"
    with pytest.raises(KnowledgeBaseError, match="does not exist"):
        KnowledgeBase(path, readonly=True)
    assert not path.exists()
    with KnowledgeBase(path) as kb:
        _task(kb)
    with KnowledgeBase(path, readonly=True) as ro:
        assert ro.counts()["tasks"] == 1
        with pytest.raises(KnowledgeBaseError, match="read-only"):
            ro.add_architecture(A1)
        with pytest.raises(KnowledgeBaseError, match="read-only"):
            _task(ro, K2)


def test_not_sqlite_file_raises_and_is_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    content = b"this is certainly not a database\n" * 200
    path.write_bytes(content)
    for readonly in (False, True):
        with pytest.raises(KnowledgeBaseError, match="notes.txt") as info:
            KnowledgeBase(path, readonly=readonly)
        assert "not a metanas knowledge base" in str(info.value)
    assert path.read_bytes() == content


def test_foreign_sqlite_file_raises(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE songs (id INTEGER PRIMARY KEY, title TEXT)")
    conn.execute("INSERT INTO songs(title) VALUES ('x')")
    conn.commit()
    conn.close()
    with pytest.raises(KnowledgeBaseError, match=r"other\.db.*not a metanas knowledge base"):
        KnowledgeBase(path)
    with pytest.raises(KnowledgeBaseError, match="not a metanas"):
        KnowledgeBase(path, readonly=True)
    conn = sqlite3.connect(path)  # untouched: no metanas tables were added
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert tables == {"songs"}


def test_damaged_kb_missing_table_raises(tmp_path):
    path = tmp_path / "kb.sqlite"
    KnowledgeBase(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE evaluations")
    conn.commit()
    conn.close()
    with pytest.raises(KnowledgeBaseError, match="missing table.*evaluations"):
        KnowledgeBase(path)


def test_schema_from_the_future_raises(tmp_path):
    path = tmp_path / "kb.sqlite"
    KnowledgeBase(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(KnowledgeBaseError, match=r"kb\.sqlite.*newer") as info:
        KnowledgeBase(path)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(info.value)
    with pytest.raises(KnowledgeBaseError, match="newer"):
        KnowledgeBase(path, readonly=True)


def test_directory_path_raises(tmp_path):
    with pytest.raises(KnowledgeBaseError, match="directory"):
        KnowledgeBase(tmp_path)


def test_path_under_a_file_raises(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(KnowledgeBaseError, match=r"a-file.*kb\.db"):
        KnowledgeBase(tmp_path / "a-file" / "kb.db")


# ----------------------------------------------------------------------------- tasks / archs


def test_add_task_idempotent_and_fills_meta_features(kb):
    t1 = _task(kb, spec={"classes": 5, "nested": {"a": [1, 2]}})
    assert _task(kb) == t1
    assert kb.task(t1)["meta_features"] is None
    # same key again with features: fills the NULL ones, nothing else changes
    assert _task(kb, name="other name", meta_features={"f1": 0.5, "f2": 2}) == t1
    task = kb.task(t1)
    assert task["meta_features"] == {"f1": 0.5, "f2": 2.0}
    assert task["name"] == "task-1111"
    assert task["spec"] == {"classes": 5, "nested": {"a": [1, 2]}}
    # once set, re-adding does not overwrite them; set_meta_features does
    _task(kb, meta_features={"f1": 9.0})
    assert kb.task(t1)["meta_features"] == {"f1": 0.5, "f2": 2.0}
    kb.set_meta_features(t1, {"g": np.float32(1.5), "bad": float("nan")})
    assert kb.task(t1)["meta_features"] == {"g": 1.5, "bad": None}
    with pytest.raises(KnowledgeBaseError, match="no task with id 999"):
        kb.set_meta_features(999, {"g": 1.0})

    t2 = _task(kb, K2, source="svhn")
    assert t2 != t1
    assert kb.counts()["tasks"] == 2
    assert [t["key"] for t in kb.tasks()] == [K1, K2]
    assert [t["key"] for t in kb.tasks(source="svhn")] == [K2]


def test_task_lookup(kb):
    t1 = _task(kb, "abcd1" + "0" * 59)
    t2 = _task(kb, "abcd2" + "0" * 59)
    assert kb.task(t1)["id"] == t1
    assert kb.task("abcd1" + "0" * 59)["id"] == t1
    assert kb.task("abcd2")["id"] == t2  # unique prefix
    with pytest.raises(KnowledgeBaseError, match="ambiguous"):
        kb.task("abcd")
    with pytest.raises(KnowledgeBaseError, match="no task with key 'abc'"):
        kb.task("abc")  # prefixes need >= 4 characters
    with pytest.raises(KnowledgeBaseError, match="no task with key"):
        kb.task("abc%")  # LIKE wildcards are taken literally
    with pytest.raises(KnowledgeBaseError, match="no task with key"):
        kb.task("abcd3")
    with pytest.raises(KnowledgeBaseError, match="no task with id 42"):
        kb.task(42)


def test_add_architecture_idempotent(kb):
    a1 = kb.add_architecture(A1)
    assert kb.add_architecture(A1) == a1
    assert kb.add_architecture(A1, canonical="c1") == a1  # fills the missing canonical
    assert kb.architectures()[0]["canonical"] == "c1"
    assert kb.add_architecture(A1, canonical="other") == a1  # ... but never overwrites it
    assert kb.architectures()[0]["canonical"] == "c1"
    assert kb.add_architecture(A1, space="other-space") != a1
    assert kb.add_architecture(A2) not in (a1,)
    assert kb.counts()["architectures"] == 3
    with pytest.raises(ValueError):
        kb.add_architecture("")


# ----------------------------------------------------------------------------- evaluations


def test_duplicate_evaluation_rejected(kb):
    t, a = _task(kb), kb.add_architecture(A1)
    assert _eval(kb, t, a, val_acc=0.5) is True
    before = kb.counts()
    assert _eval(kb, t, a, val_acc=0.9) is False
    assert kb.counts() == before
    assert kb.evaluations()[0]["val_acc"] == pytest.approx(0.5)  # first result kept
    # another seed, recipe hash or architecture is a new evaluation
    assert _eval(kb, t, a, seed=1) is True
    assert _eval(kb, t, a, recipe_hash="h2") is True
    assert _eval(kb, t, kb.add_architecture(A2)) is True
    assert kb.counts()["evaluations"] == 4


def test_evaluation_validation_writes_nothing(kb):
    t, a = _task(kb), kb.add_architecture(A1)
    with pytest.raises(ValueError, match="fraction"):
        _eval(kb, t, a, val_acc=93.5)  # percent, not a fraction
    with pytest.raises(ValueError, match="unknown metric"):
        _eval(kb, t, a, val_accuracy=0.5)
    with pytest.raises(ValueError, match="params"):
        _eval(kb, t, a, params=1.5)
    with pytest.raises(KnowledgeBaseError, match="no task id 99"):
        _eval(kb, 99, a)
    with pytest.raises(KnowledgeBaseError, match="no architecture id 99"):
        _eval(kb, t, 99)
    assert kb.counts()["evaluations"] == 0
    # numpy scalars are fine; NaN losses become null
    assert _eval(
        kb,
        t,
        a,
        val_acc=np.float32(0.25),
        test_acc=np.float64(0.5),
        params=np.int64(10),
        val_loss=float("nan"),
    )
    (row,) = kb.evaluations()
    assert row["val_acc"] == pytest.approx(0.25) and row["params"] == 10
    assert row["val_loss"] is None


def test_add_evaluations_batch(kb):
    t1, t2 = _task(kb), _task(kb, K2, source="svhn")
    a1 = kb.add_architecture(A1)
    _eval(kb, t1, a1, seed=0)
    rows = [
        {
            "task_id": t1,
            "arch_id": a1,
            "recipe": "quick",
            "recipe_hash": "h1",
            "seed": 0,
            "metrics": {"val_acc": 0.1},
        },  # duplicate
        {
            "task_id": t1,
            "arch_id": a1,
            "recipe": "quick",
            "recipe_hash": "h1",
            "seed": 1,
            "metrics": {"val_acc": 0.2},
        },
        # task key + architecture string (added on the fly), metrics at the top level
        {
            "task_key": K2,
            "arch": A2,
            "canonical": "c2",
            "recipe": "quick",
            "recipe_hash": "h1",
            "seed": 0,
            "val_acc": 0.3,
            "test_acc": 0.35,
            "seconds": 2.0,
        },
        {
            "task_key": K2,
            "arch": A2,
            "recipe": "quick",
            "recipe_hash": "h1",
            "seed": 0,
            "val_acc": 0.3,
        },  # duplicate of the previous row
    ]
    assert kb.add_evaluations(rows) == 2
    assert kb.counts() == {"tasks": 2, "architectures": 2, "evaluations": 3}
    (row,) = kb.evaluations(task_key=K2)
    assert row["arch"] == A2 and row["canonical"] == "c2" and row["test_acc"] == 0.35
    assert kb.add_evaluations(rows) == 0
    assert kb.add_evaluations([]) == 0

    # one invalid row: nothing of the batch is stored
    bad = [
        {
            "task_id": t2,
            "arch_id": a1,
            "recipe": "quick",
            "recipe_hash": "h9",
            "seed": 0,
            "metrics": {"val_acc": 0.5},
        },
        {
            "task_id": t2,
            "arch": A3,
            "recipe": "quick",
            "recipe_hash": "h9",
            "seed": 0,
            "metrics": {"val_acc": 50.0},
        },
    ]
    with pytest.raises(ValueError):
        kb.add_evaluations(bad)
    assert kb.counts() == {"tasks": 2, "architectures": 2, "evaluations": 3}
    with pytest.raises(KnowledgeBaseError, match="no task with key"):
        kb.add_evaluations(
            [
                {
                    "task_key": K3,
                    "arch": A1,
                    "recipe": "q",
                    "recipe_hash": "h",
                    "seed": 0,
                    "val_acc": 0.5,
                }
            ]
        )
    with pytest.raises(ValueError, match="row 0.*recipe_hash"):
        kb.add_evaluations([{"task_id": t1, "arch_id": a1, "recipe": "q", "seed": 0}])


def test_done_keys_and_has_evaluation(kb):
    t1, t2 = _task(kb), _task(kb, K2)
    a1, a2 = kb.add_architecture(A1), kb.add_architecture(A2)
    assert kb.done_keys() == set()
    _eval(kb, t1, a1, seed=0, recipe_hash="h1")
    _eval(kb, t1, a2, seed=3, recipe_hash="h1")
    _eval(kb, t2, a1, seed=0, recipe_hash="h2")
    assert kb.done_keys() == {(K1, A1, 0), (K1, A2, 3), (K2, A1, 0)}
    assert kb.done_keys("h1") == {(K1, A1, 0), (K1, A2, 3)}
    assert kb.done_keys("nope") == set()
    assert kb.has_evaluation(K1, A2, "h1", 3)
    assert not kb.has_evaluation(K1, A2, "h1", 0)
    assert not kb.has_evaluation(K1, A2, "h2", 3)
    assert not kb.has_evaluation(K2, A2, "h1", 3)
    assert not kb.has_evaluation(K1, A2, "h1", 3, space="other")


def test_evaluation_filters(kb):
    t1, t2 = _task(kb), _task(kb, K2, source="svhn")
    a1 = kb.add_architecture(A1)
    _eval(kb, t1, a1, recipe="quick", recipe_hash="h1")
    _eval(kb, t1, a1, recipe="full", recipe_hash="h2")
    _eval(kb, t2, a1, recipe="quick", recipe_hash="h1")
    assert len(kb.evaluations()) == 3
    assert {r["recipe"] for r in kb.evaluations(task_key=K1)} == {"quick", "full"}
    assert [r["task_key"] for r in kb.evaluations(recipe="quick")] == [K1, K2]
    assert [r["recipe"] for r in kb.evaluations(source="svhn")] == ["quick"]
    assert kb.evaluations(source="svhn", recipe="full") == []
    assert set(kb.evaluations()[0]) == set(EVALUATION_COLUMNS)


def test_transaction_rolls_back_on_error(kb):
    t = _task(kb)
    with pytest.raises(RuntimeError), kb.transaction():
        a = kb.add_architecture(A1)
        _eval(kb, t, a)
        raise RuntimeError("worker crashed")
    assert kb.counts() == {"tasks": 1, "architectures": 0, "evaluations": 0}
    # a failing nested write is undone alone; the outer transaction still commits
    with kb.transaction():
        a = kb.add_architecture(A1)
        with pytest.raises(ValueError):
            _eval(kb, t, a, val_acc=2.0)
        _eval(kb, t, a)
    assert kb.counts() == {"tasks": 1, "architectures": 1, "evaluations": 1}


def test_concurrent_reader_sees_only_committed(tmp_path):
    path = tmp_path / "kb.sqlite"
    with KnowledgeBase(path) as writer, KnowledgeBase(path, readonly=True) as reader:
        t = _task(writer)
        a = writer.add_architecture(A1)
        _eval(writer, t, a, seed=0)
        assert reader.counts()["evaluations"] == 1
        with writer.transaction():  # holds the write lock; readers are not blocked
            _eval(writer, t, a, seed=1)
            _eval(writer, t, a, seed=2)
            assert writer.counts()["evaluations"] == 3
            assert reader.counts()["evaluations"] == 1
            assert reader.done_keys() == {(K1, A1, 0)}
        assert reader.counts()["evaluations"] == 3
        # a second writable connection (another process) reads the committed rows too
        with KnowledgeBase(path) as other:
            assert other.done_keys() == {(K1, A1, 0), (K1, A1, 1), (K1, A1, 2)}


def test_export_csv(kb, tmp_path):
    out = tmp_path / "export.csv"
    assert kb.export_csv(out) == 0
    with out.open(newline="") as fh:
        assert list(csv.reader(fh)) == [list(EVALUATION_COLUMNS)]

    t1, t2 = _task(kb), _task(kb, K2, source="svhn")
    a1, a2 = kb.add_architecture(A1, canonical="c1"), kb.add_architecture(A2)
    _eval(kb, t1, a1, val_acc=0.25, test_acc=0.5)
    _eval(kb, t1, a2, val_acc=0.75)
    _eval(kb, t2, a1, seed=4, val_acc=0.5)
    out.write_text("old content")
    assert kb.export_csv(out) == 3
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    assert list(rows[0]) == list(EVALUATION_COLUMNS)
    assert rows[0]["task_key"] == K1 and rows[0]["arch"] == A1 and rows[0]["canonical"] == "c1"
    assert float(rows[0]["val_acc"]) == 0.25 and float(rows[0]["test_acc"]) == 0.5
    assert rows[1]["test_acc"] == "" and rows[1]["canonical"] == ""
    assert rows[2]["seed"] == "4" and rows[2]["source"] == "svhn"
    assert sorted(p.name for p in tmp_path.iterdir() if "export" in p.name) == ["export.csv"]
    with pytest.raises(KnowledgeBaseError, match="missing"):
        kb.export_csv(tmp_path / "no" / "such" / "dir.csv")


def test_export_csv_into_an_unwritable_folder_raises(kb, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    with pytest.raises(KnowledgeBaseError, match=r"export\.csv: Permission denied"):
        kb.export_csv(tmp_path / "export.csv")


# ----------------------------------------------------------------------------- stats


def test_stats_on_tiny_kb(kb):
    t1 = _task(kb, name="alpha", meta_features={"f": 1.0})
    t2 = _task(kb, K2, source="published-x", name="beta")
    _task(kb, K3, name="empty")
    a1, a2, a3 = (
        kb.add_architecture(x, canonical=c) for x, c in ((A1, "c"), (A2, "c"), (A3, None))
    )
    _eval(kb, t1, a1, seed=0, val_acc=0.5, test_acc=0.4)
    _eval(kb, t1, a1, seed=1, val_acc=0.7, test_acc=0.6)
    _eval(kb, t1, a2, seed=0, val_acc=0.8, test_acc=0.3)
    # a task with test accuracies only (like a published table): best by test accuracy
    _eval(kb, t2, a3, recipe="published", recipe_hash="hp", test_acc=0.9)
    _eval(kb, t2, a2, recipe="published", recipe_hash="hp", test_acc=0.95)

    stats = kb_stats(kb)
    json.dumps(stats, allow_nan=False)  # JSON-able
    assert stats["counts"] == {"tasks": 3, "architectures": 3, "evaluations": 5}
    assert stats["schema_version"] == SCHEMA_VERSION
    assert {k: {m: v[m] for m in ("tasks", "evaluations")}
            for k, v in stats["sources"].items()} == {
        "cifar10": {"tasks": 2, "evaluations": 3},
        "published-x": {"tasks": 1, "evaluations": 2},
    }
    assert stats["sources"]["cifar10"]["fidelity"] == "own runs (per recipe)"
    by_name = {t["name"]: t for t in stats["tasks"]}
    alpha = by_name["alpha"]
    assert alpha["evaluations"] == 3 and alpha["architectures"] == 2
    assert alpha["meta_features"] is True
    vals = [0.5, 0.7, 0.8]
    mean = sum(vals) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / 3)
    assert alpha["val_acc"]["n"] == 3
    assert alpha["val_acc"]["min"] == pytest.approx(0.5)
    assert alpha["val_acc"]["mean"] == pytest.approx(mean)
    assert alpha["val_acc"]["max"] == pytest.approx(0.8)
    assert alpha["val_acc"]["std"] == pytest.approx(std)
    assert alpha["test_acc"]["mean"] == pytest.approx(13 / 30)
    # best by mean val accuracy: A2 (0.8) beats A1 (mean 0.6) though A1 has the best test acc
    assert alpha["best"]["arch"] == A2
    assert alpha["best"]["metric"] == "val_acc"
    assert alpha["best"]["value"] == pytest.approx(0.8)

    beta = by_name["beta"]
    assert beta["val_acc"] == {"n": 0, "min": None, "mean": None, "max": None, "std": None}
    assert beta["test_acc"]["std"] == pytest.approx(0.025)
    assert beta["best"]["arch"] == A2 and beta["best"]["metric"] == "test_acc"

    empty = by_name["empty"]
    assert empty["evaluations"] == 0 and empty["best"] is None
    assert empty["val_acc"]["n"] == 0

    overall = stats["overall"]
    assert overall["distinct_architectures"] == 3
    assert overall["distinct_canonical"] == 1  # A1 and A2 share "c", A3 has none
    assert overall["tasks_with_2plus_evals"] == 2
    assert overall["tasks_with_meta_features"] == 1
    assert overall["recipes"] == {"published": 2, "quick": 3}

    # equal values have a std of exactly 0 (no cancellation error)
    t4 = _task(kb, "4" * 64)
    for seed in range(3):
        _eval(kb, t4, a1, seed=seed, val_acc=0.9, test_acc=0.9)
    (four,) = [t for t in kb_stats(kb)["tasks"] if t["key"] == "4" * 64]
    assert four["val_acc"]["std"] == 0.0

    tables = format_stats(stats)
    assert len(tables) == 3
    buf = io.StringIO()
    console = Console(file=buf, width=200)
    for table in tables:
        console.print(table)
    text = buf.getvalue()
    assert "alpha" in text and "published-x" in text
    assert "80.00" in text  # accuracies shown in percent
    assert len(format_stats(stats, max_tasks=1)[2].rows) == 1


def test_merge_copies_everything_once(kb, tmp_path):
    t = _task(kb, K1, classes=[1, 2], resolution=16, channels=3, num_classes=2,
              sizes={"train": 20, "val": 4, "test": 6}, seed=3, spec={"n_way": 2},
              meta_features={"f": 1.5})
    a1, a2 = kb.add_architecture(A1), kb.add_architecture(A2)
    kb.add_evaluation(t, a1, recipe="r", recipe_hash="h1", seed=0,
                      metrics={"val_acc": 0.5, "test_acc": 0.4, "params": 7},
                      recipe_config={"epochs": 6}, seconds=2.0, extra={"epochs_run": 6})
    _eval(kb, t, a2, seed=1, recipe_hash="h2", val_acc=0.25)
    with KnowledgeBase(tmp_path / "into.db") as into:
        own = into.add_task(K2, name="own", source="mine")
        into.add_evaluation(own, into.add_architecture(A3), recipe="r", recipe_hash="h1",
                            seed=0, metrics={"val_acc": 0.9})
        assert into.merge_from(kb) == {"tasks": 1, "evaluations": 2}
        assert into.merge_from(kb) == {"tasks": 0, "evaluations": 0}
        assert into.counts() == {"tasks": 2, "architectures": 3, "evaluations": 3}
        copied = into.task(K1)
        original = kb.task(K1)
        for field in ("name", "source", "classes", "resolution", "channels", "num_classes",
                      "sizes", "seed", "spec", "meta_features"):
            assert copied[field] == original[field], field
        rows = {r["arch"]: r for r in into.evaluations(task_key=K1)}
        assert rows[A1]["params"] == 7 and rows[A1]["extra"] == {"epochs_run": 6}
        assert rows[A2]["seed"] == 1 and rows[A2]["val_acc"] == 0.25
        configs = {r["hash"]: r["config"] for r in into.recipes()}
        assert configs["h1"] == {"epochs": 6}  # the recipe's config travels with it
        before = {r["arch"]: r for r in kb.evaluations(task_key=K1)}
        for arch in (A1, A2):  # who measured it and when are kept
            assert rows[arch]["created_at"] == before[arch]["created_at"]
            assert rows[arch]["version"] == before[arch]["version"]


def test_merge_of_a_row_this_schema_refuses_names_the_source_and_writes_nothing(kb, tmp_path):
    _task(kb, K1)
    kb.conn.execute("UPDATE tasks SET classes = '[1.5]'")  # written by another tool
    kb.conn.commit()
    with KnowledgeBase(tmp_path / "into.db") as into:
        with pytest.raises(KnowledgeBaseError, match=r"kb.sqlite: cannot merge: classes"):
            into.merge_from(kb)
        assert into.counts()["tasks"] == 0
