"""MetaD2A learns from published tasks (tables without images) through their stand-in images."""

from __future__ import annotations

import csv
import dataclasses
import shutil

import numpy as np
import pytest
import torch

from metanas.data import load_dataset
from metanas.errors import KnowledgeBaseError
from metanas.features.standin import standin_classes
from metanas.kb import KnowledgeBase
from metanas.kb.sources import SOURCES, Fidelity, import_source
from metanas.methods.metad2a import MetaD2AConfig, MetaD2AMethod
from metanas.methods.metad2a.data import class_pools, dataset_pool_images, kb_task_pools
from metanas.methods.metad2a.training import _cell_draw, load_meta_data
from metanas.spaces.nb201 import NB201Arch

from .conftest import TINY, stats_extractor

SOURCE = "metad2a-imagenet32"
CELLS = [NB201Arch.sample(i).to_string() for i in range(8)]
# task -> cells: one with 1 cell, one with 2, one with 3 (the published table's shapes)
ROWS = [("7", CELLS[0], 70.0), ("9", CELLS[1], 80.0), ("9", CELLS[2], 75.0),
        ("11", CELLS[3], 60.0), ("11", CELLS[4], 65.0), ("11", CELLS[5], 62.0)]


@pytest.fixture()
def mixed_kb(image_kb, image_source, monkeypatch, tmp_path):
    """The image tasks of ``image_kb`` plus a 3-task published source whose stand-in is the
    same synthetic image dataset (4-way tasks at 16 px)."""
    src = dataclasses.replace(
        SOURCES[SOURCE], rows=len(ROWS), num_classes=4, standin_dataset="synthetic-images",
        fidelity=Fidelity(epochs=None, C=16, N=5, resolution=16, images_per_class=1300))
    monkeypatch.setitem(SOURCES, SOURCE, src)
    table = tmp_path / "db.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["record", "split", "task", "task_classes", "arch", "acc"])
        w.writerows([i, "train", t, "1 2 3 4", a, acc] for i, (t, a, acc) in enumerate(ROWS))
    path = tmp_path / "mixed.db"
    shutil.copyfile(image_kb, path)
    with KnowledgeBase(path) as kb:
        import_source(kb, SOURCE, table, verify_checksum=False)
    return path


def test_published_tasks_see_their_standin_classes(mixed_kb, image_source):
    ext = stats_extractor()
    with KnowledgeBase(mixed_kb, readonly=True) as kb:
        published = [t for t in kb.tasks() if t["source"] == SOURCE]
    pools = kb_task_pools(published, ext, source=image_source, per_class=10, seed=0,
                          cache=False)
    ds = load_dataset(image_source, progress=False)
    images, labels = dataset_pool_images(ds, resolution=16, per_class=10, seed=0)
    bank = class_pools(ext, images, labels)
    drawn = set()
    for t in published:
        classes, _ = standin_classes(ds.num_classes, SOURCE, t["name"], 4)
        drawn.add(classes)
        assert len(pools[t["key"]]) == 4
        for got, c in zip(pools[t["key"]], classes, strict=True):
            assert torch.equal(got, bank[c])
    assert len(drawn) > 1  # tasks are told apart by their stand-in classes


def test_one_cell_tasks_teach_only_the_generator(mixed_kb, image_source):
    config = MetaD2AConfig(**TINY)
    with KnowledgeBase(mixed_kb, readonly=True) as kb:
        data = load_meta_data(kb, stats_extractor(), config, source=image_source,
                              cache=False)
        assert len(data) == 24 + 3
        sizes = sorted(len(a) for a in data.archs)
        assert sizes[:3] == [1, 2, 3]
        every = np.arange(len(data))
        assert len(data.with_cells(every, config.pred_min_cells)) == 24 + 2
        assert len(data.with_cells(every, config.gen_min_cells)) == 24 + 3
        left_out = load_meta_data(kb, stats_extractor(),
                                  MetaD2AConfig(**TINY, exclude_sources=SOURCE),
                                  source=image_source, cache=False)
        assert len(left_out) == 24
        with pytest.raises(KnowledgeBaseError, match="without synthetic-images"):
            load_meta_data(kb, stats_extractor(),
                           MetaD2AConfig(**TINY, exclude_sources="synthetic-images"),
                           source=image_source, cache=False)


