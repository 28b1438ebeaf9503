"""From an architecture distribution to ranked architectures.

NB201: the cell distribution is a product of per-edge categoricals, so a cell's score is the sum
of its edges' log-probabilities; the argmax cell is the top, and all 15,625 cells are scored to
list the next most probable ones (functionally identical cells merged, cells whose output does
not depend on the input dropped).

DARTS: per intermediate node the two most probable (input, op) pairs of the node's whole table
(``none`` excluded, the same input allowed twice); alternatives swap one pick for the node's
next best pair, ranked by the same summed log-probability.
"""

from __future__ import annotations

import functools

import numpy as np

from metanas.spaces.darts import OPS as DARTS_OPS
from metanas.spaces.darts import STEPS, DartsGenotype, edge_index
from metanas.spaces.nb201 import NUM_EDGES, NUM_OPS, NB201Arch, all_op_indices

EPS = 1e-12


_all_op_indices = functools.cache(all_op_indices)


def rank_nb201(probs: np.ndarray, top: int = 10) -> list[tuple[NB201Arch, float]]:
    """The ``top`` most probable distinct connected cells with their summed log-probability."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (NUM_EDGES, NUM_OPS):
        raise ValueError(f"expected a {NUM_EDGES}x{NUM_OPS} table, got {probs.shape}")
    logp = np.log(np.clip(probs, EPS, None))
    scores = logp[np.arange(NUM_EDGES), _all_op_indices()].sum(1)
    out: list[tuple[NB201Arch, float]] = []
    seen: set[str] = set()
    for i in np.argsort(-scores, kind="stable"):
        arch = NB201Arch.from_index(int(i))
        if not arch.is_connected or arch.canonical_form in seen:
            continue
        seen.add(arch.canonical_form)
        out.append((arch, float(scores[i])))
        if len(out) >= top:
            break
    return out


def genotype_log_prob(geno: DartsGenotype, tables: dict[str, np.ndarray]) -> float:
    total = 0.0
    for name in ("normal", "reduce"):
        p = np.clip(np.asarray(tables[name], dtype=np.float64), EPS, None)
        for k, (op, src) in enumerate(getattr(geno, name)):
            total += float(np.log(p[edge_index(k // 2, src), DARTS_OPS.index(op)]))
    return total


def rank_darts(tables: dict[str, np.ndarray], top: int = 10) -> list[tuple[DartsGenotype, float]]:
    """The derived genotype, then single-swap alternatives, by summed log-probability."""
    best = DartsGenotype.from_probabilities(tables["normal"], tables["reduce"])
    pool = {best}
    for name in ("normal", "reduce"):
        p = np.asarray(tables[name], dtype=np.float64)
        for node in range(STEPS):
            cands = sorted((-p[edge_index(node, s), o], s, o) for s in range(node + 2)
                            for o in range(1, len(DARTS_OPS)))
            third = [(DARTS_OPS[o], s) for _, s, o in cands[2:4]]
            for slot in (0, 1):
                for alt in third:
                    pairs = list(getattr(best, name))
                    pairs[2 * node + slot] = alt
                    cells = {"normal": best.normal, "reduce": best.reduce, name: tuple(pairs)}
                    pool.add(DartsGenotype(**cells))
    ranked = sorted(((g, genotype_log_prob(g, tables)) for g in pool),
                    key=lambda t: (-t[1], t[0].canonical_form))
    return ranked[:top]
