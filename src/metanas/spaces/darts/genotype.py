"""DARTS cells (normal + reduction) as light, immutable value objects.

A DARTS cell has two inputs (nodes 0 and 1: the outputs of the two previous cells) and
``STEPS = 4`` intermediate nodes (2..5); intermediate node ``i`` sums two ``(op, input)`` pairs
with ``input < i``; the cell output concatenates nodes 2..5. The string form is the ``repr`` of
DARTS' ``Genotype`` namedtuple, so cells can be pasted into the DARTS / PC-DARTS / BASE code::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[...], reduce_concat=[2, 3, 4, 5])

Parsing is done on the syntax tree (never ``eval``) and also accepts ``range(2, 6)`` for the
concat lists. As in BASE's released cells, a node may take the same input twice with two ops.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metanas.errors import ArchitectureError, shorten

OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                        "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
"""DARTS' op order; an op's index is its position here. ``none`` only exists in the supernet."""
STEPS = 4
CONCAT: tuple[int, ...] = tuple(range(2, 2 + STEPS))
NUM_OPS = len(OPS)
NUM_EDGES = sum(2 + i for i in range(STEPS))  # 14
CELL_OPS = OPS[1:]
"""Ops a derived cell may use (``none`` is excluded by derivation)."""

Pair = tuple[str, int]


def edge_index(node: int, src: int) -> int:
    """Row of edge ``src -> node`` (node 0..3 = intermediate nodes 2..5) in a logits table."""
    if not 0 <= node < STEPS or not 0 <= src < node + 2:
        raise ArchitectureError(f"no DARTS edge from {src} to intermediate node {node}")
    return sum(2 + i for i in range(node)) + src


def _check_cell(pairs: Sequence, which: str) -> tuple[Pair, ...]:
    pairs = tuple(pairs)
    if len(pairs) != 2 * STEPS:
        raise ArchitectureError(f"a DARTS {which} cell needs {2 * STEPS} (op, input) pairs, "
                                f"got {len(pairs)}")
    out = []
    for k, pair in enumerate(pairs):
        try:
            op, src = pair
        except (TypeError, ValueError):
            raise ArchitectureError(f"{which} pair {k} must be (op, input), got {shorten(pair, 60)}") from None
        if op not in CELL_OPS:
            raise ArchitectureError(f"unknown op {shorten(op, 40)} in the {which} cell; valid ops: "
                                    f"{', '.join(CELL_OPS)}")
        node = k // 2
        if isinstance(src, bool) or not isinstance(src, (int, np.integer)) \
                or not 0 <= src < node + 2:
            raise ArchitectureError(f"{which} pair {k} ({shorten(op, 40)}, {shorten(src, 20)}): node {node + 2} "
                                    f"takes inputs 0..{node + 1}")
        out.append((str(op), int(src)))
    return tuple(out)


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@dataclass(frozen=True)
class DartsGenotype:
    """A DARTS architecture: 8 (op, input) pairs per cell type, two per intermediate node."""

    normal: tuple[Pair, ...]
    reduce: tuple[Pair, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", _check_cell(self.normal, "normal"))
        object.__setattr__(self, "reduce", _check_cell(self.reduce, "reduce"))

    # ----- string form --------------------------------------------------------------------
    def to_string(self) -> str:
        def cell(pairs):
            return "[" + ", ".join(f"({op!r}, {src})" for op, src in pairs) + "]"

        concat = "[" + ", ".join(str(c) for c in CONCAT) + "]"
        return (f"Genotype(normal={cell(self.normal)}, normal_concat={concat}, "
                f"reduce={cell(self.reduce)}, reduce_concat={concat})")

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str) -> DartsGenotype:
        """Parse DARTS' ``Genotype(...)`` repr; raises ArchitectureError saying what is wrong."""
        if not isinstance(text, str):
            raise ArchitectureError(f"a DARTS genotype must be a string, got {type(text).__name__}")
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            raise ArchitectureError(f"not a DARTS genotype (syntax error): {shorten(text)}") from None
        if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
                and tree.func.id == "Genotype" and not tree.args):
            raise ArchitectureError("a DARTS genotype looks like Genotype(normal=[...], "
                                    f"normal_concat=[2, 3, 4, 5], reduce=[...], "
                                    f"reduce_concat=[2, 3, 4, 5]); got {shorten(text)}")
        fields = {kw.arg: kw.value for kw in tree.keywords}
        missing = sorted({"normal", "reduce"} - set(fields))
        unknown = sorted(set(fields) - {"normal", "reduce", "normal_concat", "reduce_concat"})
        if missing or unknown:
            raise ArchitectureError(f"DARTS genotype fields: missing {missing}, unknown {unknown}")
        for name in ("normal_concat", "reduce_concat"):
            if name in fields and _concat(fields[name], name) != CONCAT:
                raise ArchitectureError(f"{name} must be {list(CONCAT)} (all intermediate nodes)")
        cells = {}
        for name in ("normal", "reduce"):
            try:
                cells[name] = ast.literal_eval(fields[name])
            except ValueError:
                raise ArchitectureError(f"{name} must be a list of (op, input) pairs") from None
        return cls(tuple(map(tuple, cells["normal"])), tuple(map(tuple, cells["reduce"])))

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def from_probabilities(cls, normal: np.ndarray, reduce: np.ndarray) -> DartsGenotype:
        """BASE's derivation: per intermediate node, the two most probable (input, op) pairs of
        the node's whole table (all its inputs x all ops but ``none``); the same input may be
        taken twice with two different ops. Ties break toward the earlier input, then op."""
        return cls(derive_cell(normal), derive_cell(reduce))

    @classmethod
    def sample(cls, seed: int | np.random.Generator | None = None) -> DartsGenotype:
        """Uniformly random distinct (input, op) pairs per node."""
        rng = _rng(seed)
        return cls(_sample_cell(rng), _sample_cell(rng))

    def mutate(self, seed: int | np.random.Generator | None = None) -> DartsGenotype:
        """Change one pair (its op or its input) in the normal or the reduction cell."""
        rng = _rng(seed)
        which = "normal" if rng.random() < 0.5 else "reduce"
        pairs = list(getattr(self, which))
        k = int(rng.integers(len(pairs)))
        node = k // 2
        other = pairs[k ^ 1]
        options = [(op, src) for src in range(node + 2) for op in CELL_OPS
                   if (op, src) != pairs[k] and (op, src) != other]
        pairs[k] = options[int(rng.integers(len(options)))]
        cells = {"normal": self.normal, "reduce": self.reduce, which: tuple(pairs)}
        return DartsGenotype(**cells)

    # ----- views --------------------------------------------------------------------------
    def one_hot(self) -> dict[str, np.ndarray]:
        """(14, 8) 0/1 tables of the chosen edges per cell type (two ones per node)."""
        out = {}
        for name in ("normal", "reduce"):
            table = np.zeros((NUM_EDGES, NUM_OPS), dtype=np.float32)
            for k, (op, src) in enumerate(getattr(self, name)):
                table[edge_index(k // 2, src), OPS.index(op)] = 1.0
            out[name] = table
        return out

    @property
    def canonical_form(self) -> str:
        """Equal for genotypes that differ only in the order of a node's two pairs."""
        def cell(pairs):
            return ";".join(",".join(f"{op}~{src}" for op, src in
                                     sorted(pairs[2 * n: 2 * n + 2], key=lambda p: (p[1], p[0])))
                            for n in range(STEPS))

        return f"normal:{cell(self.normal)}|reduce:{cell(self.reduce)}"

    def canonical_hash(self) -> str:
        return hashlib.sha256(self.canonical_form.encode()).hexdigest()[:16]

    def __hash__(self) -> int:
        return hash(self.canonical_form)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DartsGenotype):
            return NotImplemented
        return self.canonical_form == other.canonical_form


def derive_cell(probs: np.ndarray) -> tuple[Pair, ...]:
    """Top-2 (input, op) pairs per node of a (14, 8) probability table, ``none`` excluded."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (NUM_EDGES, NUM_OPS):
        raise ArchitectureError(f"expected a {NUM_EDGES}x{NUM_OPS} table, got {probs.shape}")
    pairs: list[Pair] = []
    for node in range(STEPS):
        cands = [(-probs[edge_index(node, src), o], src, o)
                 for src in range(node + 2) for o in range(1, NUM_OPS)]
        cands.sort()
        pairs += [(OPS[o], src) for _, src, o in cands[:2]]
    return tuple(pairs)


def _sample_cell(rng: np.random.Generator) -> tuple[Pair, ...]:
    pairs: list[Pair] = []
    for node in range(STEPS):
        options = [(op, src) for src in range(node + 2) for op in CELL_OPS]
        for i in rng.choice(len(options), size=2, replace=False):
            pairs.append(options[int(i)])
    return tuple(pairs)


def _concat(node: ast.expr, name: str) -> tuple[int, ...]:
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "range" and not node.keywords):
        try:
            args = [ast.literal_eval(a) for a in node.args]
            return tuple(range(*args))
        except (ValueError, TypeError):
            pass
    else:
        try:
            return tuple(ast.literal_eval(node))
        except (ValueError, TypeError):
            pass
    raise ArchitectureError(f"{name} must be a list of node ids or range(2, 6)")


def parse(text: str | DartsGenotype) -> DartsGenotype:
    return text if isinstance(text, DartsGenotype) else DartsGenotype.from_string(text)
