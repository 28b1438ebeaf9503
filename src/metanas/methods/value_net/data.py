"""Meta-training rows gathered from a knowledge base: tasks, cells, targets, fidelities."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metanas.errors import (
    ConfigError,
    KnowledgeBaseError,
)
from metanas.features.metafeatures import FEATURE_NAMES, feature_vector
from metanas.kb.views import (
    FULL_TRAINING,
    accuracy_table,
    fidelity_of,
    heldout_accuracy,
    source_names,
    top_architectures,
)
from metanas.methods.value_net.model import ValueNetConfig
from metanas.spaces.nb201 import NB201Arch


@dataclass
class TrainingData:
    """Rows of (task index, architecture, target) gathered from a knowledge base."""

    task_keys: list[str]
    features: np.ndarray  # (T, F) raw meta-features
    task_index: np.ndarray  # (R,)
    archs: np.ndarray  # (R, 6, 5) one-hot
    target: np.ndarray  # (R,)
    accuracy: np.ndarray  # (R,) raw metric
    resolutions: list[int] = field(default_factory=list)
    fidelities: list[dict[str, Any]] = field(default_factory=list)
    """Distinct (epochs, C, N) of the evaluations, most evaluations first, each with
    ``cells``: the most distinct cells one task measured at it (how densely it covers the
    space: a published table covers all of it, MetaD2A's tasks one or two good cells)."""
    fidelity_inputs: bool = False
    """Whether ``features`` end with the :data:`FIDELITY_NAMES` inputs."""
    task_sources: list[str] = field(default_factory=list)
    """The knowledge source of each task (empty: not known)."""


def grouped_tasks(data: TrainingData, group_sources: str) -> np.ndarray:
    """Per task, whether its evaluations stay together in batches (``group_sources``: a comma
    list of sources, or ``all``). A source no task comes from is refused (a misspelt name
    would otherwise silently train ungrouped)."""
    names = source_names(group_sources)
    if "all" in names:
        return np.ones(len(data.task_keys), dtype=bool)
    unknown = sorted(names - set(data.task_sources))
    if unknown:
        known = ", ".join(sorted(set(data.task_sources))) or "none recorded"
        raise ConfigError(f"value-net group_sources: no meta-training task comes from "
                          f"{', '.join(unknown)} (sources: {known})")
    return np.array([s in names for s in data.task_sources] or [False] * len(data.task_keys),
                    dtype=bool)


def task_zscores(values: np.ndarray) -> np.ndarray:
    """One task's accuracies standardized (constant accuracies: all 0): what the network's
    rank targets and the neighbour tasks' evidence are."""
    return (values - values.mean()) / (values.std() + 1e-6)


FIDELITY_NAMES: tuple[str, ...] = ("log2_epochs", "log2_width", "log2_depth")


def fidelity_vector(fidelity: dict[str, Any]) -> np.ndarray:
    """The fidelity inputs of one evaluation group (unknown epochs: the NB201 recipe's 200)."""
    epochs = fidelity.get("epochs") or FULL_TRAINING["epochs"]
    width = fidelity.get("C") or FULL_TRAINING["C"]
    depth = fidelity.get("N") or FULL_TRAINING["N"]
    return np.log2(np.array([epochs, width, depth], dtype=np.float32))


def _excluded(config: ValueNetConfig) -> set[str]:
    """Sources the network does not train on: left out, or kept as neighbours."""
    return source_names(config.exclude_sources) | source_names(config.neighbour_sources)


def _complete(features: dict | None) -> bool:
    """Every meta-feature present and finite (the store keeps a NaN feature as null, and
    one NaN input would make the whole network NaN)."""
    values = [(features or {}).get(n) for n in FEATURE_NAMES]
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def load_training_data(kb, config: ValueNetConfig) -> TrainingData:
    """Average repeated seeds per (task, recipe); keep groups with every meta-feature (a task
    written by another tool may lack some) and at least 3 architectures (smaller ones pooled per source, see the module docstring)."""
    rows = kb.evaluations(recipe=config.recipe)
    tasks = {t["key"]: t for t in kb.tasks()}
    recipes = {r["hash"]: r.get("config") or {} for r in kb.recipes()}
    excluded = _excluded(config)
    groups: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in rows:
        task = tasks.get(r["task_key"])
        if task is None or not _complete(task.get("meta_features")) or task["source"] in excluded:
            continue
        value = heldout_accuracy(r, task, config.metric)
        if value is None:
            continue
        groups.setdefault((r["task_key"], r["recipe_hash"]), {}).setdefault(
            r["arch"], []).append(float(value))

    counts: dict[tuple, int] = {}
    densest: dict[tuple, int] = {}
    for (key, rhash), archs in groups.items():
        fid = fidelity_of(recipes.get(rhash), tasks[key])
        trio = tuple(fid.get(k) for k in ("epochs", "C", "N"))
        counts[trio] = counts.get(trio, 0) + sum(len(v) for v in archs.values())
        densest[trio] = max(densest.get(trio, 0), len(archs))
    fidelities = [{**dict(zip(("epochs", "C", "N"), trio, strict=True)), "cells": densest[trio]}
                  for trio, _ in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))]

    # fidelity inputs only where the knowledge base mixes fidelities (constant ones add nothing)
    with_fidelity = config.fidelity_features and len(fidelities) > 1

    def features_of(key: str, rhash: str) -> np.ndarray:
        vec = feature_vector(tasks[key]["meta_features"])
        if with_fidelity:
            vec = np.concatenate([vec, fidelity_vector(fidelity_of(recipes.get(rhash), tasks[key]))])
        return vec

    recipes_per_task: dict[str, int] = {}
    for key, _ in groups:
        recipes_per_task[key] = recipes_per_task.get(key, 0) + 1
    entries: list[tuple[str, np.ndarray, dict[str, float], int | None]] = []
    sources: list[str] = []
    pooled: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for (key, rhash), archs in sorted(groups.items()):
        if len(archs) >= 3:
            entries.append((key if recipes_per_task[key] == 1 else f"{key}:{rhash}",
                            features_of(key, rhash),
                            {a: float(np.mean(v)) for a, v in archs.items()},
                            tasks[key].get("resolution")))
            sources.append(tasks[key]["source"])
        elif config.pool_small_tasks:
            pooled.setdefault((tasks[key]["source"], rhash), []).append((key, rhash))
    for (source, rhash), members in sorted(pooled.items()):
        per_arch: dict[str, list[float]] = {}
        for member in members:
            for a, v in groups[member].items():
                per_arch.setdefault(a, []).append(float(np.mean(v)))
        if len(per_arch) < 3:
            continue
        feats = np.mean([features_of(*m) for m in members], axis=0)
        entries.append((f"pooled:{source}:{rhash}", feats,
                        {a: float(np.mean(v)) for a, v in per_arch.items()},
                        tasks[members[0][0]].get("resolution")))
        sources.append(source)
    if len(entries) < 2:
        raise KnowledgeBaseError(
            f"knowledge base {getattr(kb, 'path', '')}: needs at least 2 tasks with all "
            f"{len(FEATURE_NAMES)} meta-features and >= 3 evaluated "
            f"architectures each (metric {config.metric}, recipe {config.recipe or 'any'}); "
            f"found {len(entries)}"
        )
    feats, t_idx, archs, target, acc, keys = [], [], [], [], [], []
    for i, (key, vec, per_arch, _res) in enumerate(entries):
        keys.append(key)
        feats.append(vec)
        names = sorted(per_arch)
        values = np.array([per_arch[a] for a in names])
        tgt = task_zscores(values) if config.target == "zscore" else values
        for a, v, tv in zip(names, values, tgt, strict=True):
            t_idx.append(i)
            archs.append(NB201Arch.from_string(a).one_hot())
            target.append(tv)
            acc.append(v)
    resolutions = sorted({int(res) for *_x, res in entries if res})
    return TrainingData(
        task_keys=keys,
        features=np.stack(feats),
        task_index=np.array(t_idx),
        archs=np.stack(archs).astype(np.float32),
        target=np.array(target, dtype=np.float32),
        accuracy=np.array(acc, dtype=np.float32),
        resolutions=resolutions,
        fidelities=fidelities,
        fidelity_inputs=with_fidelity,
        task_sources=sources,
    )