def test_meta_train_on_mixed_sources_and_search_at_a_chosen_resolution(mixed_kb, image_source):
    with KnowledgeBase(mixed_kb, readonly=True) as kb:
        model = MetaD2AMethod.meta_train(kb, source=image_source, extractor=stats_extractor(),
                                         cache=False, seed=0,
                                         **{**TINY, "gen_epochs": 3, "pred_epochs": 10})
    assert model.info["tasks"] == 27
    ds = load_dataset("digits")
    res = model.search(ds, top=3, seed=0, candidates=20, resamples=2, resolution=12)
    assert res.details["resolution"] == 12 and len(res.candidates) == 3
    assert model.search(ds, top=3, seed=0, candidates=20, resamples=2).details[
        "resolution"] == 16


def test_dense_tasks_are_subsampled_per_step():
    gen = torch.Generator().manual_seed(0)
    assert _cell_draw(10, 512, gen) == slice(None)
    draw = _cell_draw(15_625, 512, gen)
    assert len(draw) == 512 and len(set(draw.tolist())) == 512


def test_pruned_inputs_show_the_predictor_what_a_cell_computes():
    from metanas.methods.metad2a.graph import dag_batch
    from metanas.methods.metad2a.training import predictor_inputs

    dead = NB201Arch.from_string(
        "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    cells = [dead, NB201Arch.sample(3)]
    as_written = predictor_inputs(cells, MetaD2AConfig(**TINY))
    pruned = predictor_inputs(cells, MetaD2AConfig(**TINY, pruned_inputs=True))
    assert torch.equal(as_written, dag_batch(cells))
    assert torch.equal(pruned, dag_batch([c.pruned() for c in cells]))
    assert not torch.equal(pruned[0], as_written[0])


def test_each_network_learns_from_its_named_sources(mixed_kb, image_source):
    """``generator_sources`` / ``predictor_sources``: the published tasks teach only the
    generator, the image tasks only the predictor; an unknown source is one clear error."""
    with KnowledgeBase(mixed_kb, readonly=True) as kb:
        model = MetaD2AMethod.meta_train(
            kb, source=image_source, extractor=stats_extractor(), cache=False, seed=0,
            **{**TINY, "gen_epochs": 2, "pred_epochs": 10, "holdout": 0.0},
            generator_sources=SOURCE, predictor_sources="synthetic-images")
        assert model.info["generator"]["tasks"] == 3
        assert model.info["generator"]["pairs"] == 1 + 2 + 3  # every cell of the 3 tasks
        assert model.info["predictor"]["tasks"] == 24
        both = MetaD2AMethod.meta_train(
            kb, source=image_source, extractor=stats_extractor(), cache=False, seed=0,
            **{**TINY, "gen_epochs": 2, "pred_epochs": 10, "holdout": 0.0})
        assert both.info["generator"]["tasks"] == 27 and both.info["predictor"]["tasks"] == 26
        with pytest.raises(KnowledgeBaseError, match="generator_sources: no task of nowhere"):
            MetaD2AMethod.meta_train(kb, source=image_source, extractor=stats_extractor(),
                                     cache=False, **TINY, generator_sources="nowhere")
        # the published source's tasks all have < 4 cells: nothing to rank, one clear error
        with pytest.raises(KnowledgeBaseError, match="predictor_sources: no task of "
                                                     f"{SOURCE} with >= 4"):
            MetaD2AMethod.meta_train(kb, source=image_source, extractor=stats_extractor(),
                                     cache=False, **{**TINY, "pred_min_cells": 4},
                                     predictor_sources=SOURCE)


def test_no_task_left_for_a_network_is_one_clear_error():
    """E.g. the holdout split took every task of a small named source."""
    from metanas.methods.metad2a.training import MetaTrainData, _taught

    archs = [[NB201Arch.from_string(CELLS[0]), NB201Arch.from_string(CELLS[1])]] * 2
    data = MetaTrainData(["a", "b"], [[], []], archs, [np.zeros(2), np.zeros(2)], [16],
                         ["src-a", "src-b"])
    assert list(_taught(data, [0, 1], 2, "src-b", "predictor")) == [1]
    with pytest.raises(KnowledgeBaseError, match="predictor: no training task .* of src-b"):
        _taught(data, [0], 2, "src-b", "predictor")
