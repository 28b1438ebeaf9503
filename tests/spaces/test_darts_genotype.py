"""DARTS genotypes: DARTS' Genotype repr round trip, validation, derivation rule."""

from __future__ import annotations

import numpy as np
import pytest

from metanas.errors import ArchitectureError
from metanas.spaces.darts import NUM_EDGES, NUM_OPS, OPS, DartsGenotype, edge_index

# DARTS_V2 from the DARTS repository (genotypes.py), as its repr prints it.
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
            "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
            "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
            "reduce_concat=[2, 3, 4, 5])")


def test_round_trip_of_darts_repr() -> None:
    g = DartsGenotype.from_string(DARTS_V2)
    last = DartsGenotype.from_string(DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 4)"))
    assert last.normal[7] == ("dil_conv_3x3", 4)  # the last node takes inputs 0..4
    assert g.to_string() == DARTS_V2
    assert DartsGenotype.from_string(DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)")) == g
    assert g.normal[7] == ("dil_conv_3x3", 2)


@pytest.mark.parametrize("bad", [
    "Genotype(normal=[], reduce=[])",
    DARTS_V2.replace("'dil_conv_3x3', 2", "'conv_7x7', 2"),
    DARTS_V2.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)",
                     "('sep_conv_3x3', 0), ('sep_conv_3x3', 2), ('sep_conv_3x3', 0)"),
    DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"),
    "__import__('os').system('true')",
    "Genotype(normal=[('none', 0)] * 8, reduce=[])",
    "not python (",
    DARTS_V2.replace("'sep_conv_3x3', 0", "'none', 0"),
])
def test_invalid_genotypes_raise(bad: str) -> None:
    with pytest.raises(ArchitectureError):
        DartsGenotype.from_string(bad)


def test_derivation_takes_top2_pairs_per_node_including_the_same_input_twice() -> None:
    rng = np.random.default_rng(0)
    normal = rng.uniform(0, 0.01, (NUM_EDGES, NUM_OPS))
    reduce = rng.uniform(0, 0.01, (NUM_EDGES, NUM_OPS))
    # node 2 (first intermediate): input 1 best with two ops; 'none' is larger but excluded
    normal[edge_index(0, 1), OPS.index("none")] = 0.99
    normal[edge_index(0, 1), OPS.index("sep_conv_3x3")] = 0.9
    normal[edge_index(0, 1), OPS.index("max_pool_3x3")] = 0.8
    normal[edge_index(0, 0), OPS.index("skip_connect")] = 0.7
    # node 5: inputs 4 and 0
    normal[edge_index(3, 4), OPS.index("dil_conv_5x5")] = 0.6
    normal[edge_index(3, 0), OPS.index("avg_pool_3x3")] = 0.5
    g = DartsGenotype.from_probabilities(normal, reduce)
    assert g.normal[0:2] == (("sep_conv_3x3", 1), ("max_pool_3x3", 1))
    assert g.normal[6:8] == (("dil_conv_5x5", 4), ("avg_pool_3x3", 0))
    assert all(op != "none" for op, _ in g.normal + g.reduce)
    # brute force: each node's picks are its two largest non-none entries
    for node in range(4):
        entries = sorted(((normal[edge_index(node, s), o], s, o) for s in range(node + 2)
                          for o in range(1, NUM_OPS)), reverse=True)
        assert set(g.normal[2 * node:2 * node + 2]) == {(OPS[o], s) for _, s, o in entries[:2]}


def test_sample_mutate_hash() -> None:
    a = DartsGenotype.sample(1)
    assert a == DartsGenotype.sample(1) and a != DartsGenotype.sample(2)
    assert DartsGenotype.from_string(a.to_string()) == a
    b = a.mutate(3)
    assert b != a
    diff = sum(x != y for x, y in zip(a.normal + a.reduce, b.normal + b.reduce, strict=True))
    assert diff == 1
    swapped = DartsGenotype(a.normal[1::-1] + a.normal[2:], a.reduce)
    assert swapped == a and swapped.canonical_hash() == a.canonical_hash()
    assert len({a, swapped, b}) == 2
    oh = a.one_hot()
    assert oh["normal"].shape == (NUM_EDGES, NUM_OPS)
    assert oh["normal"].sum() <= 8 and oh["normal"][:, 0].sum() == 0
