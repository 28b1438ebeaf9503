"""Derived views of a knowledge base that every method reads the same way.

A method learns from "how well did architecture a do on task t"; this module fixes what that
number is (``heldout``: validation and test accuracy pooled, seeds averaged) so the value
network, MetaD2A, the transfer baselines and the analyses agree.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from metanas.kb.store import KnowledgeBase

__all__ = ["FULL_TRAINING", "TARGET_METRICS", "accuracy_table", "fidelity_of",
           "heldout_accuracy", "op_prior", "source_names", "top_architectures"]

FULL_TRAINING: dict[str, int] = {"epochs": 200, "C": 16, "N": 5}
"""What "a full training" means: the NB201 recipe (200 epochs of the C=16, N=5 network)."""

TARGET_METRICS = ("heldout", "val_acc", "test_acc")
"""``heldout``: accuracy over the validation and test splits of a task together (weighted by
their sizes). Both are held out from that task's training, and pooling them halves the
binomial noise of a small proxy task's accuracy."""


def heldout_accuracy(row: Mapping, task: Mapping, metric: str = "heldout") -> float | None:
    """The ``metric`` of one evaluation row (``None`` when the row lacks it)."""
    if metric != "heldout":
        value = row.get(metric)
        return None if value is None else float(value)
    parts = [(row.get("val_acc"), task.get("n_val")), (row.get("test_acc"), task.get("n_test"))]
    parts = [(v, n or 1) for v, n in parts if v is not None]
    if not parts:
        return None
    return float(sum(v * n for v, n in parts) / sum(n for _, n in parts))


def fidelity_of(recipe_config: Mapping | None, task: Mapping) -> dict[str, float | None]:
    """How an evaluation was trained: ``epochs``, ``C``, ``N``, ``resolution``,
    ``images_per_class`` (``None`` = unknown). Published sources state it in their recipe
    config; a recipe the knowledge base ran itself has it in its fields and the task's split."""
    config = dict(recipe_config or {})
    if isinstance(config.get("fidelity"), Mapping):
        return {k: config["fidelity"].get(k) for k in
                ("epochs", "C", "N", "resolution", "images_per_class")}
    n_train, k = task.get("n_train"), task.get("num_classes")
    return {
        "epochs": config.get("epochs"),
        "C": config.get("C"),
        "N": config.get("N"),
        "resolution": config.get("resolution") or task.get("resolution"),
        "images_per_class": (n_train / k) if n_train and k else None,
    }


def source_names(text: str) -> set[str]:
    """The knowledge sources named by a comma-separated option (``exclude_sources`` and the
    like; blanks ignored)."""
    return {s.strip() for s in str(text).split(",") if s.strip()}


def accuracy_table(
    kb: KnowledgeBase, *, metric: str = "heldout", recipe: str | None = None,
    recipe_hash: str | None = None, source: str | None = None,
) -> dict[str, dict[str, float]]:
    """``{task key: {architecture string: metric averaged over seeds}}``."""
    tasks = {t["key"]: t for t in kb.tasks()}
    sums: dict[str, dict[str, list[float]]] = {}
    for row in kb.evaluations(recipe=recipe, recipe_hash=recipe_hash, source=source,
                              space="nb201"):
        value = heldout_accuracy(row, tasks[row["task_key"]], metric)
        if value is not None:
            sums.setdefault(row["task_key"], {}).setdefault(row["arch"], []).append(value)
    return {k: {a: float(np.mean(v)) for a, v in archs.items()} for k, archs in sums.items()}


def top_architectures(
    table: Mapping[str, Mapping[str, float]], n: int | None, *, min_tasks: int = 1,
    shrinkage: float = 1.0,
) -> list[tuple[str, float, int]]:
    """The ``n`` (``None``: all) architectures with the highest shrunken mean per-task z-score.

    Z-scoring within a task removes how hard the task is, so an architecture measured only on
    easy tasks does not win for that reason. The score is ``sum(z) / (tasks + shrinkage)``: a
    cell measured once is pulled towards 0 (average), so one lucky noisy run does not outrank
    a cell that was good on many tasks. Returns ``(arch, score, tasks)`` best first; ties
    break by the architecture string so the result is deterministic.
    """
    scores: dict[str, list[float]] = {}
    for accs in table.values():
        if len(accs) < 2:
            continue
        values = np.array(list(accs.values()))
        std = values.std()
        for arch, value in accs.items():
            z = 0.0 if std == 0 else (value - values.mean()) / std
            scores.setdefault(arch, []).append(float(z))
    ranked = sorted(
        ((a, float(np.sum(z) / (len(z) + shrinkage)), len(z)) for a, z in scores.items() if len(z) >= min_tasks),
        key=lambda item: (-item[1], item[0]),
    )
    return ranked[:n]


def op_prior(kb: KnowledgeBase, *, sources: list[str] | None = None, top: int = 50,
             exclude: tuple[str, ...] = ()) -> np.ndarray:
    """Per-edge op frequencies ``(6, 5)`` among the ``top`` best cells of ``sources`` (default:
    the published sources, i.e. full trainings), add-one smoothed: a prior over NB201 cells
    in :data:`metanas.spaces.nb201.OPS` order."""
    from metanas.spaces.nb201 import NUM_EDGES, NUM_OPS, NB201Arch

    if sources is None:
        sources = sorted({t["source"] for t in kb.tasks()
                          if (t.get("spec") or {}).get("kind") == "published"})
    table: dict[str, dict[str, float]] = {}
    for source in sources:
        if source not in exclude:
            table.update(accuracy_table(kb, source=source))
    counts = np.ones((NUM_EDGES, NUM_OPS))
    for arch, _, _ in top_architectures(table, top):
        counts[np.arange(NUM_EDGES), NB201Arch.from_string(arch).op_indices] += 1
    return counts / counts.sum(1, keepdims=True)
