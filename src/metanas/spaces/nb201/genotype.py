"""NAS-Bench-201 cells as light, immutable value objects.

A cell is a DAG over 4 nodes (0 = input, 3 = output) whose 6 edges each carry one of 5 ops. The
string format is exactly NATS-Bench's, so every architecture metanas returns can be looked up in
NAS-Bench-201 / NATS-Bench, NASLib or NNI.

The canonical index 0..15624 is metanas' own (base-5 digits of the op indices in ``EDGES`` order,
first edge most significant); it is *not* the row order of the NATS-Bench files, which is why the
string, not the index, is the interchange format.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from metanas.errors import ArchitectureError, shorten

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""Op names in NB201's order; an op's index is its position here."""

EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""Edges as (to, from) in the fixed order of the string format and of every encoding."""

NUM_NODES = 4
NUM_EDGES = len(EDGES)
NUM_OPS = len(OPS)
SPACE_SIZE = NUM_OPS**NUM_EDGES

# Ops-as-nodes DAG (MetaD2A / D-VAE): node 0 = START, nodes 1..6 = the edge ops, node 7 = END.
DAG_START, DAG_END = 0, 1
"""Node types of the ops-as-nodes DAG: START, END, then op index + 2."""
DAG_NUM_TYPES = NUM_OPS + 2
DAG_NUM_NODES = NUM_EDGES + 2

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
FORMAT_HELP = (
    "expected the NATS-Bench format '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' "
    f"(e.g. {EXAMPLE}) with ops from {', '.join(OPS)}"
)


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@dataclass(frozen=True, order=True)
class NB201Arch:
    """One NB201 cell: the op index on each edge, in ``EDGES`` order."""

    op_indices: tuple[int, ...]

    def __post_init__(self) -> None:
        ops = tuple(int(o) for o in self.op_indices)
        if len(ops) != NUM_EDGES or any(not 0 <= o < NUM_OPS for o in ops):
            raise ArchitectureError(
                f"NB201 needs {NUM_EDGES} op indices in 0..{NUM_OPS - 1}, got {self.op_indices!r}"
            )
        object.__setattr__(self, "op_indices", ops)

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def from_string(cls, text: str) -> NB201Arch:
        """Parse a NATS-Bench string; raises ArchitectureError listing the valid format."""
        if not isinstance(text, str):
            raise ArchitectureError(
                f"architecture must be a string, got {type(text).__name__}; {FORMAT_HELP}"
            )
        nodes = text.strip().split("+")
        if len(nodes) != NUM_NODES - 1:
            raise ArchitectureError(f"invalid NB201 architecture {shorten(text)}: {FORMAT_HELP}")
        ops: list[int] = []
        for to, node in enumerate(nodes, start=1):
            node = node.strip()
            if not (node.startswith("|") and node.endswith("|")):
                raise ArchitectureError(f"invalid NB201 architecture {shorten(text)}: {FORMAT_HELP}")
            items = node[1:-1].split("|")
            if len(items) != to:
                raise ArchitectureError(
                    f"invalid NB201 architecture {shorten(text)}: node {to} needs {to} inputs, "
                    f"got {len(items)}; {FORMAT_HELP}"
                )
            for src, item in enumerate(items):
                name, sep, idx = item.partition("~")
                if not sep or idx != str(src):
                    raise ArchitectureError(
                        f"invalid NB201 architecture {shorten(text)}: {shorten(item, 40)} should be 'op~{src}'; "
                        f"{FORMAT_HELP}"
                    )
                if name not in OPS:
                    raise ArchitectureError(
                        f"unknown op {shorten(name, 40)} in {shorten(text)}; valid ops: {', '.join(OPS)}; "
                        f"{FORMAT_HELP}"
                    )
                ops.append(OPS.index(name))
        return cls(tuple(ops))

    @classmethod
    def from_ops(cls, ops: Sequence[int | str]) -> NB201Arch:
        """From 6 op indices or op names in ``EDGES`` order."""
        out = []
        for op in ops:
            if isinstance(op, str):
                if op not in OPS:
                    raise ArchitectureError(f"unknown op '{op}'; valid ops: {', '.join(OPS)}")
                out.append(OPS.index(op))
            else:
                out.append(int(op))
        return cls(tuple(out))

    @classmethod
    def from_index(cls, index: int) -> NB201Arch:
        if not 0 <= int(index) < SPACE_SIZE:
            raise ArchitectureError(f"NB201 index must be in 0..{SPACE_SIZE - 1}, got {index}")
        digits = []
        rest = int(index)
        for _ in range(NUM_EDGES):
            rest, d = divmod(rest, NUM_OPS)
            digits.append(d)
        return cls(tuple(reversed(digits)))

    @classmethod
    def from_probabilities(cls, probs: np.ndarray) -> NB201Arch:
        """Discretize a continuous relaxation (6x5 per-edge scores) by argmax per edge."""
        probs = np.asarray(probs)
        if probs.shape != (NUM_EDGES, NUM_OPS):
            raise ArchitectureError(f"expected a {NUM_EDGES}x{NUM_OPS} array, got {probs.shape}")
        return cls(tuple(int(i) for i in probs.argmax(axis=1)))

    @classmethod
    def sample(cls, seed: int | np.random.Generator | None = None) -> NB201Arch:
        """Uniformly random cell."""
        return cls(tuple(int(i) for i in _rng(seed).integers(0, NUM_OPS, NUM_EDGES)))

    @classmethod
    def sample_distinct(
        cls, n: int, seed: int | np.random.Generator | None = None, *,
        start: Iterable[NB201Arch] = (), propose: Callable[[], NB201Arch] | None = None,
    ) -> list[NB201Arch]:
        """``start`` extended to ``n`` functionally distinct, connected cells: proposals come
        from ``propose`` (default: :meth:`sample`); after 200 x n proposals without reaching
        n (a small neighbourhood ran dry) uniform samples fill the rest."""
        rng = _rng(seed)
        out = list(start)
        seen = {a.canonical_form for a in out}
        attempts = 0
        while len(out) < n:
            attempts += 1
            use_random = propose is None or attempts > 200 * n
            arch = cls.sample(rng) if use_random else propose()
            if arch.is_connected and arch.canonical_form not in seen:
                seen.add(arch.canonical_form)
                out.append(arch)
        return out

    @classmethod
    def enumerate_all(cls) -> Iterator[NB201Arch]:
        """All 15,625 cells in index order."""
        for ops in itertools.product(range(NUM_OPS), repeat=NUM_EDGES):
            yield cls(ops)

    # ----- views --------------------------------------------------------------------------
    def to_string(self) -> str:
        parts = []
        k = 0
        for to in range(1, NUM_NODES):
            items = []
            for src in range(to):
                items.append(f"{OPS[self.op_indices[k]]}~{src}")
                k += 1
            parts.append("|" + "|".join(items) + "|")
        return "+".join(parts)

    def __str__(self) -> str:
        return self.to_string()

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(OPS[i] for i in self.op_indices)

    @property
    def index(self) -> int:
        value = 0
        for op in self.op_indices:
            value = value * NUM_OPS + op
        return value

    # ----- neighbourhood ------------------------------------------------------------------
    def neighbours(self) -> list[NB201Arch]:
        """All 24 cells that differ on exactly one edge."""
        out = []
        for e in range(NUM_EDGES):
            for op in range(NUM_OPS):
                if op != self.op_indices[e]:
                    ops = list(self.op_indices)
                    ops[e] = op
                    out.append(NB201Arch(tuple(ops)))
        return out

    def mutate(self, seed: int | np.random.Generator | None = None, edges: int = 1) -> NB201Arch:
        """Change the op on ``edges`` distinct random edges to a different op."""
        rng = _rng(seed)
        ops = list(self.op_indices)
        for e in rng.choice(NUM_EDGES, size=edges, replace=False):
            ops[e] = int((ops[e] + rng.integers(1, NUM_OPS)) % NUM_OPS)
        return NB201Arch(tuple(ops))

    # ----- encodings ----------------------------------------------------------------------
    def one_hot(self) -> np.ndarray:
        """(6, 5) float32 one-hot; also the continuous relaxation of a discrete cell."""
        out = np.zeros((NUM_EDGES, NUM_OPS), dtype=np.float32)
        out[np.arange(NUM_EDGES), self.op_indices] = 1.0
        return out

    def to_dag(self) -> tuple[np.ndarray, np.ndarray]:
        """The 8-node ops-as-nodes DAG used by MetaD2A: (node types (8,), adjacency (8, 8)).

        Node 0 is START (type 0), nodes 1..6 are the edge ops in ``EDGES`` order (type op + 2),
        node 7 is END (type 1). ``adj[i, j] = 1`` when op-node i feeds op-node j: an op on edge
        (a <- b) feeds every op on an edge leaving node a; ops leaving node 0 are fed by START
        and ops entering node 3 feed END. The structure is the same for every cell; only the
        node types differ, as in MetaD2A.
        """
        types = np.array([DAG_START, *(o + 2 for o in self.op_indices), DAG_END], dtype=np.int64)
        return types, dag_adjacency()

    @classmethod
    def from_dag(cls, types: Sequence[int]) -> NB201Arch:
        """Inverse of :meth:`to_dag` (node types only; the adjacency is fixed)."""
        types = [int(t) for t in types]
        if len(types) != DAG_NUM_NODES or types[0] != DAG_START or types[-1] != DAG_END:
            raise ArchitectureError(
                f"an NB201 DAG has {DAG_NUM_NODES} nodes, START first and END last; got {types}"
            )
        if any(not 2 <= t < DAG_NUM_TYPES for t in types[1:-1]):
            raise ArchitectureError(f"op node types must be in 2..{DAG_NUM_TYPES - 1}; got {types}")
        return cls(tuple(t - 2 for t in types[1:-1]))

    # ----- functional equivalence ---------------------------------------------------------
    @cached_property
    def canonical_form(self) -> str:
        """A string that is equal for cells computing the same function.

        Rule: node 0 is the input ``x``; every other node is the sum (a sorted multiset, so edge
        order and the numbering of the two intermediate nodes do not matter) of ``op(source)``
        terms; ``none`` edges contribute nothing; a node with no terms is zero and every op
        applied to zero is dropped, so dead nodes and the edges leaving them vanish;
        ``skip_connect`` is the identity, so ``skip(x)`` is just ``x``. The form is the
        expression of node 3; cells whose output is identically zero share the form ``0``.

        This rule puts NB201's 15,625 cells into **4,930** classes. The literature's 6,466
        comes from NB201's own rule (:attr:`nb201_unique_form`), which also treats skip as the
        identity but keeps each ``none`` as an explicit zero term and only propagates a zero
        node when it has a single input; it therefore separates cells such as
        ``x + 0`` and ``x`` that compute the same function. Both counts are reported by
        ``metanas space info nb201``.
        """
        # Each node is its multiset of terms (a sorted tuple). ``skip`` splices the source's
        # terms in, so skip(a + b) + c is the multiset {a, b, c}, the same as a + b + c reached
        # by any other wiring; an op keeps its (sorted) argument grouped inside its parentheses.
        exprs: list[tuple[str, ...] | None] = [("x",)]
        k = 0
        for to in range(1, NUM_NODES):
            terms: list[str] = []
            for src in range(to):
                op = OPS[self.op_indices[k]]
                k += 1
                source = exprs[src]
                if op == "none" or source is None:
                    continue
                if op == "skip_connect":
                    terms.extend(source)
                else:
                    terms.append(f"{op}({'+'.join(source)})")
            exprs.append(tuple(sorted(terms)) if terms else None)
        out = exprs[-1]
        return "+".join(out) if out else "0"

    @cached_property
    def edge_roles(self) -> tuple[str, ...]:
        """Per edge (``EDGES`` order): ``off`` (``none``, or its source is never reached from
        the input, so the network skips it), ``dead`` (it runs, but no path takes its output to
        the cell's output) or ``live``."""
        reached, executed = {0}, []
        for e, ((to, src), op) in enumerate(zip(EDGES, self.ops, strict=True)):
            if op != "none" and src in reached:  # EDGES is in node order
                reached.add(to)
                executed.append((e, to, src))
        useful = {NUM_NODES - 1}  # nodes with a path to the output node
        for _, to, src in reversed(executed):
            if to in useful:
                useful.add(src)
        roles = ["off"] * NUM_EDGES
        for e, to, _ in executed:
            roles[e] = "live" if to in useful else "dead"
        return tuple(roles)

    def pruned(self) -> NB201Arch:
        """The same function with every edge that cannot affect the output set to ``none``:
        a predictor that reads ops then scores the cell by what it computes."""
        ops = tuple(o if r == "live" else 0
                    for o, r in zip(self.op_indices, self.edge_roles, strict=True))
        return self if ops == self.op_indices else NB201Arch(ops)

    @cached_property
    def nb201_unique_form(self) -> str:
        """NB201's isomorphism string (15,625 cells -> 6,466 classes), for comparison only."""
        nodes = ["x"]
        k = 0
        for to in range(1, NUM_NODES):
            terms = []
            for src in range(to):
                op = OPS[self.op_indices[k]]
                k += 1
                if op == "none" or nodes[src] == "#":
                    terms.append("#")
                elif op == "skip_connect":
                    terms.append(nodes[src])
                else:
                    terms.append(f"({nodes[src]})@{op}")
            nodes.append("+".join(sorted(terms)))
        return nodes[-1]

    def canonical_hash(self) -> str:
        """Short stable hash of :attr:`canonical_form` (16 hex chars of SHA-256)."""
        return hashlib.sha256(self.canonical_form.encode()).hexdigest()[:16]

    @property
    def is_connected(self) -> bool:
        """False when the output does not depend on the input (the cell outputs zeros)."""
        return self.canonical_form != "0"


def all_op_indices() -> np.ndarray:
    """Every cell's op indices in index order, ``(15625, 6)`` int64: the base-5 digits of
    the index (first edge most significant), as :meth:`NB201Arch.from_index` reads them;
    vectorised (a loop over the cells costs ~0.2 s, a search pays that)."""
    index = np.arange(SPACE_SIZE, dtype=np.int64)
    place = NUM_OPS ** np.arange(NUM_EDGES - 1, -1, -1, dtype=np.int64)
    return (index[:, None] // place[None, :]) % NUM_OPS


def dag_adjacency() -> np.ndarray:
    """Fixed (8, 8) adjacency of the ops-as-nodes DAG (see :meth:`NB201Arch.to_dag`)."""
    adj = np.zeros((DAG_NUM_NODES, DAG_NUM_NODES), dtype=np.float32)
    for i, (to_i, _) in enumerate(EDGES, start=1):
        for j, (_, from_j) in enumerate(EDGES, start=1):
            if from_j == to_i:
                adj[i, j] = 1.0
    for i, (to_i, from_i) in enumerate(EDGES, start=1):
        if from_i == 0:
            adj[0, i] = 1.0
        if to_i == NUM_NODES - 1:
            adj[i, DAG_NUM_NODES - 1] = 1.0
    return adj


def count_unique(rule: str = "functional") -> int:
    """Number of distinct cells: ``functional`` (:attr:`~NB201Arch.canonical_form`, 4,930) or
    ``nb201`` (:attr:`~NB201Arch.nb201_unique_form`, 6,466)."""
    attr = {"functional": "canonical_form", "nb201": "nb201_unique_form"}[rule]
    return len({getattr(a, attr) for a in NB201Arch.enumerate_all()})


def parse(text: str | NB201Arch) -> NB201Arch:
    """Accept either an NB201Arch or its string."""
    return text if isinstance(text, NB201Arch) else NB201Arch.from_string(text)
