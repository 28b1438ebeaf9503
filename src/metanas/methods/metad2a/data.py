"""From images to the per-class feature pools MetaD2A encodes, for new datasets and KB tasks.

A dataset is seen through a *pool* of up to ``pool_per_class`` training images per class,
embedded once by the (frozen) feature extractor; every dataset encoding then draws
``images_per_class`` features per class from the pool (a fresh draw per resample / per training
step), so resampling costs no extractor passes.

A published knowledge-base task (a table without images, :mod:`metanas.kb.sources`) is seen
through its stand-in: the source's stand-in dataset at the source's resolution, restricted to
the classes :func:`metanas.features.standin.standin_classes` draws for that task (the same ones
its value-network meta-features were computed on). The per-class pools of a stand-in dataset
are embedded once per resolution and shared by all its published tasks.

Images enter the extractor the way the proxy network would see them: resized to the task
resolution first (a knowledge-base task's own resolution; for a new dataset the knowledge-base
resolution closest to its image side), then to the extractor's input size. A 16 px task thus
looks blurred to the encoder, as it does to the network trained on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from metanas.data import ImageDataset, load_dataset
from metanas.data.locate import find_source
from metanas.errors import ConfigError, DatasetError, KnowledgeBaseError
from metanas.features.standin import standin_classes
from metanas.kb.sources import get_source
from metanas.methods.metad2a.extractor import FeatureExtractor, resize, to_float_images
from metanas.paths import atomic_write, cache_dir
from metanas.tasks import TaskSpec, make_task

_CACHE_VERSION = 1


def dataset_pool_images(dataset: ImageDataset, *, resolution: int, per_class: int,
                        seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Up to ``per_class`` random train images of every class, float [0, 1] at ``resolution``."""
    rng = np.random.default_rng(seed)
    idx = []
    for c in range(dataset.num_classes):
        members = np.flatnonzero(dataset.y_train == c)
        if len(members):
            idx.append(rng.permutation(members)[:per_class])
    if not idx:
        raise DatasetError(f"{dataset.name} has no training images")
    idx = np.sort(np.concatenate(idx))
    images = resize(to_float_images(dataset.x_train[idx]), resolution)
    return images, np.asarray(dataset.y_train[idx])


def class_pools(extractor: FeatureExtractor, images: torch.Tensor,
                labels: np.ndarray) -> list[torch.Tensor]:
    """Features grouped by class: one (n_c, D) tensor per class present, by class id."""
    feats = extractor(images)
    return [feats[torch.as_tensor(labels == c)] for c in np.unique(labels)]


def sample_sets(pools: list[torch.Tensor], n: int, count: int,
                gen: torch.Generator) -> list[list[torch.Tensor]]:
    """``count`` image sets: ``n`` features per class drawn without replacement from the pool
    (all of them when a class has fewer)."""
    out = []
    for _ in range(count):
        one = []
        for p in pools:
            if len(p) <= n:
                one.append(p)
            else:
                one.append(p[torch.randperm(len(p), generator=gen)[:n]])
        out.append(one)
    return out


# ----- knowledge-base tasks ------------------------------------------------------------------
def is_published(task_row: Mapping) -> bool:
    spec = task_row.get("spec")
    return isinstance(spec, Mapping) and spec.get("kind") == "published"


def image_source(task_row: Mapping) -> str:
    """The dataset a task's images come from: its own source, or a published task's stand-in."""
    if is_published(task_row):
        return get_source(task_row["source"]).standin_dataset
    return task_row["source"]


def resolve_sources(tasks: list[dict], source: str | Path | Mapping[str, str] | None,
                    ) -> dict[str, Path | str]:
    """Where each image dataset of the tasks is (:func:`image_source`): ``source`` (a path, or
    {name: path}), else ``<shared datasets>/<name>.zip|.npz|/``; a clear error when one cannot
    be found."""
    names = sorted({image_source(t) for t in tasks})
    if isinstance(source, Mapping):
        missing = [n for n in names if n not in source]
        if missing:
            raise ConfigError(f"source mapping has no path for {missing}")
        return {n: source[n] for n in names}
    if source is not None:
        if len(names) > 1:
            raise ConfigError(f"the knowledge base has tasks from {len(names)} sources "
                              f"({', '.join(names)}); pass source as {{name: path}}")
        return {names[0]: source} if names else {}
    return {n: find_source(n, what="MetaD2A meta-training on the images of the knowledge "
                                  "base's tasks") for n in names}


def task_pool_images(dataset: ImageDataset, task_row: Mapping, *, per_class: int,
                     seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """A knowledge-base task's training images as the proxy saw them (its resolution, before
    normalization), up to ``per_class`` per class."""
    spec = TaskSpec.from_dict(task_row["spec"])
    task = make_task(dataset, spec)
    mean = torch.tensor(task.mean).view(1, -1, 1, 1)
    std = torch.tensor(task.std).view(1, -1, 1, 1)
    rng = np.random.default_rng(seed)
    y = task.y_train.numpy()
    idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class]
                                  for c in range(task.num_classes)]))
    images = (task.x_train[idx] * std + mean).clamp_(0.0, 1.0)
    return images, y[idx]


