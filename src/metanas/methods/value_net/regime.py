"""Searching a target by its own regime's measured cells where the network does not model it.

Trained on every source, the value network lets a narrow regime's preferences leak into the
others (Omniglot-background tasks learned by grouped batches took the leave-ImageNet16-120-out
top-1 from 46.83 to 30.77), and trained with uniform batches it does not learn a source of
small tasks at all (docs/value_net.md, session 14). Sources named ``neighbour_sources`` at
meta-training therefore stay out of the network and are kept as *neighbours*: each task's
meta-features, standardized as the network's inputs, and its measured cells as per-task
z-scores. The meta-features of the network's own tasks are kept too. At search, when most of
the ``k`` stored tasks nearest to the target (Euclidean, in that standardized space) come from
one neighbour source, the target is in that source's regime: its candidates are the cells
those nearest tasks measured (isomorphic cells pooled), scored by their mean z-score shrunk
towards 0 by one pseudo-task (one lucky cell of one task does not lead); the search's
``mode`` and ``fidelity`` then do not apply. Elsewhere nothing changes. There is no distance
threshold: a dataset unlike every stored task goes to whichever tasks are nearest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from metanas.errors import CheckpointError, ConfigError, MetanasError, first_line
from metanas.kb.views import accuracy_table, source_names
from metanas.methods.value_net.data import task_zscores
from metanas.spaces.nb201 import NB201Arch

__all__ = ["Regime", "check_regime", "find_regime", "neighbour_tasks"]


def check_regime(info: dict[str, Any], n_features: int, where: str) -> None:
    """Refuse a checkpoint's regime data (``info["regime"]``, if any) that a search could
    not use: wrong types or feature count, cell strings that are not NB201 cells, non-finite
    numbers, tasks without cells. One :class:`CheckpointError` naming ``where``."""
    stored = info.get("regime")
    if stored is None:
        return
    try:
        points = [*stored["network_tasks"], *(n["x"] for n in stored["neighbours"])]
        if not stored["neighbours"] or any(len(p) != n_features for p in points):
            raise ValueError("feature count")
        if not np.isfinite(np.array(points, dtype=float)).all():
            raise ValueError("non-finite features")
        for n in stored["neighbours"]:
            if not (isinstance(n["name"], str) and isinstance(n["source"], str) and n["cells"]):
                raise ValueError("a neighbour without name, source or cells")
            z = np.array([float(v) for v in n["cells"].values()])
            if not np.isfinite(z).all():
                raise ValueError("non-finite z-scores")
            for arch in n["cells"]:
                NB201Arch.from_string(arch)
    except (KeyError, TypeError, ValueError, AttributeError, MetanasError) as exc:
        raise CheckpointError(f"{where}: malformed regime data ({first_line(exc)})") from None


@dataclass(frozen=True)
class Regime:
    """The neighbour source a target belongs to, the nearest tasks of it, and what they
    measured: ``evidence`` maps a cell string to its shrunken mean z-score."""

    source: str
    tasks: list[str]
    distances: list[float]
    evidence: dict[str, float]
    k: int
    """How many nearest stored tasks were asked (``tasks`` are those of them of ``source``)."""

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "k": self.k, "tasks": self.tasks,
                "distances": [round(d, 4) for d in self.distances],
                "cells": len(self.evidence)}


def neighbour_tasks(kb, sources: str, encode) -> list[dict[str, Any]]:
    """The tasks of ``sources`` (comma list) with meta-features and at least 3 measured
    cells: name, source, ``x`` (``encode(meta_features)``, rounded) and ``cells`` (cell ->
    z-score of its accuracy within the task, seeds averaged). A named source without such a
    task is refused."""
    out: list[dict[str, Any]] = []
    for source in sorted(source_names(sources)):
        rows = {t["key"]: t for t in kb.tasks(source=source) if t.get("meta_features")}
        table = accuracy_table(kb, source=source)
        found = 0
        for key, accs in sorted(table.items()):
            if key not in rows or len(accs) < 3:
                continue
            values = np.array(list(accs.values()))
            z = task_zscores(values)
            out.append({"name": rows[key]["name"], "source": source,
                        "x": [round(float(v), 4) for v in encode(rows[key]["meta_features"])],
                        "cells": {a: round(float(v), 4) for a, v in zip(accs, z, strict=True)}})
            found += 1
        if not found:
            raise ConfigError(f"value-net neighbour_sources: no task of {source!r} has "
                              "meta-features and 3 or more measured cells")
    return out


def find_regime(info: dict[str, Any], x: np.ndarray, k: int) -> Regime | None:
    """The regime of a target with standardized meta-features ``x`` (see the module
    docstring), or ``None``: no neighbours stored, ``k`` is 0, or most of the ``k`` nearest
    stored tasks are not of one neighbour source."""
    stored = info.get("regime")
    if not stored or k < 1:
        return None
    neighbours = stored["neighbours"]
    try:
        points = np.array(stored["network_tasks"] + [n["x"] for n in neighbours], dtype=float)
    except (TypeError, ValueError):
        raise CheckpointError("value-net checkpoint: malformed regime data") from None
    if points.ndim != 2 or points.shape[1] != len(x):
        raise CheckpointError("value-net checkpoint: regime data of another feature count")
    n_net = len(stored["network_tasks"])
    dist = np.linalg.norm(points - x, axis=1)
    nearest = np.argsort(dist, kind="stable")[:k]
    sources = [neighbours[i - n_net]["source"] if i >= n_net else None for i in nearest]
    source, votes = Counter(sources).most_common(1)[0]
    if source is None or 2 * votes <= len(nearest):
        return None
    chosen = [int(i) for i, s in zip(nearest, sources, strict=True) if s == source]
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    names: dict[str, str] = {}  # one string per function (isomorphic cells pooled)
    for i in chosen:
        for arch, z in neighbours[i - n_net]["cells"].items():
            form = NB201Arch.from_string(arch).canonical_form
            names[form] = min(names.get(form, arch), arch)
            sums[form] = sums.get(form, 0.0) + float(z)
            counts[form] = counts.get(form, 0) + 1
    scored = sorted(((sums[f] / (counts[f] + 1), names[f]) for f in sums),
                    key=lambda t: (-t[0], t[1]))  # best first, ties by the cell string
    return Regime(source, [neighbours[i - n_net]["name"] for i in chosen],
                  [float(dist[i]) for i in chosen], {a: v for v, a in scored}, len(nearest))
