"""The Python API: one function per thing a user does; the CLI is a thin shell over it.

    import metanas
    result = metanas.search("digits", method="value-net", top=5)
    print(result.architecture)                      # NATS-Bench string of the top pick
    trained = metanas.train("digits", result.architecture)
    print(trained.test_acc)
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metanas.data import ImageDataset, from_arrays, load_dataset
from metanas.errors import ConfigError
from metanas.jsonio import check_output, write_json
from metanas.methods import registry
from metanas.methods.interface import Budget, SearchMethod, SearchResult
from metanas.methods.registry import METHODS
from metanas.spaces.nb201 import parse

if TYPE_CHECKING:
    from metanas.training import TrainResult
    from metanas.training.fit import FitResult

# Torch (about 2 s to import) is imported by the functions that need tensors, so listing
# methods, datasets, knowledge bases and spaces through this module stays fast.

MAX_SEED = 2**32 - 1
"""Seeds reach numpy, torch and SQLite; all accept this range."""


def check_seed(seed: Any) -> int:
    """A seed is an integer in [0, 2**32 - 1]; anything else is a one-line error."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        shown = repr(seed) if len(repr(seed)) <= 40 else repr(seed)[:37] + "..."
        raise ConfigError(f"--seed must be an integer in [0, {MAX_SEED}], got {shown}")
    return seed


def default_checkpoint(method: str) -> Path:
    """The meta-trained checkpoint shipped inside the package for ``method``."""
    return registry.default_checkpoint(method)


def as_dataset(dataset: str | Path | ImageDataset | tuple, *, seed: int = 0,
               progress: bool = False) -> ImageDataset:
    """A dataset from a builtin name, a path, ``(x, y)`` arrays, or an ImageDataset."""
    if isinstance(dataset, ImageDataset):
        return dataset
    if isinstance(dataset, tuple):
        return from_arrays(*dataset, seed=seed)
    return load_dataset(dataset, seed=seed, progress=progress)


def load_method(
    method: str = "value-net",
    *,
    checkpoint: str | Path | None = None,
    recipe: str = "cpu-proxy",
    device: str = "cpu",
) -> SearchMethod:
    """Instantiate a search method (meta-learned ones from their checkpoint)."""
    return registry.create_method(method, checkpoint=checkpoint, recipe=recipe, device=device)


def _use_free_cores() -> int:
    """Torch uses the idle cores only (:func:`metanas.threads.use_free_cores`)."""
    from metanas.threads import use_free_cores

    return use_free_cores()


def search(
    dataset: str | Path | ImageDataset | tuple,
    *,
    method: str | SearchMethod = "value-net",
    top: int = 10,
    seed: int = 0,
    budget: Budget | None = None,
    checkpoint: str | Path | None = None,
    train: bool = False,
    train_budget: float | None = None,
    save_to: str | Path | None = None,
    recipe: str = "cpu-proxy",
    device: str = "cpu",
    progress: bool = False,
    options: dict[str, Any] | None = None,
) -> SearchResult:
    """Rank NB201 cells for ``dataset``; with ``train=True`` also train the top pick: with
    ``recipe``, or with ``train_budget`` seconds through :func:`fit` (``save_to``: the model
    file, as ``fit(out=)``). BASE's ``options={"inherit": True}``: that training starts from
    the adapted supernet's weights (``result.inherited``, see :func:`check_inherit`).

    ``search_seconds`` is the wall time from the loaded model to the ranking, task encoding
    included (dataset loading and checkpoint loading excluded). The trained pick, if any, is
    in ``result.details["trained"]``.
    """
    check_seed(seed)
    _use_free_cores()
    if top < 1:
        raise ConfigError(f"top must be >= 1, got {top}")
    if (train_budget is not None or save_to is not None) and not train:
        raise ConfigError("train_budget and save_to need train=True")
    if train_budget is not None:
        check_budget(train_budget, "--train-budget")
        check_model_path(save_to, "--save-model")
    clash = sorted(set(options or {}) & {"top", "seed", "budget", "progress"})
    if clash:
        raise ConfigError(f"{', '.join(clash)}: an argument of search itself, not a method "
                          "option")
    check_inherit(method if isinstance(method, str) else method.name, options)
    data = as_dataset(dataset, seed=seed, progress=progress)
    runner = method if isinstance(method, SearchMethod) else load_method(
        method, checkpoint=checkpoint, recipe=recipe, device=device
    )
    options = budget_options(runner, options, train_budget if train else None)
    result = runner.search(data, top=top, seed=seed, budget=budget, progress=progress,
                           **options)
    if train and train_budget is not None:
        result.details["trained"] = fit(data, result.architecture, budget=train_budget,
                                        seed=seed, out=save_to, device=device,
                                        progress=progress,
                                        init_model=result.inherited).to_dict()
    elif train:  # the ``train`` argument shadows the function of that name here
        trained = _train(data, result.architecture, recipe=recipe, seed=seed, device=device,
                         progress=progress, save_to=save_to, init_model=result.inherited)
        result.details["trained"] = trained.to_dict()
    return result


