"""The NAS-Bench-201 cell search space: genotypes (value objects) and the network that runs them."""

from metanas.spaces.nb201.genotype import (
    EDGES,
    NUM_EDGES,
    NUM_OPS,
    OPS,
    SPACE_SIZE,
    NB201Arch,
    count_unique,
    dag_adjacency,
    parse,
)
from metanas.spaces.nb201.network import NB201Network, count_macs, count_params

__all__ = [
    "EDGES", "NUM_EDGES", "NUM_OPS", "OPS", "SPACE_SIZE", "NB201Arch", "NB201Network",
    "count_macs", "count_params", "count_unique", "dag_adjacency", "parse",
]
