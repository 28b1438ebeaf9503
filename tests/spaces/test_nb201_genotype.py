"""NB201 genotypes: string format, indices, encodings, neighbourhoods and functional equivalence."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re

import numpy as np
import pytest

from metanas.errors import ArchitectureError
from metanas.spaces.nb201 import genotype
from metanas.spaces.nb201.genotype import (
    DAG_END,
    DAG_NUM_NODES,
    DAG_START,
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

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
FORMAT = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
_OP = "(" + "|".join(re.escape(o) for o in OPS) + ")"
# The NATS-Bench format written out independently of the implementation.
NATS_RE = re.compile(
    rf"^\|{_OP}~0\|\+\|{_OP}~0\|{_OP}~1\|\+\|{_OP}~0\|{_OP}~1\|{_OP}~2\|$"
)
NONE, SKIP, C1, C3, POOL = range(NUM_OPS)


def cell(**edges: str) -> NB201Arch:
    """A cell from edge keywords like ``e3_1="nor_conv_3x3"`` (edge 3<-1); others are none."""
    ops = ["none"] * NUM_EDGES
    for key, op in edges.items():
        to, src = int(key[1]), int(key[3])
        ops[EDGES.index((to, src))] = op
    return NB201Arch.from_ops(ops)


def n_diff(a: NB201Arch, b: NB201Arch) -> int:
    return sum(x != y for x, y in zip(a.op_indices, b.op_indices, strict=True))


@pytest.fixture(scope="module")
def all_archs() -> list[NB201Arch]:
    return list(NB201Arch.enumerate_all())


# ----- constants ------------------------------------------------------------------------------


def test_space_constants() -> None:
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert SPACE_SIZE == 5**6 == 15_625


# ----- string format --------------------------------------------------------------------------


def test_example_string_parses_to_op_indices_and_prints_back_identically() -> None:
    arch = NB201Arch.from_string(EXAMPLE)
    assert arch.op_indices == (3, 3, 4, 1, 3, 1)
    assert arch.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3",
                        "skip_connect", "nor_conv_3x3", "skip_connect")
    assert arch.to_string() == EXAMPLE
    assert str(arch) == EXAMPLE
    assert parse(EXAMPLE) == arch
    assert parse(arch) is arch


def test_string_round_trip_and_exact_format_for_every_cell(all_archs) -> None:
    assert len(all_archs) == SPACE_SIZE
    for arch in all_archs:
        text = arch.to_string()
        m = NATS_RE.match(text)
        assert m is not None, text
        assert tuple(OPS.index(g) for g in m.groups()) == arch.op_indices, text
        back = NB201Arch.from_string(text)
        assert back == arch
        assert back.to_string() == text


def test_from_string_tolerates_surrounding_whitespace_only() -> None:
    assert NB201Arch.from_string(f"  {EXAMPLE}\n") == NB201Arch.from_string(EXAMPLE)


BAD_STRINGS = {
    "unknown op": EXAMPLE.replace("avg_pool_3x3", "max_pool_3x3"),
    "op name case": EXAMPLE.replace("skip_connect~0", "Skip_connect~0"),
    "empty op": "|~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "two nodes": "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|",
    "four nodes": EXAMPLE + "+|none~0|none~1|none~2|none~3|",
    "node 2 with one input": "|none~0|+|none~0|+|none~0|none~1|none~2|",
    "node 3 with four inputs": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|",
    "wrong ~k": "|nor_conv_3x3~0|+|nor_conv_3x3~1|avg_pool_3x3~0|+|none~0|none~1|none~2|",
    "~k out of range": "|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    "missing ~k": "|nor_conv_3x3|+|none~0|none~1|+|none~0|none~1|none~2|",
    "missing outer pipes": EXAMPLE.strip("|"),
    "missing leading pipe": EXAMPLE[1:],
    "missing pipe between inputs": "|none~0|+|none~0none~1|+|none~0|none~1|none~2|",
    "comma separated": "none~0,+,none~0,none~1,+,none~0,none~1,none~2",
    "empty": "",
    "op indices": "3,3,4,1,3,1",
}


@pytest.mark.parametrize("text", list(BAD_STRINGS.values()), ids=list(BAD_STRINGS))
def test_invalid_strings_raise_architecture_error_listing_ops_and_format(text: str) -> None:
    with pytest.raises(ArchitectureError) as info:
        NB201Arch.from_string(text)
    message = str(info.value)
    assert FORMAT in message
    for op in OPS:
        assert op in message
    assert isinstance(info.value, ValueError)  # callers catching ValueError keep working


@pytest.mark.parametrize("value", [None, 123, b"|none~0|", (3, 3, 4, 1, 3, 1)],
                         ids=["None", "int", "bytes", "tuple"])
def test_non_string_raises_architecture_error(value) -> None:
    with pytest.raises(ArchitectureError) as info:
        NB201Arch.from_string(value)
    message = str(info.value)
    assert "string" in message
    assert FORMAT in message
    assert all(op in message for op in OPS)
    with pytest.raises(ArchitectureError):
        parse(value)


def test_invalid_op_indices_and_names_raise() -> None:
    for bad in [(0,) * 5, (0,) * 7, (0, 0, 0, 0, 0, 5), (-1, 0, 0, 0, 0, 0)]:
        with pytest.raises(ArchitectureError):
            NB201Arch(bad)
    with pytest.raises(ArchitectureError, match="valid ops"):
        NB201Arch.from_ops(["conv"] + ["none"] * 5)


def test_from_ops_accepts_names_and_indices() -> None:
    by_name = NB201Arch.from_ops(["nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3",
                                  "skip_connect", "nor_conv_3x3", "skip_connect"])
    assert by_name == NB201Arch.from_ops([3, 3, 4, 1, 3, 1]) == NB201Arch.from_string(EXAMPLE)
    assert NB201Arch.from_ops(np.array([3, 3, 4, 1, 3, 1])) == by_name


# ----- index ----------------------------------------------------------------------------------


def test_index_is_a_bijection_over_the_space(all_archs) -> None:
    assert [a.index for a in all_archs] == list(range(SPACE_SIZE))
    for i in range(SPACE_SIZE):
        arch = NB201Arch.from_index(i)
        assert arch.index == i
        assert arch == all_archs[i]


def test_index_is_base5_first_edge_most_significant() -> None:
    assert NB201Arch.from_index(0).op_indices == (0, 0, 0, 0, 0, 0)
    assert NB201Arch.from_index(1).op_indices == (0, 0, 0, 0, 0, 1)
    assert NB201Arch.from_index(5).op_indices == (0, 0, 0, 0, 1, 0)
    assert NB201Arch.from_index(5**5).op_indices == (1, 0, 0, 0, 0, 0)
    assert NB201Arch.from_index(SPACE_SIZE - 1).op_indices == (4,) * 6
    assert NB201Arch.from_string(EXAMPLE).index == ((((3 * 5 + 3) * 5 + 4) * 5 + 1) * 5 + 3) * 5 + 1


@pytest.mark.parametrize("index", [-1, SPACE_SIZE, 10**9])
def test_from_index_out_of_range_raises(index: int) -> None:
    with pytest.raises(ArchitectureError, match="15624"):
        NB201Arch.from_index(index)


# ----- value semantics ------------------------------------------------------------------------


def test_cells_are_frozen_hashable_values() -> None:
    a = NB201Arch.from_string(EXAMPLE)
    b = NB201Arch.from_ops([3, 3, 4, 1, 3, 1])
    c = NB201Arch.from_index(a.index)
    d = NB201Arch([np.int64(v) for v in (3, 3, 4, 1, 3, 1)])  # any int-like sequence
    assert a == b == c == d
    assert a is not b
    assert hash(a) == hash(b) == hash(c) == hash(d)
    assert isinstance(d.op_indices, tuple)
    assert all(type(v) is int for v in d.op_indices)
    assert len({a, b, c, d}) == 1
    table = {a: "found"}
    assert table[b] == "found"
    assert NB201Arch.from_index(0) not in table
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.op_indices = (0,) * 6  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.op_indices[0] = 0  # type: ignore[index]
    # a cached property being filled in does not change equality or the hash
    h = hash(b)
    _ = b.canonical_form
    assert hash(b) == h and b == c


def test_enumerate_all_yields_every_cell_once(all_archs) -> None:
    assert len(all_archs) == 15_625
    assert len(set(all_archs)) == 15_625
    assert len({a.to_string() for a in all_archs}) == 15_625
    assert all_archs == sorted(all_archs)  # index order


# ----- sampling and neighbourhoods ------------------------------------------------------------


def test_sample_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    assert NB201Arch.sample(7) == NB201Arch.sample(7)
    assert NB201Arch.sample(np.random.default_rng(7)) == NB201Arch.sample(7)
    samples = [NB201Arch.sample(s) for s in range(40)]
    assert len(set(samples)) >= 35  # 40 draws from 15,625 cells: collisions are rare
    rng = np.random.default_rng(0)
    stream = [NB201Arch.sample(rng) for _ in range(20)]
    assert len(set(stream)) >= 18  # a shared generator advances


def test_sample_covers_all_ops_on_every_edge() -> None:
    rng = np.random.default_rng(1)
    counts = np.zeros((NUM_EDGES, NUM_OPS), dtype=int)
    for _ in range(2000):
        counts[np.arange(NUM_EDGES), NB201Arch.sample(rng).op_indices] += 1
    # uniform: 400 expected per (edge, op); 4 sigma ~ 72
    assert counts.min() > 300 and counts.max() < 500


@pytest.mark.parametrize("edges", range(1, NUM_EDGES + 1))
def test_mutate_changes_exactly_the_requested_number_of_edges(edges: int) -> None:
    for seed in range(60):
        parent = NB201Arch.sample(1000 + seed)
        child = parent.mutate(seed, edges=edges)
        assert n_diff(parent, child) == edges
        assert child == parent.mutate(seed, edges=edges)  # deterministic per seed


def test_mutate_default_is_one_edge_and_reaches_all_neighbours() -> None:
    parent = NB201Arch.from_string(EXAMPLE)
    rng = np.random.default_rng(0)
    children = {parent.mutate(rng) for _ in range(600)}
    assert children == set(parent.neighbours())


def test_neighbours_are_the_24_cells_at_hamming_distance_one(all_archs) -> None:
    for arch in (NB201Arch.from_string(EXAMPLE), NB201Arch.from_index(0), all_archs[-1]):
        neigh = arch.neighbours()
        assert len(neigh) == 24
        assert len(set(neigh)) == 24
        assert arch not in neigh
        assert all(n_diff(arch, n) == 1 for n in neigh)
        assert set(neigh) == {a for a in all_archs if n_diff(arch, a) == 1}


# ----- encodings ------------------------------------------------------------------------------


def test_one_hot_shape_and_rows(all_archs) -> None:
    for arch in (NB201Arch.from_string(EXAMPLE), all_archs[0], all_archs[-1]):
        oh = arch.one_hot()
        assert oh.shape == (6, 5)
        assert oh.dtype == np.float32
        np.testing.assert_array_equal(oh.sum(axis=1), np.ones(6))
        assert set(np.unique(oh)) <= {0.0, 1.0}
        assert tuple(oh.argmax(axis=1)) == arch.op_indices


def test_from_probabilities_inverts_one_hot_for_every_cell(all_archs) -> None:
    for arch in all_archs:
        assert NB201Arch.from_probabilities(arch.one_hot()) == arch


def test_from_probabilities_takes_argmax_and_checks_shape() -> None:
    rng = np.random.default_rng(0)
    arch = NB201Arch.from_string(EXAMPLE)
    soft = rng.uniform(0, 0.5, size=(6, 5)) + arch.one_hot()  # the true op always wins
    assert NB201Arch.from_probabilities(soft) == arch
    for shape in [(5, 6), (6, 4), (30,)]:
        with pytest.raises(ArchitectureError):
            NB201Arch.from_probabilities(np.zeros(shape))


# ----- ops-as-nodes DAG -----------------------------------------------------------------------


def _node(edge: tuple[int, int]) -> int:
    """DAG node of the op on ``edge`` (to, from)."""
    return EDGES.index(edge) + 1


def test_to_dag_node_types() -> None:
    arch = NB201Arch.from_string(EXAMPLE)
    types, adj = arch.to_dag()
    assert types.shape == (8,) and adj.shape == (8, 8)
    assert DAG_START == 0 and DAG_END == 1
    assert types[0] == 0 and types[-1] == 1
    assert list(types[1:-1]) == [o + 2 for o in (3, 3, 4, 1, 3, 1)]
    # only START and END use types 0 and 1
    for a in (NB201Arch.from_index(0), NB201Arch.from_index(SPACE_SIZE - 1)):
        t, _ = a.to_dag()
        assert t[0] == 0 and t[-1] == 1 and all(2 <= v <= 6 for v in t[1:-1])


def test_to_dag_adjacency_structure() -> None:
    _, adj = NB201Arch.from_string(EXAMPLE).to_dag()
    assert set(np.unique(adj)) == {0.0, 1.0}
    assert np.all(np.tril(adj) == 0)  # strictly upper triangular: a DAG in topological order
    start, end = 0, DAG_NUM_NODES - 1
    assert set(np.flatnonzero(adj[start])) == {_node((1, 0)), _node((2, 0)), _node((3, 0))}
    assert set(np.flatnonzero(adj[:, end])) == {_node((3, 0)), _node((3, 1)), _node((3, 2))}
    assert set(np.flatnonzero(adj[_node((1, 0))])) == {_node((2, 1)), _node((3, 1))}
    assert set(np.flatnonzero(adj[_node((2, 0))])) == {_node((3, 2))}
    assert set(np.flatnonzero(adj[_node((2, 1))])) == {_node((3, 2))}
    for edge in ((3, 0), (3, 1), (3, 2)):
        assert set(np.flatnonzero(adj[_node(edge)])) == {end}
    assert adj[:, start].sum() == 0 and adj[end].sum() == 0
    # general rule: op on (a <- b) feeds op on (c <- d) iff d == a
    for (ta, fa), (tc, fc) in itertools.product(EDGES, EDGES):
        assert adj[_node((ta, fa)), _node((tc, fc))] == float(fc == ta)
    assert adj.sum() == 3 + 3 + 4  # START out-edges, END in-edges, op -> op links


def test_dag_adjacency_is_the_same_for_every_cell(all_archs) -> None:
    ref = dag_adjacency()
    for arch in all_archs[::97]:
        np.testing.assert_array_equal(arch.to_dag()[1], ref)


def test_from_dag_inverts_to_dag(all_archs) -> None:
    for arch in all_archs:
        assert NB201Arch.from_dag(arch.to_dag()[0]) == arch


@pytest.mark.parametrize("types", [
    [0, 2, 2, 2, 2, 2, 2],           # too short
    [1, 2, 2, 2, 2, 2, 2, 0],        # START/END swapped
    [0, 2, 2, 7, 2, 2, 2, 1],        # type out of range
    [0, 2, 2, 1, 2, 2, 2, 1],        # END type in the middle
])
def test_from_dag_rejects_invalid_types(types) -> None:
    with pytest.raises(ArchitectureError):
        NB201Arch.from_dag(types)


# ----- functional equivalence -----------------------------------------------------------------


def test_unique_counts() -> None:
    assert count_unique("nb201") == 6466  # NAS-Bench-201's published number
    assert count_unique("functional") == 4930
    assert count_unique() == count_unique("functional")


def _semantic_classes(archs: list[NB201Arch]) -> dict[tuple[int, ...], set[str]]:
    """Oracle independent of ``canonical_form``: give each parametrized op a random nonlinear map
    ``f(v) = a v^3 + b v^2 + c v (mod p)`` (f(0) = 0, so ops on a dead node give zero), skip the
    identity and none zero; evaluate node 3 exactly at random points. Equal canonical forms must
    give equal values; different forms should (with overwhelming probability) give different
    ones."""
    p = (1 << 61) - 1
    rnd = random.Random(0)
    coef = {op: [rnd.randrange(1, p) for _ in range(3)] for op in OPS[2:]}
    xs = [rnd.randrange(1, p) for _ in range(3)]

    def run(arch: NB201Arch, x: int) -> int:
        nodes = [x]
        k = 0
        for to in range(1, 4):
            total = 0
            for src in range(to):
                op = arch.ops[k]
                k += 1
                if op == "skip_connect":
                    total += nodes[src]
                elif op != "none":
                    a, b, c = coef[op]
                    v = nodes[src]
                    total += a * v**3 + b * v**2 + c * v
            nodes.append(total % p)
        return nodes[-1]

    classes: dict[tuple[int, ...], set[str]] = {}
    for arch in archs:
        classes.setdefault(tuple(run(arch, x) for x in xs), set()).add(arch.canonical_form)
    return classes


def test_canonical_form_matches_an_independent_semantic_oracle(all_archs) -> None:
    classes = _semantic_classes(all_archs)
    assert all(len(forms) == 1 for forms in classes.values())  # no function split in two forms
    assert len(classes) == len({a.canonical_form for a in all_archs}) == 4930  # none merged


def test_nb201_rule_refines_the_functional_rule(all_archs) -> None:
    by_nb201: dict[str, set[str]] = {}
    for arch in all_archs:
        by_nb201.setdefault(arch.nb201_unique_form, set()).add(arch.canonical_form)
    assert all(len(forms) == 1 for forms in by_nb201.values())


EQUIVALENT = {
    "skip then conv == conv": (
        cell(e1_0="skip_connect", e3_1="nor_conv_3x3"),
        cell(e3_0="nor_conv_3x3"),
    ),
    "skip of a sum is flattened": (
        # node 3 = skip(x + conv1(x)) + conv3(x)  vs  conv1(x) + x + conv3(x) via nodes 1 and 2
        cell(e1_0="skip_connect", e2_0="skip_connect", e2_1="nor_conv_1x1",
             e3_0="nor_conv_3x3", e3_2="skip_connect"),
        cell(e1_0="nor_conv_1x1", e2_0="skip_connect", e3_0="nor_conv_3x3",
             e3_1="skip_connect", e3_2="skip_connect"),
    ),
    "intermediate nodes renumbered": (
        cell(e1_0="nor_conv_1x1", e2_0="avg_pool_3x3", e3_1="skip_connect", e3_2="skip_connect"),
        cell(e1_0="avg_pool_3x3", e2_0="nor_conv_1x1", e3_1="skip_connect", e3_2="skip_connect"),
    ),
    "sum order within a node": (
        cell(e2_0="nor_conv_3x3", e2_1="avg_pool_3x3", e1_0="skip_connect", e3_2="nor_conv_1x1"),
        cell(e2_0="avg_pool_3x3", e2_1="nor_conv_3x3", e1_0="skip_connect", e3_2="nor_conv_1x1"),
    ),
    "none edge adds nothing": (
        cell(e3_0="nor_conv_3x3", e3_1="none", e1_0="skip_connect"),
        cell(e3_0="nor_conv_3x3"),
    ),
}


@pytest.mark.parametrize("pair", list(EQUIVALENT.values()), ids=list(EQUIVALENT))
def test_functionally_equivalent_cells_share_form_and_hash(pair) -> None:
    a, b = pair
    assert a != b  # different genotypes ...
    assert a.canonical_form == b.canonical_form  # ... same function
    assert a.canonical_hash() == b.canonical_hash()
    assert a.is_connected and b.is_connected


@pytest.mark.parametrize("op_21", OPS)
@pytest.mark.parametrize("op_31", OPS)
def test_edges_leaving_a_dead_node_do_not_matter(op_21: str, op_31: str) -> None:
    # node 1 has no input (1<-0 is none), so whatever leaves it contributes nothing
    base = cell(e2_0="nor_conv_1x1", e3_2="nor_conv_3x3", e3_0="skip_connect")
    other = cell(e2_0="nor_conv_1x1", e3_2="nor_conv_3x3", e3_0="skip_connect",
                 e2_1=op_21, e3_1=op_31)
    assert other.canonical_hash() == base.canonical_hash()
    assert other.canonical_form == "nor_conv_3x3(nor_conv_1x1(x))+x"


def test_disconnected_cells() -> None:
    all_none = NB201Arch.from_index(0)
    assert all_none.ops == ("none",) * 6
    assert not all_none.is_connected
    assert all_none.canonical_form == "0"
    # node 3 only reachable through dead nodes
    dead = cell(e2_1="nor_conv_3x3", e3_1="nor_conv_3x3", e3_2="skip_connect")
    assert not dead.is_connected
    assert dead.canonical_hash() == all_none.canonical_hash()
    assert cell(e3_0="skip_connect").is_connected
    assert cell(e3_0="skip_connect").canonical_form == "x"


def test_is_connected_matches_graph_reachability(all_archs) -> None:
    # The output is identically zero iff no path of non-none edges leads from node 0 to node 3;
    # checked against plain reachability rather than against the canonical forms.
    def live(a: NB201Arch) -> bool:
        o = dict(zip(EDGES, a.op_indices, strict=True))
        n1 = o[(1, 0)] != NONE
        n2 = o[(2, 0)] != NONE or (n1 and o[(2, 1)] != NONE)
        return o[(3, 0)] != NONE or (n1 and o[(3, 1)] != NONE) or (n2 and o[(3, 2)] != NONE)

    for arch in all_archs:
        assert arch.is_connected == live(arch)


NOT_EQUIVALENT = {
    "conv1x1 vs conv3x3": (cell(e3_0="nor_conv_1x1"), cell(e3_0="nor_conv_3x3")),
    "pool vs skip": (cell(e3_0="avg_pool_3x3"), cell(e3_0="skip_connect")),
    "x vs x + x": (cell(e3_0="skip_connect"),
                   cell(e3_0="skip_connect", e1_0="skip_connect", e3_1="skip_connect")),
    "composition order": (
        cell(e1_0="nor_conv_1x1", e2_1="nor_conv_3x3", e3_2="skip_connect"),
        cell(e1_0="nor_conv_3x3", e2_1="nor_conv_1x1", e3_2="skip_connect"),
    ),
    "conv of a sum vs sum of convs": (
        cell(e1_0="skip_connect", e2_0="nor_conv_1x1", e2_1="skip_connect", e3_2="nor_conv_3x3"),
        cell(e1_0="nor_conv_1x1", e2_0="skip_connect", e3_1="nor_conv_3x3", e3_2="nor_conv_3x3"),
    ),
}


@pytest.mark.parametrize("pair", list(NOT_EQUIVALENT.values()), ids=list(NOT_EQUIVALENT))
def test_non_equivalent_cells_differ(pair) -> None:
    a, b = pair
    assert a.canonical_form != b.canonical_form
    assert a.canonical_hash() != b.canonical_hash()


def test_canonical_hash_format_and_stability() -> None:
    arch = NB201Arch.from_string(EXAMPLE)
    h = arch.canonical_hash()
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert NB201Arch.from_string(EXAMPLE).canonical_hash() == h
    # the hash is a pure function of the form (so it is stable across processes)
    import hashlib

    assert h == hashlib.sha256(arch.canonical_form.encode()).hexdigest()[:16]


def test_canonical_forms_of_known_cells() -> None:
    assert NB201Arch.from_string(EXAMPLE).canonical_form == (
        "avg_pool_3x3(nor_conv_3x3(x))+nor_conv_3x3(nor_conv_3x3(x))+nor_conv_3x3(x)+x"
    )
    assert genotype.NB201Arch.from_ops([SKIP] * 6).canonical_form == "+".join(["x"] * 4)


def test_sample_distinct_gives_distinct_connected_cells_and_is_seeded():
    cells = NB201Arch.sample_distinct(50, 3)
    assert len({a.canonical_form for a in cells}) == 50
    assert all(a.is_connected for a in cells)
    assert cells == NB201Arch.sample_distinct(50, 3)
    # a start list is kept, a proposal that runs dry falls back to uniform samples
    start = [NB201Arch.from_string(EXAMPLE)]
    more = NB201Arch.sample_distinct(5, 0, start=start, propose=lambda: start[0])
    assert more[0] == start[0] and len({a.canonical_form for a in more}) == 5


def test_all_op_indices_are_every_cell_in_index_order():
    from metanas.spaces.nb201 import SPACE_SIZE, all_op_indices

    ops = all_op_indices()
    assert ops.shape == (SPACE_SIZE, 6)
    for i in (0, 1, 4, 5, 777, SPACE_SIZE - 1):
        assert tuple(ops[i]) == NB201Arch.from_index(i).op_indices
    assert len({tuple(r) for r in ops}) == SPACE_SIZE


def test_pruned_cells_compute_the_same_function():
    """Every edge that cannot reach the output is set to none; nothing else changes."""
    cells = list(NB201Arch.enumerate_all())
    for arch in cells:
        p = arch.pruned()
        assert p.canonical_form == arch.canonical_form
        assert p.pruned() == p and set(p.edge_roles) <= {"off", "live"}
        assert all(q == o for q, o, r in zip(p.op_indices, arch.op_indices, arch.edge_roles,
                                             strict=True) if r == "live")
    identity = NB201Arch.from_string(
        "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    assert identity.edge_roles == ("dead", "dead", "dead", "live", "off", "off")
    assert identity.pruned().to_string() == (
        "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    unreached = NB201Arch.from_string(
        "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
    assert unreached.edge_roles == ("off", "dead", "off", "live", "off", "off")
    assert len({a.pruned().index for a in cells}) < len(cells)
