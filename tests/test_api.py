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


def test_budgets_and_seeds_are_checked_once_where_declared():
    import math

    import pytest

    from metanas.api import Budget, check_seed
    from metanas.errors import ConfigError

    for bad in (math.nan, math.inf, 0, -1.0):
        with pytest.raises(ConfigError, match="--budget"):
            Budget(seconds=bad)
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="--budget-evals"):
            Budget(evaluations=bad)
    for bad in (-1, 2**64, 1.0, True, "3"):
        with pytest.raises(ConfigError, match="--seed"):
            check_seed(bad)
    assert check_seed(2**32 - 1) == 2**32 - 1
