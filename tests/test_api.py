"""The Python API (metanas.api): search with training, train's options."""

from __future__ import annotations

import pytest

import metanas
from metanas.errors import DatasetError

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_search_with_train_trains_the_top_pick() -> None:
    # `train=True` shadows the module's train() inside search(); this once raised TypeError.
    result = metanas.search("digits", top=2, train=True, recipe="cpu-tiny[epochs=1]")
    trained = result.details["trained"]
    assert trained["arch"] == result.architecture
    assert 0.0 <= trained["test_acc"] <= 1.0


def test_train_rejects_resolution_zero_instead_of_ignoring_it() -> None:
    with pytest.raises(DatasetError, match="resolution"):
        metanas.train("digits", CELL, recipe="cpu-tiny", resolution=0)
