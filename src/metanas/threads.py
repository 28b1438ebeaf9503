"""Run small numeric work on one thread.

Tiny matrices gain nothing from a thread pool, and on a busy machine a multi-threaded BLAS or
OpenMP pool spin-waits for cores: measured here, a 30 ms SVD took 5 s and a 0.2 s ranking 12 s
while other processes used both cores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Limit torch and BLAS/OpenMP pools to one thread inside the block, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)
