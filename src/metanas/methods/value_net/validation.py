"""Leave-tasks-out validation of the value network (task-aware against task-agnostic)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from metanas.methods.interface import (
    config_from_options,
)
from metanas.methods.validation import ranking_metrics, summarize, task_folds
from metanas.methods.value_net.data import load_training_data, task_subset
from metanas.methods.value_net.method import ValueNetMethod
from metanas.methods.value_net.model import ValueNetConfig
from metanas.spaces.nb201 import NB201Arch


def cross_validate(kb, *, folds: int = 5, progress: bool = False, **options) -> dict[str, Any]:
    """Leave-tasks-out validation: Spearman and Kendall tau per held-out task.

    Tasks (never single evaluations) are split into ``folds`` groups; each group is held out
    while the network is trained on the rest, then the held-out tasks' measured accuracies are
    correlated with the predictions. Also reports the same network with its meta-features
    masked (task-agnostic), which measures what task-awareness adds.
    """
    config = config_from_options(ValueNetConfig, options, "value-net")
    data = load_training_data(kb, config)
    n_tasks = len(data.task_keys)
    per_task: list[dict[str, Any]] = []
    splits = list(task_folds(n_tasks, folds, config.seed))
    for held, train_ids in splits:
        for aware in (True, False):
            model = ValueNetMethod.fit(task_subset(data, train_ids), config, use_features=aware)
            for t in held:
                rows = data.task_index == t
                archs = [NB201Arch.from_probabilities(a) for a in data.archs[rows]]
                pred = model.score(model.encode_vector(data.features[t]), archs)
                per_task.append({"task": data.task_keys[t], "aware": aware,
                                 "n": int(rows.sum()),
                                 **ranking_metrics(pred, data.accuracy[rows])})
    folds = len(splits)

    def summary(aware: bool) -> dict[str, float]:
        return summarize([r for r in per_task if r["aware"] is aware])

    return {
        "folds": folds,
        "tasks": n_tasks,
        "evaluations": int(len(data.target)),
        "config": asdict(config),
        "task_aware": summary(True),
        "task_agnostic": summary(False),
        "per_task": per_task,
    }