def extractor_fingerprint(extractor: FeatureExtractor) -> str | None:
    """Content hash of a built-in extractor's weights (None for a custom one: not cached)."""
    module = extractor.module
    if module is None:
        return None
    h = hashlib.sha256(json.dumps(extractor.name).encode())
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def kb_task_pools(tasks: list[dict], extractor: FeatureExtractor, *,
                  source: str | Path | Mapping[str, str] | None, per_class: int, seed: int,
                  cache: bool = True, progress: bool = False) -> dict[str, list[torch.Tensor]]:
    """Feature pools of knowledge-base tasks, computed once (and cached on disk for the
    built-in extractor, keyed by task, extractor weights, pool size and seed)."""
    from metanas.progress import Bars

    fp = extractor_fingerprint(extractor) if cache else None
    folder = cache_dir() / "metad2a"
    out: dict[str, list[torch.Tensor]] = {}
    todo = []
    published = [t for t in tasks if is_published(t)]
    if published:
        out.update(_standin_pools(published, extractor, source=source, per_class=per_class,
                                  seed=seed, fp=fp, folder=folder, progress=progress))
    for t in tasks:
        if is_published(t):
            continue
        key = None
        if fp is not None:
            blob = json.dumps([_CACHE_VERSION, t["key"], fp, per_class, seed])
            key = folder / (hashlib.sha256(blob.encode()).hexdigest()[:32] + ".safetensors")
            pools = _read_cached(key)
            if pools is not None:
                out[t["key"]] = pools
                continue
        todo.append((t, key))
    if not todo:
        return out
    paths = resolve_sources([t for t, _ in todo], source)
    datasets: dict[str, ImageDataset] = {}
    with Bars(progress) as bars:
        bar = bars.add("metad2a: task features", len(todo))
        for t, key in todo:
            name = t["source"]
            if name not in datasets:
                datasets[name] = load_dataset(paths[name], progress=progress)
                fp_row = t.get("fingerprint")
                if fp_row and datasets[name].fingerprint != fp_row:
                    raise KnowledgeBaseError(
                        f"{paths[name]} is not the dataset the knowledge base's tasks were "
                        f"drawn from (fingerprint {datasets[name].fingerprint[:12]} != "
                        f"{fp_row[:12]} of source {name!r})")
            images, labels = task_pool_images(datasets[name], t, per_class=per_class,
                                              seed=seed)
            pools = class_pools(extractor, images, labels)
            out[t["key"]] = pools
            if key is not None:
                _write_cached(key, pools)
            bars.advance(bar)
    return out


def _standin_pools(tasks: list[dict], extractor: FeatureExtractor, *, source, per_class: int,
                   seed: int, fp: str | None, folder: Path, progress: bool,
                   ) -> dict[str, list[torch.Tensor]]:
    """Pools of published tasks: each stand-in dataset's per-class pools at each resolution
    are embedded once (cached like task pools), then every task takes its stand-in classes."""
    paths = resolve_sources(tasks, source)
    banks: dict[tuple[str, int], dict[int, torch.Tensor]] = {}
    datasets: dict[str, ImageDataset] = {}
    out = {}
    for t in tasks:
        name, res = image_source(t), int(t["resolution"])
        if (name, res) not in banks:
            if name not in datasets:
                datasets[name] = load_dataset(paths[name], progress=progress)
            ds = datasets[name]
            key = None
            if fp is not None:
                blob = json.dumps([_CACHE_VERSION, "standin", ds.fingerprint, res, fp,
                                   per_class, seed])
                key = folder / (hashlib.sha256(blob.encode()).hexdigest()[:32]
                                + ".safetensors")
            pools = _read_cached(key) if key is not None else None
            if pools is None or len(pools) != ds.num_classes:
                images, labels = dataset_pool_images(ds, resolution=res, per_class=per_class,
                                                     seed=seed)
                if len(np.unique(labels)) != ds.num_classes:
                    raise DatasetError(f"stand-in {paths[name]}: some classes have no "
                                       "training images")
                pools = class_pools(extractor, images, labels)
                if key is not None:
                    _write_cached(key, pools)
            banks[(name, res)] = dict(enumerate(pools))
        classes, _ = standin_classes(len(banks[(name, res)]), t["source"], t["name"],
                                     int(t["num_classes"]))
        out[t["key"]] = [banks[(name, res)][c] for c in classes]
    return out


def _read_cached(path: Path) -> list[torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
        return [tensors[f"c{i}"] for i in range(len(tensors))]
    except (SafetensorError, OSError, KeyError, ValueError):
        return None  # a damaged cache entry is recomputed


def _write_cached(path: Path, pools: list[torch.Tensor]) -> None:
    try:
        tensors = {f"c{i}": p.contiguous() for i, p in enumerate(pools)}
        atomic_write(path, lambda tmp: save_file(tensors, tmp))
    except (OSError, SafetensorError):
        pass  # caching is an optimisation only
