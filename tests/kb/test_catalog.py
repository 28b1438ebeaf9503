"""Shipped knowledge bases: found by name, verified by checksum, never read when corrupted."""

from __future__ import annotations

import pytest

from metanas.errors import KnowledgeBaseError
from metanas.kb import KnowledgeBase, kb_names, open_kb, pack_kb, resolve_kb
from metanas.kb.catalog import catalog


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    monkeypatch.setenv("METANAS_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src.db"
    with KnowledgeBase(src) as kb:
        tid = kb.add_task("t0", name="t0", source="synthetic", resolution=16)
        aid = kb.add_architecture("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|")
        kb.add_evaluation(tid, aid, recipe="r", recipe_hash="h", seed=0,
                          metrics={"val_acc": 0.5, "test_acc": 0.4})
    root = tmp_path / "assets"
    pack_kb(src, "toy-v1", root=root, description="toy")
    return root


def test_pack_then_resolve_by_name_and_default(shipped):
    entry = catalog(shipped)["entries"]["toy-v1"]
    assert entry["evaluations"] == 1 and entry["tasks"] == 1
    assert kb_names(shipped) == ["default", "toy-v1"]
    path = resolve_kb("default", root=shipped)
    assert path == resolve_kb("toy-v1", root=shipped)
    with KnowledgeBase(path, readonly=True) as kb:
        assert kb.counts()["evaluations"] == 1
        assert kb.evaluations()[0]["test_acc"] == pytest.approx(0.4)


def test_edited_cache_copy_is_replaced(shipped):
    path = resolve_kb("toy-v1", root=shipped)
    path.write_bytes(b"not sqlite")
    again = resolve_kb("toy-v1", root=shipped)
    with KnowledgeBase(again, readonly=True) as kb:
        assert kb.counts()["evaluations"] == 1


def test_corrupted_shipped_file_is_refused(shipped):
    xz = shipped / "toy-v1.db.xz"
    data = bytearray(xz.read_bytes())
    data[-20] ^= 0xFF
    xz.write_bytes(bytes(data))
    with pytest.raises(KnowledgeBaseError, match="checksum"):
        resolve_kb("toy-v1", root=shipped)


def test_unknown_name_lists_the_shipped_ones(shipped):
    with pytest.raises(KnowledgeBaseError, match="toy-v1"):
        resolve_kb("nope", root=shipped)


def test_paths_pass_through(tmp_path):
    assert resolve_kb(tmp_path / "x.db") == tmp_path / "x.db"
    assert resolve_kb("some/dir/file") .name == "file"


def test_the_package_ships_a_default_knowledge_base(tmp_path, monkeypatch):
    monkeypatch.setenv("METANAS_CACHE_DIR", str(tmp_path))
    with open_kb("default") as kb:
        counts = kb.counts()
    assert counts["tasks"] >= 48 and counts["evaluations"] >= 1440
