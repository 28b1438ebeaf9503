"""The NAS-Bench-201 cell search space: genotypes (value objects) and the network that runs them.

The genotypes need only numpy; the network (torch) is imported on first use of
``NB201Network``, ``count_macs`` or ``count_params``, so that parsing or counting cells (``metanas
space info``) does not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metanas.spaces.nb201.genotype import (
    EDGES,
    NUM_EDGES,
    NUM_OPS,
    OPS,
    SPACE_SIZE,
    NB201Arch,
    all_op_indices,
    count_unique,
    dag_adjacency,
    parse,
)

if TYPE_CHECKING:
    from metanas.spaces.nb201.network import NB201Network, count_macs, count_params

__all__ = [
    "EDGES", "NUM_EDGES", "NUM_OPS", "OPS", "SPACE_SIZE", "NB201Arch", "NB201Network",
    "all_op_indices", "count_macs", "count_params", "count_unique", "dag_adjacency", "parse",
]
_NETWORK = frozenset({"NB201Network", "count_macs", "count_params"})


def __getattr__(name: str):
    if name in _NETWORK:
        from metanas.spaces.nb201 import network

        value = getattr(network, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metanas.spaces.nb201' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
