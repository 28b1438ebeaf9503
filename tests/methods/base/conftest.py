"""Tiny BASE configurations on the builtin digits dataset (no ../shared needed)."""

from __future__ import annotations

import pytest
import torch

TINY = dict(source="digits", C=4, N=1, n_way=3, resolutions=[16], feature_size=16,
            max_train_per_class=20, tasks_per_step=2, inner_steps=2, batch_size=8,
            meta_steps=3)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits():
    from metanas.data import load_dataset

    return load_dataset("digits", progress=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A BASE checkpoint meta-trained for 3 steps on digits."""
    from metanas.methods.base import BASEMethod

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        method = BASEMethod.meta_train(None, **TINY)
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("base") / "base.safetensors"
    method.save(path)
    return str(path)
