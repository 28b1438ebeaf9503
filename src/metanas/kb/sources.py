"""Published high-fidelity NB201 results as first-class knowledge-base sources.

The knowledge base's own runs are CPU proxies (a few epochs of a tiny network) whose rankings
are mostly noise. Others have trained NB201 cells for real on GPUs; :data:`SOURCES` lists the
tables this package knows, each with its provenance (where it comes from, licence, checksum),
the fidelity it was trained at and what it lacks. :func:`import_source` stores one in a
knowledge base: every task keeps its provenance in its ``spec``, every evaluation its fidelity
in its recipe config, so meta-learners can tell a 200-epoch number from a 12-epoch proxy.

Neither table comes with images. Task meta-features of such a task are therefore computed on a
*stand-in* (a caller-supplied ``describe`` function, e.g. Tiny-ImageNet at the source's
resolution, see :mod:`metanas.features.standin`); the stand-in each source uses is part of its
entry so it is written down, not implied.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metanas.errors import ArchitectureError, KnowledgeBaseError
from metanas.kb.catalog import sha256_file as _sha256
from metanas.kb.store import KnowledgeBase

__all__ = ["SOURCES", "Fidelity", "PublishedSource", "get_source", "import_source",
           "read_source", "source_summary", "source_task_key", "store_source"]


@dataclass(frozen=True)
class Fidelity:
    """How an evaluation was trained: what tells a full training from a proxy.

    ``epochs`` / ``C`` / ``N`` are the training recipe; ``resolution`` the input side in px;
    ``images_per_class`` the labelled training images per class. ``None`` = not published.
    """

    epochs: int | None
    C: int | None
    N: int | None
    resolution: int | None
    images_per_class: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PublishedSource:
    """One published table: where it comes from, how it was trained, what it lacks."""

    name: str
    file: str
    sha256: str
    rows: int
    kind: str  # "single-task" (one dataset, one row per cell) or "multi-task"
    dataset: str
    citation: str
    licence: str
    fidelity: Fidelity
    num_classes: int
    sizes: dict[str, int]
    standin: str
    missing: tuple[str, ...] = field(default_factory=tuple)
    accuracy_column: str = "test_acc"
    accuracy_metric: str = "test_acc"
    standin_dataset: str = "tiny-imagenet-200-64px"
    """The dataset (a shared-datasets name) whose images stand in for the source's."""

    def provenance(self) -> dict[str, Any]:
        out = asdict(self)
        out["missing"] = list(self.missing)
        return out


SOURCES: dict[str, PublishedSource] = {
    s.name: s
    for s in (
        PublishedSource(
            name="nb201-imagenet16-120",
            file="nb201-imagenet16-120.csv",
            sha256="117eaf3252857041629ddff4a0b02786882846eb7c58766e4f332bdff6fb2b3e",
            rows=15625,
            kind="single-task",
            dataset="imagenet16-120",
            citation="NATS-Bench topology search space (Dong et al., TPAMI 2021), via the "
                     "nats_bench.csv export of v-tao/nats-bench-landscape",
            licence="MIT",
            fidelity=Fidelity(epochs=200, C=16, N=5, resolution=16,
                              images_per_class=151700 / 120),
            num_classes=120,
            sizes={"train": 151700, "val": 3000, "test": 3000},
            standin="Tiny-ImageNet at 16 px, 120 seeded classes (ImageNet classes too; "
                    "overlap with ImageNet16-120's 120 not checked); size features set to "
                    "ImageNet16-120's own",
            missing=("images", "validation accuracy", "seeds (one number per cell)",
                     "training curves"),
        ),
        PublishedSource(
            name="metad2a-imagenet32",
            file="metad2a-imagenet32-predictor-db.csv",
            sha256="153d42abc87110d6244e4ef2106963990a720a009074870c05a65a26350e6704",
            rows=4630,
            kind="multi-task",
            dataset="imagenet32-20way",
            citation="MetaD2A's predictor meta-training database (Lee et al., ICLR 2021), "
                     "meta_train_tasks_predictor.pt as redistributed in CownowAn/DiffusionNAG",
            licence="MIT",
            # The source does not state the recipe; MetaD2A trained NB201 networks, so the
            # NB201 skeleton is recorded and epochs are marked as not published.
            fidelity=Fidelity(epochs=None, C=16, N=5, resolution=32, images_per_class=1300),
            num_classes=20,
            sizes={"train": 26000},
            standin="a 20-way Tiny-ImageNet subset at 32 px per task (classes seeded by the "
                    "task id; MetaD2A's class-id map is not published)",
            missing=("images", "class-id to ImageNet class map", "training recipe (epochs)",
                     "images per class (ImageNet-32's ~1,300 assumed)"),
            accuracy_column="acc",
        ),
    )
}

