"""Published sources: provenance, fidelity, checks before writing, idempotent import."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from metanas.data import load_dataset
from metanas.errors import KnowledgeBaseError
from metanas.features.standin import standin_describer
from metanas.kb import KnowledgeBase
from metanas.kb import sources as kb_sources
from metanas.kb.sources import SOURCES, import_source, source_summary
from metanas.kb.views import fidelity_of
from metanas.paths import shared_datasets_dir
from metanas.spaces.nb201 import NB201Arch

CELLS = [NB201Arch.sample(i).to_string() for i in range(6)]


def _multi_task_csv(path, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["record", "split", "task", "task_classes", "arch", "acc"])
        w.writerows(rows)
    return path


@pytest.fixture()
def small_source(monkeypatch, tmp_path):
    """A 4-row, 3-task stand-in for the MetaD2A table (10-way tasks so digits can stand in)."""
    src = dataclasses.replace(SOURCES["metad2a-imagenet32"], rows=4, num_classes=10)
    monkeypatch.setitem(SOURCES, src.name, src)
    rows = [[0, "train", 7, "1 2 3", CELLS[0], "70.5"], [1, "valid", 7, "1 2 3", CELLS[1], "60"],
            [2, "train", 9, "4 5 6", CELLS[2], "80"], [3, "train", 11, "4 5 6", CELLS[0], "75"]]
    return src, _multi_task_csv(tmp_path / "db.csv", rows)


def test_import_keeps_provenance_and_fidelity_and_is_idempotent(small_source, tmp_path):
    src, path = small_source
    with KnowledgeBase(tmp_path / "kb.db") as kb:
        summary = import_source(kb, src.name, path, verify_checksum=False)
        assert summary["tasks"] == 3 and summary["imported"] == 4
        again = import_source(kb, src.name, path, verify_checksum=False)
        assert again["imported"] == 0 and again["skipped_duplicates"] == 4
        assert kb.counts()["evaluations"] == 4
        task = next(t for t in kb.tasks() if t["name"].endswith("-7"))
        assert task["spec"]["provenance"]["licence"] == "MIT"
        assert task["spec"]["split"] == "train" and task["classes"] == [1, 2, 3]
        accs = sorted(r["test_acc"] for r in kb.evaluations(task_key=task["key"]))
        assert accs == pytest.approx([0.60, 0.705])
        (recipe,) = kb.recipes()
        fid = fidelity_of(recipe["config"], task)
        assert fid == {"epochs": None, "C": 16, "N": 5, "resolution": 32,
                       "images_per_class": 1300}
        (entry,) = source_summary(kb)
        assert entry["tasks"] == 3 and entry["evaluations"] == 4 and entry["published"]


def test_bad_files_are_refused_before_writing(small_source, tmp_path):
    src, path = small_source
    kb_path = tmp_path / "kb.db"
    with KnowledgeBase(kb_path) as kb:
        with pytest.raises(KnowledgeBaseError, match="checksum"):
            import_source(kb, src.name, path)  # not the published file
        bad = _multi_task_csv(tmp_path / "bad.csv", [
            [0, "train", 1, "1", CELLS[0], "50"], [1, "train", 1, "1", CELLS[1], "50"],
            [2, "train", 1, "1", CELLS[2], "50"], [3, "train", 1, "1", "|bogus~0|", "50"]])
        with pytest.raises(KnowledgeBaseError, match="line 5"):
            import_source(kb, src.name, bad, verify_checksum=False)
        pct = _multi_task_csv(tmp_path / "pct.csv", [
            [0, "train", 1, "1", CELLS[0], "50"], [1, "train", 1, "1", CELLS[1], "150"],
            [2, "train", 1, "1", CELLS[2], "50"], [3, "train", 1, "1", CELLS[3], "50"]])
        with pytest.raises(KnowledgeBaseError, match="percentage"):
            import_source(kb, src.name, pct, verify_checksum=False)
        short = _multi_task_csv(tmp_path / "short.csv", [[0, "train", 1, "1", CELLS[0], "5"]])
        with pytest.raises(KnowledgeBaseError, match="1 rows"):
            import_source(kb, src.name, short, verify_checksum=False)
        with pytest.raises(KnowledgeBaseError, match="unknown published source"):
            import_source(kb, "nope", path)
        assert kb.counts()["evaluations"] == 0


def test_standin_features_are_deterministic_and_sized_like_the_source(small_source, tmp_path):
    src, path = small_source
    describe = standin_describer(load_dataset("digits"), max_train_per_class=20)
    feats = []
    for name in ("a.db", "b.db"):
        with KnowledgeBase(tmp_path / name) as kb:
            summary = import_source(kb, src.name, path, verify_checksum=False,
                                    describe=describe)
            assert summary["described"] == 3
            feats.append([t["meta_features"] for t in kb.tasks()])
    assert feats[0] == feats[1]
    assert feats[0][0]["log10_n_train"] == pytest.approx(4.41497, abs=1e-4)  # 26,000
    assert feats[0][0] != feats[0][1]  # tasks get their own stand-in classes


def test_source_checksums_are_the_shared_files():
    shared = shared_datasets_dir()
    if shared is None or not (shared / "knowledge").is_dir():
        pytest.skip("../shared/datasets/knowledge not present")
    for src in SOURCES.values():
        assert kb_sources._sha256(shared / "knowledge" / src.file) == src.sha256, src.name