def published_top_cells(kb, *, exclude: set[str] = frozenset(), n: int = 20) -> list[str]:
    """The ``n`` best cells of the knowledge base's published (fully trained) sources by
    shrunken mean per-task z-score: candidates a gradient search may never reach."""
    sources = sorted({t["source"] for t in kb.tasks()
                      if (t.get("spec") or {}).get("kind") == "published"} - set(exclude))
    table: dict[str, dict[str, float]] = {}
    for source in sources:
        table.update(accuracy_table(kb, source=source))
    return [a for a, _, _ in top_architectures(table, n)]


def task_subset(data: TrainingData, task_ids: np.ndarray) -> TrainingData:
    rows = np.isin(data.task_index, task_ids)
    remap = {int(t): i for i, t in enumerate(task_ids)}
    return TrainingData(
        task_keys=[data.task_keys[t] for t in task_ids],
        features=data.features[task_ids],
        task_index=np.array([remap[int(t)] for t in data.task_index[rows]]),
        archs=data.archs[rows],
        target=data.target[rows],
        accuracy=data.accuracy[rows],
        resolutions=data.resolutions,
        fidelities=data.fidelities,
        fidelity_inputs=data.fidelity_inputs,
        task_sources=[data.task_sources[t] for t in task_ids] if data.task_sources else [],
    )
