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


def threads_for_load() -> int:
    """Cores not already busy (cores minus the 1-minute load average, at least 1).

    On a shared machine an OpenMP pool as wide as the machine spin-waits for cores that other
    processes hold: measured here, 2 threads made a digits training 4-10x slower than 1 while
    another job ran. Where the load average is unavailable, all cores.
    """
    import os

    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, int(cores - load + 0.5)))


def use_free_cores() -> int:
    """Set torch's thread count to :func:`threads_for_load` unless ``$OMP_NUM_THREADS`` (the
    user's own choice) is set; returns the count in use."""
    import os

    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(threads_for_load())
    return torch.get_num_threads()