def check_inherit(method: str, options: dict[str, Any] | None, *,
                  train: bool | None = None) -> bool:
    """Whether ``options`` ask for ``inherit=true``; a one-line error where it cannot apply:
    a method other than ``base`` (only BASE adapts a supernet whose weights a network can
    inherit) or, with ``train=False`` (the CLI's ``--train`` not given), no final training.
    The checkpoint's space, ``mode=prior`` and ``subset_classes`` are checked by the method.

    How inheriting meets final training: the network is the one the adapted supernet
    computes for the pick, at the supernet's C and N (not the probe's or the recipe's), its
    input head for the task resolution as the stem (so training runs at that resolution),
    its classifier for the dataset's classes; a budgeted :func:`fit` plans only batch size
    and epochs, a recipe keeps everything but C, N and the resolution."""
    if (options or {}).get("inherit") is not True:
        return False  # absent, false, or a value the method's options will refuse
    if method != "base":
        why = ("it derives without adaptation" if method == "base-prior"
               else "it adapts no supernet")
        raise ConfigError(f"inherit=true applies to method base (training starts from its "
                          f"adapted supernet's weights), not {method}: {why}")
    if train is False:
        raise ConfigError("--set inherit=true needs --train (it sets where the final "
                          "training starts)")
    return True


def _inherit_resolution(init_model, resolution: int | None) -> int | None:
    """The side an inherited network trains at (its stem is the head for it); a different
    explicit ``resolution`` is a one-line error."""
    if init_model is None:
        return resolution
    side = int(getattr(init_model, "config", {}).get("resolution", 0)) or None
    if side is None:
        return resolution
    if resolution is not None and resolution != side:
        raise ConfigError(f"the initial network's stem is the head for {side} px; it cannot "
                          f"train at resolution {resolution}")
    return side


def train(
    dataset: str | Path | ImageDataset | tuple,
    arch: str,
    *,
    recipe: str = "cpu-proxy",
    seed: int = 0,
    resolution: int | None = None,
    max_train_per_class: int | None = None,
    device: str = "cpu",
    progress: bool = False,
    return_model: bool = False,
    save_to: str | Path | None = None,
    init_model=None,
):
    """Train one architecture on a dataset (validation carved from its train split); with
    ``save_to`` also write the trained network as a self-contained model file
    (:func:`load_model` reads it back). ``init_model`` (an ``NB201Network`` of ``arch``,
    e.g. ``search(...).inherited``): start from its weights; the recipe then takes its C, N
    and its resolution."""
    from metanas.tasks import make_task, proxy_resolution
    from metanas.training import get_recipe, train_architecture

    check_seed(seed)
    _use_free_cores()
    arch = parse(arch)
    data = as_dataset(dataset, seed=seed, progress=progress)
    rec = get_recipe(recipe)
    resolution = _inherit_resolution(init_model, resolution)
    if init_model is not None:
        size = {"C": init_model.config["C"], "N": init_model.config["N"], "resolution": None}
        rec = rec.with_overrides(**{k: v for k, v in size.items() if getattr(rec, k) != v})
    res = resolution if resolution is not None else (
        rec.resolution or proxy_resolution(max(data.image_size)))
    task = make_task(data, resolution=res, max_train_per_class=max_train_per_class, seed=seed)
    result, model = train_architecture(arch, task, rec, seed=seed, device=device,
                                       progress=progress, return_model=True,
                                       init_model=init_model)
    if save_to is not None:
        from metanas.training.saved import save_model

        save_model(save_to, model, task, recipe=rec.name,
                   input_resolution=rec.resolution or task.resolution,
                   metrics=result.to_dict())
    return (result, model) if return_model else result


