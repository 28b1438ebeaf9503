"""The DARTS cell search space (normal + reduction cells) as value objects."""

from metanas.spaces.darts.genotype import (
    CELL_OPS,
    CONCAT,
    NUM_EDGES,
    NUM_OPS,
    OPS,
    STEPS,
    DartsGenotype,
    derive_cell,
    edge_index,
    parse,
)

__all__ = ["CELL_OPS", "CONCAT", "NUM_EDGES", "NUM_OPS", "OPS", "STEPS", "DartsGenotype",
           "derive_cell", "edge_index", "parse"]
