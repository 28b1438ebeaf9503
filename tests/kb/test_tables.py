"""Tests of importing published NB201 tables into a knowledge base (metanas.kb.tables)."""

from __future__ import annotations

import pytest

from metanas.errors import KnowledgeBaseError
from metanas.kb import KnowledgeBase, import_table, published_task_key


@pytest.fixture
def genotype():
    return pytest.importorskip("metanas.spaces.nb201.genotype")


@pytest.fixture
def kb(tmp_path):
    with KnowledgeBase(tmp_path / "kb.sqlite") as store:
        yield store


def _arch(genotype, i: int) -> str:
    return genotype.NB201Arch.from_index(i).to_string()


def _write(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_published_task_key():
    key = published_task_key("cifar10")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == published_task_key("cifar10")
    assert key != published_task_key("cifar100")


def test_import_percent_values_and_reimport(genotype, kb, tmp_path):
    archs = [_arch(genotype, i) for i in (0, 1234, 15624)]
    csv_path = _write(
        tmp_path / "nb201_cifar10.csv",
        [
            "index,arch_str,valid-accuracy,test-accuracy,params,notes",
            f'0,"{archs[0]}",10.0,10.5,1000,a',
            f'1,"{archs[1]}",85.25,,2000,b',  # empty test cell -> missing
            f'2,"{archs[2]}",91.5,93.75,3000,"c, with comma"',
        ],
    )
    summary = import_table(kb, csv_path, dataset="cifar10")
    assert summary["rows"] == 3
    assert summary["imported"] == 3
    assert summary["skipped_duplicates"] == 0
    assert summary["arch_column"] == "arch_str"
    assert summary["metric_columns"] == {
        "val_acc": "valid-accuracy",
        "test_acc": "test-accuracy",
        "params": "params",
    }
    assert sorted(summary["percent_columns"]) == ["test-accuracy", "valid-accuracy"]
    assert summary["task_key"] == published_task_key("cifar10")
    assert summary["dataset"] == "cifar10"

    task = kb.task(published_task_key("cifar10"))
    assert task["source"] == "cifar10" and task["name"] == "cifar10"
    rows = kb.evaluations(source="cifar10")
    assert [r["arch"] for r in rows] == archs
    assert [r["val_acc"] for r in rows] == pytest.approx([0.10, 0.8525, 0.915])
    assert rows[0]["test_acc"] == pytest.approx(0.105)
    assert rows[1]["test_acc"] is None
    assert rows[2]["test_acc"] == pytest.approx(0.9375)
    assert [r["params"] for r in rows] == [1000, 2000, 3000]
    assert {r["recipe"] for r in rows} == {"published"}
    assert {r["seed"] for r in rows} == {0}
    assert {r["recipe_hash"] for r in rows} == {summary["recipe_hash"]}
    for r in rows:
        assert r["canonical"] == genotype.NB201Arch.from_string(r["arch"]).canonical_hash()

    # importing the same file again adds nothing
    again = import_table(kb, csv_path, dataset="cifar10")
    assert again["imported"] == 0 and again["skipped_duplicates"] == 3
    assert again["recipe_hash"] == summary["recipe_hash"]
    assert kb.counts() == {"tasks": 1, "architectures": 3, "evaluations": 3}

    # the same table for another dataset is another task
    other = import_table(kb, csv_path, dataset="cifar100")
    assert other["imported"] == 3 and other["task_key"] != summary["task_key"]
    assert kb.counts() == {"tasks": 2, "architectures": 3, "evaluations": 6}


def test_fractions_not_scaled_and_duplicates_within_file(genotype, kb, tmp_path):
    a, b = _arch(genotype, 7), _arch(genotype, 8)
    csv_path = _write(
        tmp_path / "t.csv",
        ["architecture,accuracy", f"{a},0.5", f"{b},1.0", f"{a},0.7"],
    )
    summary = import_table(kb, csv_path, dataset="svhn", recipe="paper", seed=3)
    assert summary["metric_columns"] == {"test_acc": "accuracy"}
    assert summary["percent_columns"] == []
    assert summary["rows"] == 3
    assert summary["imported"] == 2 and summary["skipped_duplicates"] == 1
    rows = kb.evaluations()
    assert [(r["arch"], r["test_acc"], r["seed"], r["recipe"]) for r in rows] == [
        (a, 0.5, 3, "paper"),
        (b, 1.0, 3, "paper"),
    ]


def test_autodetect_arch_column_by_content_and_explicit_columns(genotype, kb, tmp_path):
    a, b = _arch(genotype, 100), _arch(genotype, 200)
    csv_path = _write(tmp_path / "t.csv", ["id,cell,score", f"x,{a},70", f"y,{b},80"])
    with pytest.raises(KnowledgeBaseError, match="no metric column"):
        import_table(kb, csv_path, dataset="d")  # "score" is not a known metric name
    summary = import_table(kb, csv_path, dataset="d", metric_columns={"val_acc": "score"})
    assert summary["arch_column"] == "cell"  # found by its content
    assert summary["metric_columns"] == {"val_acc": "score"}
    assert [r["val_acc"] for r in kb.evaluations()] == pytest.approx([0.7, 0.8])

    with pytest.raises(KnowledgeBaseError, match=r"t\.csv.*no column 'nope'"):
        import_table(kb, csv_path, dataset="d", arch_column="nope")
    with pytest.raises(KnowledgeBaseError, match=r"no column 'nope' \(for metric val_acc\)"):
        import_table(kb, csv_path, dataset="d", metric_columns={"val_acc": "nope"})
    with pytest.raises(KnowledgeBaseError, match="unknown metric 'score'"):
        import_table(kb, csv_path, dataset="d", metric_columns={"score": "val_acc"})


def test_invalid_arch_row_reports_row_and_writes_nothing(genotype, kb, tmp_path):
    a, b = _arch(genotype, 1), _arch(genotype, 2)
    csv_path = _write(
        tmp_path / "bad_arch.csv",
        [
            "arch,test_acc",
            f"{a},90",
            f"{b},91",
            "|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|,92",
        ],
    )
    with pytest.raises(KnowledgeBaseError) as info:
        import_table(kb, csv_path, dataset="cifar10")
    message = str(info.value)
    assert "bad_arch.csv" in message and "row 3" in message and "'arch'" in message
    assert "conv_7x7" in message
    assert kb.counts() == {"tasks": 0, "architectures": 0, "evaluations": 0}


def test_non_numeric_metric_reports_row_and_column(genotype, kb, tmp_path):
    a, b = _arch(genotype, 1), _arch(genotype, 2)
    csv_path = _write(tmp_path / "t.csv", ["arch,val_acc", f"{a},0.5", f"{b},high"])
    with pytest.raises(KnowledgeBaseError, match=r"t\.csv, row 2 .*'high'.*'val_acc'"):
        import_table(kb, csv_path, dataset="d")
    assert kb.counts()["evaluations"] == 0


def test_out_of_range_accuracy(genotype, kb, tmp_path):
    a, b = _arch(genotype, 1), _arch(genotype, 2)
    csv_path = _write(tmp_path / "t.csv", ["arch,test_acc", f"{a},50", f"{b},150"])
    with pytest.raises(KnowledgeBaseError, match=r"row 2 .*out of range"):
        import_table(kb, csv_path, dataset="d")


def test_import_errors(genotype, kb, tmp_path):
    with pytest.raises(KnowledgeBaseError, match=r"missing\.csv does not exist"):
        import_table(kb, tmp_path / "missing.csv", dataset="d")

    no_arch = _write(tmp_path / "no_arch.csv", ["name,test_acc", "resnet,90", "vgg,91"])
    with pytest.raises(KnowledgeBaseError, match=r"no architecture column found in .*no_arch"):
        import_table(kb, no_arch, dataset="d")

    no_metric = _write(tmp_path / "no_metric.csv", ["arch,flops", f"{_arch(genotype, 3)},12.5"])
    with pytest.raises(KnowledgeBaseError, match=r"no metric column found in .*no_metric"):
        import_table(kb, no_metric, dataset="d")

    empty = _write(tmp_path / "empty.csv", [])
    empty.write_text("")
    with pytest.raises(KnowledgeBaseError, match="empty"):
        import_table(kb, empty, dataset="d")

    header_only = _write(tmp_path / "header_only.csv", ["arch,test_acc"])
    with pytest.raises(KnowledgeBaseError, match=r"header_only\.csv has a header but no data"):
        import_table(kb, header_only, dataset="d")  # used to add a task without evaluations
    assert kb.counts() == {"tasks": 0, "architectures": 0, "evaluations": 0}


def test_params_in_millions_are_ignored_when_autodetected(genotype, kb, tmp_path):
    csv_path = _write(
        tmp_path / "t.csv", ["arch,test_acc,params", f"{_arch(genotype, 5)},0.9,0.37"]
    )
    summary = import_table(kb, csv_path, dataset="d")
    assert summary["metric_columns"] == {"test_acc": "test_acc"}
    assert "params" in summary["ignored_columns"]
    assert kb.evaluations()[0]["params"] is None
    with pytest.raises(KnowledgeBaseError, match="integer count"):
        import_table(
            kb, csv_path, dataset="d", metric_columns={"test_acc": "test_acc", "params": "params"}
        )