def load_model(path: str | Path):
    """A model saved by ``train(..., save_to=)`` / ``--save-model``: an ``nn.Module`` in eval
    mode with ``predict(images, top=k)`` on raw images (see :mod:`metanas.training.saved`)."""
    from metanas.training.saved import load_model as _load

    return _load(path)


def predict(model: str | Path, images, *, top: int = 1) -> dict[str, Any]:
    """Top-``top`` predictions of a saved model for raw images: an array, image files, a
    folder of images (labels from sub-folder names when they are class names) or an .npz
    (``x`` or ``x_test``, with ``y`` / ``y_test`` for accuracy)."""
    from metanas.training.saved import load_model as _load

    net = _load(model)
    x, y, files = _read_images(images)
    out = net.predict(x if files is None else files, top=top)
    result: dict[str, Any] = {"model": str(model), "images": len(out["classes"]),
                              "arch": net.card.arch, "top": int(out["classes"].shape[1]),
                              "predictions": [
                                  {"file": None if files is None else str(files[i]),
                                   "classes": out["names"][i],
                                   "probabilities": [round(float(p), 6) for p in
                                                     out["probabilities"][i]]}
                                  for i in range(len(out["classes"]))]}
    if y is not None:
        names = list(net.card.class_names)
        if y.dtype.kind in "US":  # folder names
            lookup = {n: i for i, n in enumerate(names)}
            y = np.array([lookup.get(str(v), -1) for v in y])
        result["accuracy"] = float((out["classes"][:, 0] == y).mean())
    return result


def export_model(model: str | Path, *, onnx: str | Path | None = None,
                 torchscript: str | Path | None = None) -> dict[str, Any]:
    """Export a saved model to ONNX and/or TorchScript, each checked against PyTorch."""
    from metanas.training.saved import export
    from metanas.training.saved import load_model as _load

    if onnx is None and torchscript is None:
        raise ConfigError("export needs --onnx OUT.onnx and/or --torchscript OUT.pt")
    return export(_load(model), onnx_path=onnx, torchscript_path=torchscript)


