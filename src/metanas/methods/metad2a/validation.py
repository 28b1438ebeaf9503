"""Leave-tasks-out validation of MetaD2A's predictor (and generator) on a knowledge base.

Tasks (never single evaluations of seen tasks) are split into ``folds`` groups. For each group,
the predictor is trained on the other tasks, with its epoch selected on an inner hold-out of
those training tasks (so the outer held-out tasks never influence training or selection), then
the outer tasks' measured accuracies are correlated with its predictions: Pearson, Spearman and
Kendall per held-out task, and the top-1 regret. ``control=True`` also trains the same predictor
with the dataset embedding zeroed (task-agnostic), which measures what the dataset encoding adds;
``generator=True`` trains the generator on the same folds and measures it on the held-out tasks.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from metanas.methods.metad2a.extractor import as_extractor
from metanas.methods.metad2a.generation import generator_metrics
from metanas.methods.metad2a.training import (
    MetaD2AConfig,
    MetaTrainData,
    evaluate_predictor,
    fit_generator,
    fit_predictor,
    load_meta_data,
    split_tasks,
)
from metanas.methods.validation import summarize, task_folds
from metanas.progress import Bars
from metanas.threads import single_threaded


def cross_validate_data(data: MetaTrainData, config: MetaD2AConfig, *, folds: int = 5,
                        control: bool = True, generator: bool = False,
                        progress: bool = False) -> dict[str, Any]:
    """Leave-tasks-out validation on already encoded tasks (see the module docstring)."""
    n = len(data)
    splits = list(task_folds(n, folds, config.seed))
    folds = len(splits)
    per_task: list[dict[str, Any]] = []
    gen_reports = []
    variants = [True, False] if control else [True]
    start = time.perf_counter()
    with Bars(progress) as bars:
        bar = bars.add("metad2a: leave-tasks-out", folds * len(variants))
        for k, (held, train) in enumerate(splits):
            inner_train, inner_val = (train[i] for i in split_tasks(len(train), config.holdout,
                                                                    config.seed + k))
            for aware in variants:
                cfg = replace(config, task_aware=aware)
                model, info = fit_predictor(data, cfg, inner_train, inner_val)
                if cfg.refit and len(inner_val):
                    model, _ = fit_predictor(data, cfg, train, (), epochs=info["best_epoch"])
                report = evaluate_predictor(model, data, held, replace(cfg, eval_resamples=10))
                for rec in report["per_task"]:
                    per_task.append({**rec, "fold": k, "aware": aware,
                                     "best_epoch": info["best_epoch"]})
                bars.advance(bar)
            if generator:
                gen_model, _ = fit_generator(data, config, train)
                gen_reports.append(generator_metrics(gen_model, data, held, train, config,
                                                     samples=200, seed=config.seed + k))
    out: dict[str, Any] = {
        "folds": folds, "tasks": n, "evaluations": int(sum(len(a) for a in data.accuracy)),
        "config": asdict(config), "seconds": round(time.perf_counter() - start, 1),
        "task_aware": summarize([r for r in per_task if r["aware"]]),
        "per_task": per_task,
    }
    if control:
        out["task_agnostic"] = summarize([r for r in per_task if not r["aware"]])
    if gen_reports:
        keys = [k for k in gen_reports[0] if isinstance(gen_reports[0][k], float)]
        weights = np.array([g["tasks"] for g in gen_reports], dtype=float)
        out["generator"] = {k: float(np.average([g[k] for g in gen_reports], weights=weights))
                            for k in keys}
        out["generator"]["samples_per_task"] = gen_reports[0]["samples_per_task"]
    return out


def cross_validate(kb, *, folds: int = 5, control: bool = True, generator: bool = False,
                   source=None, extractor=None, cache: bool = True, progress: bool = False,
                   **options) -> dict[str, Any]:
    """Encode the knowledge base's tasks, then :func:`cross_validate_data`."""
    config = MetaD2AConfig.from_options(options)
    ext = as_extractor(extractor)
    with single_threaded():
        data = load_meta_data(kb, ext, config, source=source, cache=cache, progress=progress)
        return cross_validate_data(data, config, folds=folds, control=control,
                                   generator=generator, progress=progress)
