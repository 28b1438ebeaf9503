"""Run a bench plan: every method picks a cell for every dataset, every pick is trained alike.

Per cell (dataset, method, seed): the method searches the dataset with ``seed`` under the
declared budget (only methods whose ``budget_kinds`` include seconds get it), then its pick
is trained with the bench recipe on the same task for every method (the dataset's classes at
the recipe's or the proxy resolution, ``max_train_per_class`` labelled images per class, split
by ``seed``). Methods are found by name in the registry, so methods registered later need no
change here. Common settings reach a method only through what it declares: ``recipe`` and
``max_train_per_class`` are passed as search options when its ``Options`` declare them; a
method that trains candidates (``TrainingSearch``) and only has the attribute gets it set.

A pick that the search itself trained on the bench's task with the bench's recipe and seed
(random, rea, fisher-nearest) is not trained again: training is deterministic there, so its
numbers are taken over (``train_reused``) and add nothing to the total compute.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from metanas.bench.plan import BenchConfig, BenchPlan, Cell
from metanas.bench.report import BenchReport, write_report
from metanas.bench.store import CellStore
from metanas.data import ImageDataset
from metanas.errors import ConfigError
from metanas.methods.interface import SearchMethod, SearchResult
from metanas.methods.registry import create_method
from metanas.progress import Bars
from metanas.spaces.nb201 import NB201Network, count_macs, count_params, parse
from metanas.tasks import Task, make_task, proxy_resolution
from metanas.training import get_recipe, train_architecture
from metanas.version import __version__

__all__ = ["run_bench"]

#: Search options the bench sets from its own arguments when a method declares them.
SHARED_OPTIONS = ("recipe", "max_train_per_class")


def run_bench(config: BenchConfig, *, progress: bool = False) -> BenchReport:
    """Validate ``config``, run the unfinished cells, write the results; see docs/bench.md."""
    plan = BenchPlan.build(config, progress=progress)
    store = CellStore(plan.out)
    todo = [c for c in plan.cells if store.get(c) is None]
    # methods (and their options) are checked before anything is written
    methods = {m: _load(plan, m) for m in dict.fromkeys(c.method for c in todo)}
    plan.out.mkdir(parents=True, exist_ok=True)
    tasks: dict[tuple[str, int], Task] = {}
    start = time.perf_counter()
    with Bars(progress) as bars:
        bar = bars.add("bench cells", len(plan.cells))
        bars.set(bar, len(plan.cells) - len(todo))
        for cell in todo:
            bars.advance(bar, status=f"{plan.datasets[cell.dataset].name} / {cell.method} / "
                                    f"seed {cell.seed}")
            key = (cell.dataset, cell.seed)
            if key not in tasks:
                tasks[key] = _final_task(plan, plan.datasets[cell.dataset], cell.seed)
            record = run_cell(plan, cell, methods[cell.method], tasks[key])
            store.put(cell, record)
    # a cell stored by a run that spelled the dataset's path otherwise (same content, same
    # key) is this run's cell: --lookup DATASET matches this run's spelling
    records = [r if r is None else {**r, "dataset_spec": c.dataset}
               for c, r in ((c, store.get(c)) for c in plan.cells)]
    return write_report(plan, [r for r in records if r is not None],
                        computed=len(todo), seconds=time.perf_counter() - start)


def _load(plan: BenchPlan, name: str) -> SearchMethod:
    checkpoint = plan.config.checkpoints.get(name)
    runner = create_method(name, checkpoint=checkpoint, recipe=plan.config.recipe,
                           device=plan.config.device)
    if "max_train_per_class" not in runner.option_names() and hasattr(runner,
                                                                        "max_train_per_class"):
        runner.max_train_per_class = plan.config.max_train_per_class
    runner.Options.parse(plan.config.options.get(name, {}), name)  # fails before any work
    return runner


def _final_task(plan: BenchPlan, data: ImageDataset, seed: int) -> Task:
    """The task every pick of this dataset and seed is trained on."""
    recipe = get_recipe(plan.config.recipe)
    res = recipe.resolution or proxy_resolution(max(data.image_size))
    return make_task(data, resolution=res, max_train_per_class=plan.config.max_train_per_class,
                     seed=seed)


def run_cell(plan: BenchPlan, cell: Cell, runner: SearchMethod, task: Task) -> dict[str, Any]:
    """Search, then train the pick; a JSON-able record of both."""
    data = plan.datasets[cell.dataset]
    options = {k: getattr(plan.config, k) for k in SHARED_OPTIONS if k in runner.option_names()}
    options.update(plan.config.options.get(cell.method, {}))
    budget = plan.budget_for(cell.method)
    result = runner.search(data, top=plan.config.top, seed=cell.seed, budget=budget,
                           **options)
    if result.space != "nb201":
        raise ConfigError(f"{cell.method} picked a {result.space} cell; the bench trains NB201")
    pick = parse(result.architecture)
    recipe = get_recipe(plan.config.recipe)
    pool = trained_candidates(result, recipe.hash, task.resolution)
    reused = next((c for c in pool if c["arch"] == pick.to_string()), None)
    if reused is not None:  # the search already trained the pick exactly as the bench would
        trained = _reused_training(pick, task, recipe, reused)
        extra_seconds = 0.0
    else:
        trained = train_architecture(pick, task, recipe, seed=cell.seed,
                                     device=plan.config.device)
        extra_seconds = trained.seconds
    return {
        "dataset": data.name,
        "dataset_spec": cell.dataset,
        "method": cell.method,
        "seed": cell.seed,
        "pick": pick.to_string(),
        "search_seconds": result.search_seconds,
        "train_seconds": trained.seconds,
        "train_reused": reused is not None,
        "total_seconds": result.search_seconds + extra_seconds,
        "val_acc": trained.val_acc,
        "test_acc": trained.test_acc,
        "params": trained.params,
        "macs": trained.macs,
        "search_score": result.candidates[0].score,
        "budget": None if budget is None else budget.describe(),
        "recipe": recipe.name,
        "recipe_hash": recipe.hash,
        "resolution": task.resolution,
        "max_train_per_class": plan.config.max_train_per_class,
        "trained_candidates": pool,
        "search": {"timings": result.timings, "details": result.details,
                   "candidates": len(result.candidates)},
        "metanas_version": __version__,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _reused_training(arch, task: Task, recipe, candidate: dict[str, Any]) -> SimpleNamespace:
    """The final-training numbers of a pick the search trained on the bench's task, recipe and
    seed (training is deterministic there, so training it again would repeat them)."""
    model = NB201Network(arch, C=recipe.C, N=recipe.N, in_channels=task.channels,
                         num_classes=task.num_classes)
    return SimpleNamespace(
        val_acc=candidate["val_acc"], test_acc=candidate["test_acc"],
        seconds=candidate["train_seconds"], params=count_params(model),
        macs=count_macs(model, recipe.resolution or task.resolution, task.channels),
    )


def trained_candidates(result: SearchResult, recipe_hash: str,
                       resolution: int) -> list[dict[str, Any]]:
    """Candidates the search trained on the bench's own task and recipe (comparable with the
    final training of any pick), or none when its training differed from the bench's."""
    d = result.details
    if d.get("recipe_hash") != recipe_hash or d.get("resolution") != resolution:
        return []
    return [{"arch": c.arch, "test_acc": c.extra["test_acc"], "val_acc": c.extra.get("val_acc"),
             "train_seconds": c.extra.get("train_seconds")}
            for c in result.candidates if "test_acc" in c.extra and "val_acc" in c.extra]
