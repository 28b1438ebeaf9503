"""What a bench run will do, checked before any work: datasets x methods x seeds cells.

Every user mistake (unknown method, missing dataset or checkpoint, malformed ``--lookup``, an
output folder that cannot be written) raises a :class:`~metanas.errors.MetanasError` here, so
the command fails in a second instead of after an hour of training.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metanas.bench.lookup import Lookup, parse_lookup
from metanas.data import ImageDataset, load_dataset
from metanas.errors import ConfigError
from metanas.methods.interface import Budget
from metanas.methods.registry import MethodSpec, default_checkpoint, get_method
from metanas.training import get_recipe, resolve_device

__all__ = ["BenchConfig", "BenchPlan", "Cell", "accepts_budget"]

DEFAULT_MAX_TRAIN_PER_CLASS = 500


def accepts_budget(spec: MethodSpec) -> bool:
    """Whether the method takes a search budget in seconds (its declared ``budget_kinds``)."""
    return "seconds" in spec.load_class().budget_kinds


@dataclass
class BenchConfig:
    """The arguments of ``metanas bench`` (see docs/bench.md)."""

    datasets: list[str]
    methods: list[str]
    budget: float | None = None
    """Search budget in seconds, given to the methods that accept one (:func:`accepts_budget`)."""
    seeds: int = 1
    out: str | Path = "metanas-bench"
    recipe: str = "cpu-proxy"
    lookups: list[str] = field(default_factory=list)
    max_train_per_class: int | None = DEFAULT_MAX_TRAIN_PER_CLASS
    checkpoints: dict[str, str] = field(default_factory=dict)
    """Meta-trained checkpoint per method name (default: the shipped one)."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra search options per method name."""
    device: str = "cpu"
    top: int = 20
    """Candidates asked of each search; the trained ones among them form the rank pool."""


@dataclass(frozen=True)
class Cell:
    """One (dataset, method, seed) of the table; ``key`` names its stored result."""

    dataset: str
    method: str
    seed: int
    key: str

    @property
    def file_name(self) -> str:
        safe = re.sub(r"[^0-9A-Za-z._-]+", "_", Path(self.dataset).name)[:48]
        return f"{safe}__{self.method}__seed{self.seed}__{self.key[:12]}.json"


@dataclass
class BenchPlan:
    """A validated bench run: loaded datasets, method specs, lookups and the cells."""

    config: BenchConfig
    out: Path
    datasets: dict[str, ImageDataset]
    specs: dict[str, MethodSpec]
    lookups: list[Lookup]
    cells: list[Cell]

    def budget_for(self, method: str) -> Budget | None:
        if self.config.budget is None or not accepts_budget(self.specs[method]):
            return None
        return Budget(seconds=float(self.config.budget))

    @classmethod
    def build(cls, config: BenchConfig, *, progress: bool = False) -> BenchPlan:
        datasets = _unique(config.datasets, "--datasets")
        methods = _unique(config.methods, "--methods")
        specs = {m: get_method(m) for m in methods}
        if config.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {config.seeds}")
        if config.budget is not None and not config.budget > 0:
            raise ConfigError(f"--budget must be > 0 seconds, got {config.budget}")
        mtpc = config.max_train_per_class
        if mtpc is not None and mtpc < 2:
            raise ConfigError(f"--max-train-per-class must be >= 2 (or 0 for all), got {mtpc}")
        if config.top < 1:
            raise ConfigError(f"top must be >= 1, got {config.top}")
        recipe = get_recipe(config.recipe)
        resolve_device(config.device)
        for name, path in config.checkpoints.items():
            spec = specs.get(name)
            if spec is None:
                raise ConfigError(f"--checkpoint {name}={path}: {name!r} is not in --methods")
            if not spec.meta_learned:
                raise ConfigError(f"--checkpoint {name}: {name!r} is not meta-learned")
            if not Path(path).is_file():
                raise ConfigError(f"--checkpoint {name}={path}: no such file")
        for name in config.options:
            if name not in specs:
                raise ConfigError(f"options for {name!r}, which is not in --methods")
        out = _writable_dir(Path(config.out).expanduser())
        loaded = {d: load_dataset(d, progress=progress) for d in datasets}
        seen: dict[str, str] = {}
        for spec, data in loaded.items():  # cells are keyed by content, not by spelling
            if data.fingerprint in seen:
                raise ConfigError(f"--datasets lists the same dataset twice: "
                                  f"{seen[data.fingerprint]} and {spec} have identical content")
            seen[data.fingerprint] = spec
        lookups = [parse_lookup(text) for text in config.lookups]
        for lk in lookups:
            if not any(lk.dataset in (spec, data.name) for spec, data in loaded.items()):
                names = ", ".join(f"{s} ({d.name})" for s, d in loaded.items())
                raise ConfigError(f"--lookup {lk.path}: dataset {lk.dataset!r} is not one of "
                                  f"--datasets: {names}")
        plan = cls(config, out, loaded, specs, lookups, [])
        plan.cells = [
            Cell(d, m, s, plan.cell_key(d, m, s, recipe.hash))
            for d in datasets for m in methods for s in range(config.seeds)
        ]
        return plan

    def cell_key(self, dataset: str, method: str, seed: int, recipe_hash: str) -> str:
        """Everything that changes a cell's numbers; a rerun with other arguments recomputes
        exactly the cells they affect (a new --budget leaves budget-free methods alone; the
        same dataset reached by another path is the same dataset)."""
        checkpoint = self.config.checkpoints.get(method)
        if checkpoint is None and self.specs[method].meta_learned:
            checkpoint = default_checkpoint(method)  # a re-trained shipped one counts too
        budget = self.budget_for(method)
        blob = json.dumps({  # the content fingerprint, not the path
            "fingerprint": self.datasets[dataset].fingerprint,
            "method": method,
            "seed": seed,
            "budget": None if budget is None else budget.describe(),
            "recipe": recipe_hash,
            "max_train_per_class": self.config.max_train_per_class,
            "checkpoint": _file_hash(checkpoint) if checkpoint and Path(checkpoint).is_file()
            else None,
            "options": self.config.options.get(method, {}),
            "top": self.config.top,
        }, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _unique(items: list[str], flag: str) -> list[str]:
    out = [i.strip() for i in items if i.strip()]
    if not out:
        raise ConfigError(f"{flag} is empty")
    dup = sorted({i for i in out if out.count(i) > 1})
    if dup:
        raise ConfigError(f"{flag} lists {', '.join(dup)} more than once")
    return out


def _writable_dir(path: Path) -> Path:
    """``path`` if it is, or can be created as, a writable folder (nothing is created yet)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"cannot write --out {path}: it is a file")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write --out {path}: {existing} is not a writable folder")
    return path


def _file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