def get_source(name: str) -> PublishedSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise KnowledgeBaseError(f"unknown published source {name!r}; known: "
                                 f"{', '.join(SOURCES)}") from None


def source_task_key(source: str, task: str) -> str:
    """The task key of task ``task`` of a published source: sha256 of its identity."""
    return hashlib.sha256(json.dumps(["published-source", source, task]).encode()).hexdigest()


def _read_rows(path: Path, src: PublishedSource) -> list[dict[str, str]]:
    """All rows, checked against the source's expected columns and row count."""
    need = {"arch", src.accuracy_column} | ({"task", "task_classes"}
                                            if src.kind == "multi-task" else set())
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = set(reader.fieldnames or [])
            if not need <= header:
                raise KnowledgeBaseError(
                    f"{path}: not the {src.name} table: missing column(s) "
                    f"{', '.join(sorted(need - header))}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise KnowledgeBaseError(f"{path}: not a UTF-8 CSV file ({exc})") from None
    except OSError as exc:
        raise KnowledgeBaseError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(rows) != src.rows:
        raise KnowledgeBaseError(f"{path}: {len(rows)} rows, the {src.name} table has "
                                 f"{src.rows}")
    return rows


def _accuracy(path: Path, line: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise KnowledgeBaseError(f"{path}, line {line}: accuracy {text[:40]!r} is not a "
                                 "number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 100.0:
        raise KnowledgeBaseError(f"{path}, line {line}: accuracy {value!r} is not a "
                                 "percentage in [0, 100]")
    return value / 100.0


def read_source(name: str, csv_path: str | os.PathLike, verify_checksum: bool = True):
    """Source ``name``'s CSV checked whole (checksum, columns, row count, every architecture
    and accuracy) without touching a knowledge base, so a bad file is refused before one is
    created. Returns ``(source, path, checksum, rows, parsed)`` for :func:`import_source`."""
    from metanas.spaces.nb201.genotype import NB201Arch

    src = get_source(name)
    path = Path(csv_path).expanduser()
    if not path.is_file():
        raise KnowledgeBaseError(f"{name}: table {path} does not exist")
    checksum = _sha256(path)
    if verify_checksum and checksum != src.sha256:
        raise KnowledgeBaseError(f"{path}: checksum {checksum[:12]}... is not the {name} "
                                 f"table's ({src.sha256[:12]}...): a different or edited file")
    rows = _read_rows(path, src)
    parsed: list[tuple[str, str, str, float, dict[str, str]]] = []
    for line, row in enumerate(rows, start=2):
        try:
            arch = NB201Arch.from_string(row["arch"])
        except ArchitectureError as exc:
            raise KnowledgeBaseError(f"{path}, line {line}: {exc}") from None
        task = row.get("task", src.dataset) if src.kind == "multi-task" else src.dataset
        parsed.append((task, arch.to_string(), arch.canonical_hash(),
                       _accuracy(path, line, row[src.accuracy_column]), row))
    return src, path, checksum, rows, parsed


def import_source(
    kb: KnowledgeBase,
    name: str,
    csv_path: str | os.PathLike,
    *,
    describe: Callable[[PublishedSource, dict[str, Any]], dict[str, float]] | None = None,
    verify_checksum: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Import published source ``name`` from its CSV file into ``kb``; idempotent.

    The file is checked (checksum, columns, row count, every architecture and accuracy)
    before anything is written. ``describe(source, task)`` returns the meta-features of one
    imported task (``task`` has ``name``, ``classes``, ``resolution``, ``num_classes``,
    ``task_id``); without it tasks are stored without meta-features. Returns a summary.
    """
    return store_source(kb, read_source(name, csv_path, verify_checksum), describe=describe,
                        progress=progress)


def store_source(
    kb: KnowledgeBase,
    table: tuple,
    *,
    describe: Callable[[PublishedSource, dict[str, Any]], dict[str, float]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write a source ``table`` checked by :func:`read_source` into ``kb`` (see
    :func:`import_source`); idempotent."""
    src, path, checksum, rows, parsed = table
    fidelity = src.fidelity.to_dict()
    recipe = f"published:{src.name}"
    recipe_config = {"recipe": recipe, "fidelity": fidelity, "source": src.name,
                     "file_sha256": checksum}
    recipe_hash = hashlib.sha256(json.dumps(recipe_config, sort_keys=True).encode()).hexdigest()
    provenance = src.provenance()
    tasks: dict[str, dict[str, Any]] = {}
    for task, *_rest, row in parsed:
        if task not in tasks:
            classes = ([int(c) for c in row["task_classes"].split()]
                       if src.kind == "multi-task" else None)
            tasks[task] = {"name": task if src.kind == "single-task" else f"{src.dataset}-{task}",
                           "classes": classes, "resolution": src.fidelity.resolution,
                           "num_classes": src.num_classes,
                           "split": row.get("split")}
    # a (task, cell) trained twice in the source is kept twice, as seeds 0, 1, ...
    repeats: dict[tuple[str, str], int] = {}
    seeds = []
    for task, arch, *_rest in parsed:
        seeds.append(repeats.get((task, arch), 0))
        repeats[(task, arch)] = seeds[-1] + 1
    new = 0
    with kb.transaction():
        for task, info in tasks.items():
            info["task_id"] = kb.add_task(
                source_task_key(src.name, task), name=info["name"], source=src.name,
                classes=info["classes"], resolution=info["resolution"], channels=3,
                num_classes=info["num_classes"], sizes=src.sizes,
                spec={"kind": "published", "source": src.name, "task": task,
                      "split": info["split"], "provenance": provenance})
        new = kb.add_evaluations(
            {"task_id": tasks[task]["task_id"], "arch": arch, "canonical": canonical,
             "space": "nb201", "recipe": recipe, "recipe_hash": recipe_hash,
             "recipe_config": recipe_config, "seed": seed,
             "metrics": {src.accuracy_metric: acc},
             "extra": {"record": row.get("record")} if "record" in row else None}
            for (task, arch, canonical, acc, row), seed in zip(parsed, seeds, strict=True))
    described = 0
    if describe is not None:
        missing = [i for i in tasks.values() if not kb.task(i["task_id"]).get("meta_features")]
        for n, info in enumerate(missing, start=1):
            kb.set_meta_features(info["task_id"], describe(src, info))
            described += 1
            if progress is not None:
                progress(n, len(missing))
    return {"source": src.name, "file": str(path), "sha256": checksum, "rows": len(rows),
            "tasks": len(tasks), "imported": new, "skipped_duplicates": len(rows) - new,
            "described": described, "fidelity": fidelity}


def source_summary(kb: KnowledgeBase) -> list[dict[str, Any]]:
    """Per source: tasks, evaluations and (for published ones) provenance."""
    per: dict[str, dict[str, Any]] = {}
    for t in kb.tasks():
        entry = per.setdefault(t["source"], {"source": t["source"], "tasks": 0,
                                             "evaluations": 0, "published": False})
        entry["tasks"] += 1
        spec = t.get("spec") or {}
        if isinstance(spec, dict) and spec.get("kind") == "published":
            entry["published"] = True
    for source, counts in kb.source_counts().items():
        per.setdefault(source, {"source": source, "tasks": 0, "evaluations": 0,
                                "published": False})["evaluations"] = counts["evaluations"]
    for entry in per.values():
        src = SOURCES.get(entry["source"])
        if src is not None:
            entry.update(licence=src.licence, citation=src.citation,
                         fidelity=src.fidelity.to_dict(), standin=src.standin)
    return sorted(per.values(), key=lambda e: e["source"])
