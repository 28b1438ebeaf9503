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
from typing import Any

import numpy as np

from metanas.data import ImageDataset, from_arrays, load_dataset
from metanas.errors import ConfigError
from metanas.methods import registry
from metanas.methods.interface import Budget, SearchMethod, SearchResult, proxy_resolution
from metanas.methods.registry import METHODS
from metanas.spaces.nb201 import parse
from metanas.tasks import make_task
from metanas.threads import use_free_cores
from metanas.training import TrainResult, get_recipe, train_architecture

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


def search(
    dataset: str | Path | ImageDataset | tuple,
    *,
    method: str | SearchMethod = "value-net",
    top: int = 10,
    seed: int = 0,
    budget: Budget | None = None,
    checkpoint: str | Path | None = None,
    train: bool = False,
    recipe: str = "cpu-proxy",
    device: str = "cpu",
    progress: bool = False,
    options: dict[str, Any] | None = None,
) -> SearchResult:
    """Rank NB201 cells for ``dataset``; with ``train=True`` also train the top pick.

    ``search_seconds`` is the wall time from the loaded model to the ranking, task encoding
    included (dataset loading and checkpoint loading excluded). The trained pick, if any, is
    in ``result.details["trained"]``.
    """
    check_seed(seed)
    use_free_cores()
    if top < 1:
        raise ConfigError(f"top must be >= 1, got {top}")
    data = as_dataset(dataset, seed=seed, progress=progress)
    runner = method if isinstance(method, SearchMethod) else load_method(
        method, checkpoint=checkpoint, recipe=recipe, device=device
    )
    result = runner.search(data, top=top, seed=seed, budget=budget, progress=progress,
                           **(options or {}))
    if train:  # the ``train`` argument shadows the function of that name here
        trained = _train(data, result.architecture, recipe=recipe, seed=seed, device=device,
                         progress=progress)
        result.details["trained"] = trained.to_dict()
    return result


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
):
    """Train one architecture on a dataset (validation carved from its train split); with
    ``save_to`` also write the trained network as a self-contained model file
    (:func:`load_model` reads it back)."""
    check_seed(seed)
    use_free_cores()
    arch = parse(arch)
    data = as_dataset(dataset, seed=seed, progress=progress)
    rec = get_recipe(recipe)
    res = resolution if resolution is not None else (
        rec.resolution or proxy_resolution(max(data.image_size)))
    task = make_task(data, resolution=res, max_train_per_class=max_train_per_class, seed=seed)
    result, model = train_architecture(arch, task, rec, seed=seed, device=device,
                                       progress=progress, return_model=True)
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


_train = train


def meta_train(method: str, kb_path: str | Path | None, out: str | Path, *,
               progress: bool = False, **options) -> dict[str, Any]:
    """Meta-train ``method`` on a knowledge base (a path or a shipped name; ``None`` for
    methods that learn from images only) and write its checkpoint to ``out``."""
    use_free_cores()
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
    use_free_cores()
    from metanas.bench import BenchConfig, run_bench

    config = BenchConfig(
        datasets=list(datasets), methods=list(methods), budget=budget, seeds=seeds, out=out,
        recipe=recipe, lookups=list(lookups), max_train_per_class=max_train_per_class,
        checkpoints=dict(checkpoints or {}), options=dict(options or {}), device=device,
    )
    return run_bench(config, progress=progress)


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
    from metanas.kb.sources import get_source
    from metanas.kb.sources import import_source as _import
    from metanas.paths import shared_datasets_dir
    from metanas.progress import Bars

    src = get_source(name)
    shared = shared_datasets_dir()
    if csv is None:
        if shared is None:
            raise ConfigError(f"{name}: pass the table's CSV file ({src.file}); no shared "
                              "datasets folder found")
        csv = shared / "knowledge" / src.file
    describer = None
    if describe:
        if standin is None:
            if shared is None:
                raise ConfigError(f"{name}: pass a stand-in dataset for the task features "
                                  "(Tiny-ImageNet); no shared datasets folder found")
            standin = shared / "tiny-imagenet-200-64px.zip"
        describer = standin_describer(as_dataset(standin, progress=progress), seed=seed)
    with KnowledgeBase(kb_path) as kb, Bars(progress) as bars:
        bar: list = []

        def tick(n: int, total: int) -> None:
            if not bar:
                bar.append(bars.add(f"stand-in features of {name} tasks", total))
            bars.set(bar[0], n)

        return _import(kb, name, csv, describe=describer, progress=tick)


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
    ``C``, ``N`` at ``resolution`` px (default: the dataset's) on one seeded batch of
    ``batch_size`` training images; ``proxies`` defaults to all of
    :data:`metanas.features.zero_cost.PROXIES`. Returns the task, the settings and per cell
    ``{"arch", "scores", "seconds", "seconds_total", "nonfinite"}`` (a score that could not be
    computed is ``-inf`` and its proxy is listed in ``nonfinite``).
    """
    check_seed(seed)
    from metanas.features import zero_cost as zc
    from metanas.progress import Bars
    from metanas.spaces.nb201 import NB201Arch

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
    res = data.image_size[0] if resolution is None else resolution
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


__all__ = [
    "METHODS", "Budget", "SearchResult", "TrainResult", "as_dataset", "bench",
    "default_checkpoint", "import_source", "load_model", "predict", "export_model",
    "load_method", "meta_train", "parse_arch", "search", "space_info", "train",
    "validate_value_net", "zero_cost",
]