def _read_images(images):
    """(array or None, labels or None, files or None) from what ``predict`` accepts."""
    from metanas.errors import DatasetError

    if isinstance(images, np.ndarray):
        return images, None, None
    path = Path(images)
    if not path.exists():
        raise DatasetError(f"--images {path} does not exist")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                key = "x" if "x" in z else "x_test" if "x_test" in z else None
                if key is None:
                    raise DatasetError(f"--images {path}: no x or x_test array")
                ykey = {"x": "y", "x_test": "y_test"}[key]
                return z[key], (z[ykey].astype(np.int64) if ykey in z else None), None
        except (OSError, ValueError) as exc:
            raise DatasetError(f"--images {path}: not a readable .npz ({exc})") from None
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
    if path.is_file():
        return None, None, [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DatasetError(f"--images {path}: no image files found")
    labels = np.array([p.parent.name for p in files]) if all(
        p.parent != path for p in files) else None
    return None, labels, files


def check_budget(budget: Any, option: str = "--budget") -> float:
    """A budget is a finite number of seconds > 0; anything else is a one-line error."""
    from metanas.training.fit import check_budget as check

    return check(budget, option)


def check_model_path(path: str | Path | None, option: str = "--out") -> None:
    """A model file's folder must exist and the path must not be a folder: checked before
    any training, so a typo does not cost the budget."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"cannot write {option} {path}: it is a directory")
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {option} {path}: folder {path.parent} does not exist")


def fit(
    dataset: str | Path | ImageDataset | tuple,
    arch: str,
    *,
    budget: float,
    seed: int = 0,
    out: str | Path | None = None,
    curves: str | Path | None = None,
    device: str = "cpu",
    flip: bool | None = None,
    resolution: int | None = None,
    max_train_per_class: int | None = None,
    val_fraction: float | None = None,
    recipe: str | dict[str, Any] | Any | None = None,
    progress: bool = False,
    init_model=None,
    **plan_options: Any,
) -> FitResult:
    """Train ``arch`` on all labelled images of ``dataset`` within ``budget`` wall seconds.

    A throughput probe chooses C, N, epochs and batch size (:mod:`metanas.training.budget`;
    ``recipe`` replays a recipe instead: a name, a Recipe, or an earlier ``result.recipe``,
    which with the same seed gives the same weights); a seeded
    ``val_fraction`` (default 0.1) of the train split validates every epoch and the best checkpoint is the
    model; cosine schedule; crop (+ flip for colour images; ``flip`` overrides). ``out``: the
    model file (its folder must exist); curves go to ``OUT.curves.json`` / ``.png`` beside it
    (or beside ``curves``). ``plan_options``: ``sizes``, ``min_epochs``, ``max_epochs``.
    The clock starts here: data loading counts against the budget.

    ``init_model`` (an ``NB201Network`` of ``arch``, e.g. BASE's ``search(...).inherited``):
    training starts from its weights, so its C and N are kept (the probe plans batch size
    and epochs only) and it trains at its resolution; its initial weights are validated
    first and stay the model if no epoch beats them.
    """
    from metanas.tasks import make_task
    from metanas.training import get_recipe, resolve_device
    from metanas.training.budget import recipe_summary
    from metanas.training.fit import (
        FIT_VAL_FRACTION,
        FitResult,
        augment_for,
        curve_summary,
        fit_architecture,
        fit_resolution,
        write_curves,
    )
    from metanas.training.saved import save_model

    start = time.perf_counter()
    budget = check_budget(budget)
    check_seed(seed)
    arch = parse(arch)
    check_model_path(out, "--out")
    resolve_device(device)
    unknown = set(plan_options) - {"sizes", "min_epochs", "max_epochs"}
    if unknown:
        raise ConfigError(f"fit has no option(s) {', '.join(sorted(unknown))}")
    _use_free_cores()
    resolution = _inherit_resolution(init_model, resolution)
    data = as_dataset(dataset, seed=seed, progress=progress)
    side = resolution or fit_resolution(data.image_size)
    task = make_task(data, resolution=side, max_train_per_class=max_train_per_class,
                     val_fraction=FIT_VAL_FRACTION if val_fraction is None else val_fraction,
                     seed=seed)
    if isinstance(recipe, dict):
        from metanas.training import Recipe

        recipe = Recipe(**{k: v for k, v in recipe.items() if k != "hash"})
    if recipe is not None:
        recipe = get_recipe(recipe)
        augment = recipe.augment
    else:
        augment = augment_for(task.channels, flip)
    result, model, plan = fit_architecture(arch, task, budget, start=start, seed=seed,
                                           device=device, flip=flip, recipe=recipe,
                                           progress=progress, init_model=init_model,
                                           **plan_options)
    rec = recipe if recipe is not None else plan.recipe
    metrics = {k: v for k, v in result.to_dict().items() if k != "curve"}
    summary = curve_summary(result)
    training = {"recipe": recipe_summary(rec), "augment": augment, "budget": budget,
                "plan": plan.to_dict() if plan else None, "curve": summary,
                "task": task.describe()}
    if init_model is not None:
        training["init"] = {"inherited": True, "val_acc": result.init_val_acc}
    files: dict[str, str] = {}
    if out is not None:
        save_model(out, model, task, recipe=rec.name,
                   input_resolution=rec.resolution or task.resolution, metrics=metrics,
                   training=training)
        files["model"] = str(out)
    stem = Path(out if out is not None else curves) if (out or curves) else None
    if stem is not None:
        files.update(write_curves(stem.with_suffix(""), result,
                                  {"arch": arch.to_string(), "dataset": data.name,
                                   "title": f"{data.name}: {rec.name}", **training}))
    return FitResult(arch=arch.to_string(), dataset=data.name, budget=budget,
                     seconds=time.perf_counter() - start, metrics=metrics,
                     recipe=recipe_summary(rec), plan=training["plan"], curve=result.curve,
                     summary=summary, files=files,
                     task=training["task"], model=model)


_train = train


def meta_train(method: str, kb_path: str | Path | None, out: str | Path, *,
               progress: bool = False, **options) -> dict[str, Any]:
    """Meta-train ``method`` on a knowledge base (a path or a shipped name; ``None`` for
    methods that learn from images only) and write its checkpoint to ``out``."""
    _use_free_cores()
    from metanas.kb import open_kb

    spec = registry.get_method(method)
    if not spec.meta_learned:
        learned = [name for name, s in registry.METHODS.items() if s.meta_learned]
        raise ConfigError(f"{method!r} is not meta-learned; meta-train supports: "
                          f"{', '.join(learned)}")
    if kb_path is None and spec.learns_from == "kb":
        raise ConfigError(f"--kb is required: {method} learns from knowledge-base evaluations")
    if kb_path is not None and spec.learns_from != "kb":
        raise ConfigError(f"{method} learns from task images, not from a knowledge base: "
                          f"drop --kb (its tasks come from --set source=PATH)")
    start = time.perf_counter()
    with open_kb(kb_path) if kb_path is not None else contextlib.nullcontext() as kb:
        model = spec.load_class().meta_train(kb, progress=progress, **options)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return {"method": method, "checkpoint": str(out), "seconds": time.perf_counter() - start,
            **model.info}


def bench(
    datasets: list[str],
    methods: list[str],
    *,
    budget: float | None = None,
    seeds: int = 1,
    out: str | Path = "metanas-bench",
    recipe: str = "cpu-proxy",
    lookups: list[str] | tuple[str, ...] = (),
    max_train_per_class: int | None = 500,
    checkpoints: dict[str, str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    device: str = "cpu",
    progress: bool = False,
):
    """Every method picks a cell for every dataset within ``budget`` search seconds; every
    pick is trained with ``recipe`` on ``seeds`` seeds; results (JSON, CSV, Markdown, PNG)
    go to ``out``. Resumable: finished cells are skipped. See :mod:`metanas.bench`."""
    _use_free_cores()
    from metanas.bench import BenchConfig, run_bench

    config = BenchConfig(
        datasets=list(datasets), methods=list(methods), budget=budget, seeds=seeds, out=out,
        recipe=recipe, lookups=list(lookups), max_train_per_class=max_train_per_class,
        checkpoints=dict(checkpoints or {}), options=dict(options or {}), device=device,
    )
    return run_bench(config, progress=progress)


def check_writable_kb(kb_path: str | Path) -> None:
    """A knowledge base to write must be a file: a shipped name (`metanas kb list`) is
    refused, unless a file of that name exists."""
    from metanas.kb import kb_names

    if not Path(kb_path).exists() and str(kb_path) in kb_names():
        raise ConfigError(f"--kb {kb_path}: shipped knowledge bases are read-only; give a "
                          "file path")


def import_source(
    name: str,
    kb_path: str | Path,
    *,
    csv: str | Path | None = None,
    standin: str | Path | None = None,
    describe: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Import a published source (:data:`metanas.kb.sources.SOURCES`) into a knowledge base.

    ``csv`` defaults to ``knowledge/<file>`` of the shared datasets folder; task meta-features
    are computed on ``standin`` (default: the shared Tiny-ImageNet zip) unless ``describe`` is
    False. Resumable: rows already stored and tasks already described are skipped.
    """
    from metanas.features.standin import standin_describer
    from metanas.kb import KnowledgeBase
    from metanas.kb.sources import get_source, read_source, store_source
    from metanas.kb.store import writer_lock
    from metanas.paths import shared_datasets_dir
    from metanas.progress import Bars

    check_writable_kb(kb_path)
    src = get_source(name)
    shared = shared_datasets_dir()
    if csv is None:
        if shared is None:
            raise ConfigError(f"{name}: pass the table's CSV file ({src.file}); no shared "
                              "datasets folder found")
        csv = shared / "knowledge" / src.file
    table = read_source(name, csv)  # a bad file is refused before the KB or stand-in opens
    describer = None
    if describe:
        if standin is None:
            if shared is None:
                raise ConfigError(f"{name}: pass a stand-in dataset for the task features "
                                  "(Tiny-ImageNet); no shared datasets folder found")
            standin = shared / "tiny-imagenet-200-64px.zip"
        describer = standin_describer(as_dataset(standin, progress=progress), seed=seed)
    with writer_lock(kb_path), KnowledgeBase(kb_path) as kb, Bars(progress) as bars:
        bar: list = []

        def tick(n: int, total: int) -> None:
            if not bar:
                bar.append(bars.add(f"stand-in features of {name} tasks", total))
            bars.set(bar[0], n)

        return store_source(kb, table, describe=describer, progress=tick)


def parse_arch(arch: str):
    """Validate an NB201 architecture string (clear error listing the format and the ops)."""
    return parse(arch)


def space_info(space: str = "nb201") -> dict[str, Any]:
    """Sizes, ops, edge order and unique-cell counts of a search space."""
    from metanas.spaces.info import space_info as info

    return info(space)


def validate_value_net(kb_path: str | Path, *, folds: int = 5, **options) -> dict[str, Any]:
    """Leave-tasks-out rank correlation of the value network on a knowledge base."""
    from metanas.kb import open_kb
    from metanas.methods.value_net import cross_validate

    with open_kb(kb_path) as kb:
        return cross_validate(kb, folds=folds, **options)


def zero_cost(
    dataset: str | Path | ImageDataset | tuple,
    archs: list[str] | None = None,
    sample: int | None = None,
    proxies: str | list[str] | None = None,
    C: int = 16,
    N: int = 5,
    resolution: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Zero-cost proxy scores (higher predicts better) of NB201 cells on ``dataset``.

    The cells are ``archs`` (NATS-Bench strings) or ``sample`` seeded distinct connected cells;
    each is scored at initialisation (``torch.manual_seed(seed)``) as an NB201 network of size
    ``C``, ``N`` at ``resolution`` px (default: the dataset's, down to a multiple of 4) on one
    seeded batch of ``batch_size`` training images; ``proxies`` defaults to all of
    :data:`metanas.features.zero_cost.PROXIES`. Returns the task, the settings and per cell
    ``{"arch", "scores", "seconds", "seconds_total", "nonfinite"}`` (a score that could not be
    computed is ``-inf`` and its proxy is listed in ``nonfinite``).
    """
    check_seed(seed)
    from metanas.features import zero_cost as zc
    from metanas.progress import Bars
    from metanas.spaces.nb201 import NB201Arch
    from metanas.spaces.nb201.network import check_side, nb201_side
    from metanas.tasks import make_task

    names = zc.check_proxies(proxies)
    config = zc.ZeroCostConfig(C=C, N=N, batch_size=batch_size, seed=seed)
    if (archs is None) == (sample is None):
        raise ConfigError("zero_cost needs either archs or sample (not both)")
    if archs is not None:
        cells = [parse(a) for a in archs]
        if not cells:
            raise ConfigError("zero_cost got an empty list of archs")
    else:
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            raise ConfigError(f"sample must be a positive integer, got {sample!r}")
        cells = NB201Arch.sample_distinct(sample, seed)
    data = as_dataset(dataset, seed=seed, progress=progress)
    res = nb201_side(data.image_size[0]) if resolution is None else resolution
    check_side(res, "--resolution")
    # only one batch is scored: a few images per class suffice (and normalise it)
    per_class = max(8, -(-2 * batch_size // data.num_classes))
    task = make_task(data, resolution=res, max_train_per_class=per_class, max_test_per_class=1,
                     seed=seed)
    start = time.perf_counter()
    with Bars(progress) as bars:
        bar = bars.add("zero-cost proxies", len(cells))

        def tick(done: int, total: int, last: dict[str, Any]) -> None:
            bars.set(bar, done)

        results = zc.score_cells(task, cells, proxies=names, config=config, progress=tick)
    return {
        "dataset": data.name,
        "task": task.describe(),
        "config": {**config.to_dict(), "resolution": res},
        "proxies": list(names),
        "higher_is_better": True,
        "cells": results,
        "seconds": time.perf_counter() - start,
    }


# ----- what there is: methods, datasets, knowledge bases -----------------------------------------
def methods() -> list[dict[str, Any]]:
    """Every search method: name, summary, budget in words, whether meta-learned."""
    return [{"name": spec.name, "summary": spec.summary, "budget": spec.budget,
             "meta_learned": spec.meta_learned, "learns_from": spec.learns_from,
             "checkpoint": spec.checkpoint} for spec in METHODS.values()]


def method_options(method: str) -> dict[str, Any]:
    """One method's contract: its search options (name, type, default, help) and the budget
    kinds it takes (``seconds``, ``evaluations``; none for a method that does not train)."""
    spec = registry.get_method(method)
    cls = spec.load_class()
    return {"name": spec.name, "summary": spec.summary, "budget": spec.budget,
            "budget_kinds": [k for k in ("seconds", "evaluations") if k in cls.budget_kinds],
            "options": cls.Options.describe()}


def datasets() -> list[dict[str, Any]]:
    """Builtin datasets, readable file formats and datasets found nearby."""
    from metanas.data import available_datasets

    return available_datasets()


def budget_options(method: str | SearchMethod, options: dict[str, Any] | None,
                   train_budget: float | None) -> dict[str, Any]:
    """``options`` plus ``train_budget`` for a method that ranks for the seconds its pick
    will be trained (value-net), unless the options set it already."""
    options = dict(options or {})
    if train_budget is None:
        return options
    if isinstance(method, str):
        method = registry.get_method(method).load_class()
    if "train_budget" in method.option_names():
        options.setdefault("train_budget", train_budget)
    return options


def check_search(method: str, *, checkpoint: str | Path | None = None,
                 recipe: str = "cpu-proxy", device: str = "cpu") -> None:
    """Fail now, before a dataset is loaded, on an unknown method, recipe or device, or a
    checkpoint given to a method that is not meta-learned."""
    from metanas.training import get_recipe, resolve_device

    get_recipe(recipe)
    resolve_device(device)
    spec = registry.get_method(method)
    if checkpoint is not None and not spec.meta_learned:
        raise ConfigError(f"--checkpoint applies to meta-learned methods, not {method!r}")


def kb_list() -> dict[str, Any]:
    """The shipped knowledge bases (the catalog: default name and one entry per base)."""
    from metanas.kb.catalog import catalog

    return catalog()


def kb_stats(kb_path: str | Path) -> dict[str, Any]:
    """Counts, sources and per-task accuracy spread of a knowledge base (path or name)."""
    from metanas.kb import kb_stats as stats
    from metanas.kb import open_kb

    with open_kb(kb_path) as kb:
        return stats(kb)


def kb_export(kb_path: str | Path, csv: str | Path) -> int:
    """Write every evaluation (with its task and architecture) as CSV; the row count."""
    from metanas.kb import open_kb

    with open_kb(kb_path) as kb:
        return kb.export_csv(csv)


def kb_import_table(csv: str | Path, kb_path: str | Path, *, dataset: str,
                    arch_column: str | None = None,
                    metric_columns: dict[str, str] | None = None) -> dict[str, Any]:
    """Import a published table of NB201 results (CSV) as evaluations of ``dataset``."""
    from metanas.kb import import_table, writable_kb

    with writable_kb(kb_path) as kb:
        return import_table(kb, csv, dataset=dataset, arch_column=arch_column,
                            metric_columns=metric_columns)


def kb_merge(kb_path: str | Path, sources: list[str | Path]) -> dict[str, Any]:
    """Copy the knowledge bases ``sources`` (files or shipped names) into the file ``kb_path``
    (created if missing); resumable: what it holds already is kept. Per source, in order: the
    new tasks and evaluations; then the merged base's counts."""
    from contextlib import ExitStack

    from metanas.kb import open_kb, writable_kb

    if not sources:
        raise ConfigError("kb merge: name at least one knowledge base to merge in")
    check_writable_kb(kb_path)
    with ExitStack() as stack:
        # every source opens (and is checked) before the target is written
        readers = [stack.enter_context(open_kb(src)) for src in sources]
        kb = stack.enter_context(writable_kb(kb_path))
        added = [{"source": str(src), **kb.merge_from(r)}
                 for src, r in zip(sources, readers, strict=True)]
        return {"merged": added, "counts": kb.counts(), "sources": kb.source_counts()}


DEFAULT_ANCHORS = 8
"""Cells shared by every task of a build (at most its cells per task)."""


def kb_build(
    kb_path: str | Path,
    source: str,
    *,
    tasks: int = 10,
    archs: int = 20,
    anchors: int | None = None,
    n_way: tuple[int, ...] = (10,),
    resolutions: tuple[int, ...] = (16, 32),
    train_per_class: tuple[int | None, ...] = (None,),
    recipe: str = "cpu-proxy",
    seeds: tuple[int, ...] = (0,),
    seed: int = 0,
    workers: int = 1,
    executor: str = "process",
    ray_address: str | None = None,
    device: str = "cpu",
    limit: int | None = None,
    elite: int = 0,
    elite_from: str | Path | None = None,
    elite_top: int = 20,
    batch_archs: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Sample tasks x architectures from ``source``, train them, store the evaluations with
    their task meta-features in ``kb_path`` (created or resumed; see :mod:`metanas.kb_build`).
    ``elite`` cells per task are drawn near the ``elite_top`` best cells of ``elite_from``."""
    from metanas.features.metafeatures import compute_meta_features
    from metanas.kb import open_kb, writable_kb
    from metanas.kb.views import accuracy_table, top_architectures
    from metanas.kb_build import BuildPlan, build_kb

    check_seed(seed)
    elite_cells: tuple[str, ...] = ()
    if elite_from is not None:
        if elite_top < 1:
            raise ConfigError("--elite-top must be >= 1")
        with open_kb(elite_from) as prior:
            elite_cells = tuple(a for a, _, _ in top_architectures(accuracy_table(prior),
                                                                   elite_top))
        if not elite_cells:
            raise ConfigError(f"--elite-from {elite_from}: no evaluated architectures")
    check_writable_kb(kb_path)
    plan = BuildPlan(
        source=source, tasks=tasks, archs_per_task=archs,
        anchors=max(0, min(DEFAULT_ANCHORS, archs)) if anchors is None else anchors,
        n_way=tuple(n_way), resolutions=tuple(resolutions),
        train_per_class=tuple(train_per_class), recipe=recipe, seeds=tuple(seeds), seed=seed,
        elite=elite_cells, elite_per_task=elite,
    )
    with writable_kb(kb_path) as kb:
        report = build_kb(kb, plan, workers=workers, executor=executor, device=device,
                          limit=limit, progress=progress, describe=compute_meta_features,
                          ray_address=ray_address, batch=batch_archs)
    return report.to_dict()


__all__ = [
    "METHODS", "Budget", "FitResult", "SearchResult", "TrainResult", "as_dataset", "bench",
    "check_budget", "check_inherit", "check_model_path", "check_output", "check_search", "write_json",
    "datasets", "default_checkpoint", "fit", "import_source", "kb_build", "kb_export",
    "kb_import_table", "kb_list", "kb_merge", "kb_stats", "method_options", "methods", "load_model",
    "predict", "export_model",
    "load_method", "meta_train", "parse_arch", "search", "space_info", "train",
    "validate_value_net", "zero_cost",
]


def __getattr__(name: str):
    """``TrainResult`` and ``FitResult`` on first use (they live with the torch code in
    :mod:`metanas.training`)."""
    if name == "TrainResult":
        from metanas.training import TrainResult

        return TrainResult
    if name == "FitResult":
        from metanas.training.fit import FitResult

        return FitResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
