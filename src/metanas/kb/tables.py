"""Import a published table of NB201 results (architecture string + accuracies) into a KB.

Published benchmark tables (NAS-Bench-201 / NATS-Bench exports, paper supplements) come as CSV
files with one row per architecture: an architecture-string column and one or more metric
columns. :func:`import_table` stores such a table as one task (the dataset named by the caller)
with one evaluation per row, so it can serve as meta-training data next to the KB's own runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from metanas.errors import ArchitectureError, KnowledgeBaseError
from metanas.kb.store import METRICS, KnowledgeBase

__all__ = ["ARCH_COLUMN_NAMES", "METRIC_ALIASES", "find_arch_column", "import_table", "parse_number",
           "published_task_key", "read_csv"]

#: Normalised column names tried first when looking for the architecture column.
ARCH_COLUMN_NAMES: tuple[str, ...] = (
    "arch",
    "arch_str",
    "architecture",
    "arch_string",
    "architecture_string",
    "arch_name",
    "genotype",
)

#: For each KB metric, normalised column names that hold it, best first.
METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "test_acc": (
        "test_acc",
        "test_accuracy",
        "test_acc_top1",
        "test_top1",
        "test_top1_acc",
        "testacc",
        "top1_acc",
        "top1",
        "accuracy",
        "acc",
    ),
    "val_acc": (
        "val_acc",
        "valid_acc",
        "validation_acc",
        "val_accuracy",
        "valid_accuracy",
        "validation_accuracy",
        "val_top1",
        "valid_top1",
        "validacc",
        "valacc",
    ),
    "train_loss": ("train_loss", "training_loss"),
    "val_loss": ("val_loss", "valid_loss", "validation_loss"),
    "params": ("params", "num_params", "n_params", "param_count", "parameters"),
    "macs": ("macs", "num_macs", "n_macs"),
}

_MISSING = {"", "na", "n/a", "nan", "none", "null", "-"}
_ACCURACIES = ("val_acc", "test_acc")


def published_task_key(dataset: str) -> str:
    """The task key of a published table's dataset: sha256 of ``("published", dataset)``."""
    return hashlib.sha256(json.dumps(["published", dataset]).encode()).hexdigest()


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def parse_number(text: str) -> float | None:
    """A float, ``None`` for a missing-value marker; raises ValueError otherwise."""
    text = text.strip()
    if text.lower() in _MISSING:
        return None
    value = float(text)
    if math.isnan(value):
        return None
    return value


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line number, row)`` pairs; rows keyed by column name."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise KnowledgeBaseError(f"table {path} is empty (no header row)")
            header = [h.strip() for h in header]
            rows = []
            for cells in reader:
                if not cells or all(not c.strip() for c in cells):
                    continue
                rows.append((reader.line_num, dict(zip(header, cells, strict=False))))
    except UnicodeDecodeError as exc:
        raise KnowledgeBaseError(f"table {path} is not a UTF-8 text CSV file ({exc})") from exc
    except csv.Error as exc:
        raise KnowledgeBaseError(f"table {path} is not a valid CSV file: {exc}") from exc
    except OSError as exc:
        raise KnowledgeBaseError(f"cannot read table {path}: {exc.strerror or exc}") from exc
    return header, rows


def _parses(value: str) -> bool:
    from metanas.spaces.nb201.genotype import NB201Arch

    try:
        NB201Arch.from_string(value)
    except ArchitectureError:
        return False
    return True


def find_arch_column(path: Path, header: list[str], rows: list[tuple[int, dict[str, str]]]) -> str:
    named = []
    for alias in ARCH_COLUMN_NAMES:
        named += [c for c in header if _normalise(c) == alias and c not in named]
    candidates = named + [c for c in header if c not in named]
    for column in candidates:
        first = next(
            ((r.get(column) or "").strip() for _, r in rows if (r.get(column) or "").strip()), None
        )
        if first is not None and _parses(first):
            return column
    if named:  # a column called "arch" whose values do not parse: report the bad row
        return named[0]
    raise KnowledgeBaseError(
        f"no architecture column found in {path}: no column holds NB201 strings such as "
        "'|nor_conv_3x3~0|+|...|'; columns: "
        f"{', '.join(header)} (pass arch_column=... to name it)"
    )


def _find_metric_columns(header: list[str], arch_column: str) -> dict[str, str]:
    by_norm: dict[str, str] = {}
    for column in header:
        if column != arch_column:
            by_norm.setdefault(_normalise(column), column)
    found: dict[str, str] = {}
    used: set[str] = set()
    for metric, aliases in METRIC_ALIASES.items():
        for alias in aliases:
            column = by_norm.get(alias)
            if column is not None and column not in used:
                found[metric] = column
                used.add(column)
                break
    return found


def _recipe_hash(recipe: str, file_name: str, arch_column: str, mapping: dict[str, str]) -> str:
    payload = {
        "recipe": recipe,
        "file": file_name,
        "arch_column": arch_column,
        "columns": dict(sorted(mapping.items())),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def import_table(
    kb: KnowledgeBase,
    csv_path: str | os.PathLike,
    *,
    dataset: str,
    arch_column: str | None = None,
    metric_columns: dict[str, str] | None = None,
    recipe: str = "published",
    seed: int = 0,
) -> dict[str, Any]:
    """Import a CSV table of NB201 results as one task (``dataset``) into ``kb``.

    ``arch_column`` names the column of NB201 architecture strings; by default it is the first
    column (columns named ``arch``, ``arch_str``, ``architecture``, ... first) whose values
    parse as NB201 strings. ``metric_columns`` maps KB metric names (``val_acc``,
    ``test_acc``, ``train_loss``, ``val_loss``, ``params``, ``macs``) to CSV columns, e.g.
    ``{"test_acc": "test-accuracy"}``; by default they are found by name (``test_acc``,
    ``test-accuracy``, ``valid_acc``, ``val_acc``, ``accuracy``, ...). An accuracy column with
    any value above 1 is taken to be in percent and divided by 100. Empty cells and ``nan`` /
    ``NA`` are stored as missing.

    The task has key :func:`published_task_key` ``(dataset)`` and source = name = ``dataset``;
    each row becomes an architecture plus an evaluation with ``recipe``, ``seed`` and a recipe
    hash of (recipe, file name, column mapping), so importing the same file again adds
    nothing. The whole table is checked before anything is written, and written in one
    transaction. Returns a summary: ``rows``, ``imported``, ``skipped_duplicates``,
    ``arch_column``, ``metric_columns``, ``percent_columns``, ``task_key``, ``task_id``,
    ``recipe_hash`` and ``file``.

    Raises :class:`~metanas.errors.KnowledgeBaseError` (naming the file, row and column) for a
    missing file, no architecture or metric column, an invalid architecture or a non-numeric
    or out-of-range metric value.
    """
    from metanas.spaces.nb201.genotype import NB201Arch

    path = Path(csv_path).expanduser()
    if not isinstance(dataset, str) or not dataset.strip():
        raise KnowledgeBaseError(f"importing {path}: dataset must be a non-empty name")
    if not path.exists():
        raise KnowledgeBaseError(f"table {path} does not exist")
    if not path.is_file():
        raise KnowledgeBaseError(f"table {path} is not a file")
    header, rows = read_csv(path)
    columns = ", ".join(header)
    if not rows:
        raise KnowledgeBaseError(f"table {path} has a header but no data rows")

    if arch_column is None:
        arch_column = find_arch_column(path, header, rows)
    elif arch_column not in header:
        raise KnowledgeBaseError(
            f"table {path} has no column {arch_column!r} (arch_column); columns: {columns}"
        )

    explicit = metric_columns is not None
    if metric_columns is None:
        mapping = _find_metric_columns(header, arch_column)
    else:
        mapping = dict(metric_columns)
        for metric, column in mapping.items():
            if metric not in METRICS:
                raise KnowledgeBaseError(
                    f"importing {path}: unknown metric {metric!r} in metric_columns; "
                    f"known: {', '.join(METRICS)} (the mapping is metric -> CSV column)"
                )
            if column not in header:
                raise KnowledgeBaseError(
                    f"table {path} has no column {column!r} (for metric {metric}); "
                    f"columns: {columns}"
                )
            if column == arch_column:
                raise KnowledgeBaseError(
                    f"importing {path}: column {column!r} cannot be both the architecture and "
                    f"the {metric} column"
                )
    if not any(m in mapping for m in _ACCURACIES):
        raise KnowledgeBaseError(
            f"no metric column found in {path}: need an accuracy column such as "
            f"{', '.join(METRIC_ALIASES['test_acc'][:2] + METRIC_ALIASES['val_acc'][:2])}; "
            f"columns: {columns} (pass metric_columns={{'test_acc': 'COLUMN'}} to name it)"
        )

    # Parse everything before writing anything.
    parsed_archs: list[tuple[str, str]] = []
    values: dict[str, list[float | None]] = {m: [] for m in mapping}
    for n, (line, row) in enumerate(rows, start=1):
        where = f"{path}, row {n} (line {line})"
        text = (row.get(arch_column) or "").strip()
        if not text:
            raise KnowledgeBaseError(f"{where}: empty architecture in column {arch_column!r}")
        try:
            arch = NB201Arch.from_string(text)
        except ArchitectureError as exc:
            raise KnowledgeBaseError(
                f"{where}: invalid architecture string in column {arch_column!r}: {exc}"
            ) from exc
        parsed_archs.append((arch.to_string(), arch.canonical_hash()))
        for metric, column in mapping.items():
            cell = row.get(column) or ""
            try:
                value = parse_number(cell)
            except ValueError:
                raise KnowledgeBaseError(
                    f"{where}: non-numeric value {cell!r} in metric column {column!r}"
                ) from None
            values[metric].append(value)

    percent: list[str] = []
    dropped: dict[str, str] = {}
    for metric in list(mapping):
        column = mapping[metric]
        col_values = values[metric]
        present = [(i, v) for i, v in enumerate(col_values) if v is not None]
        if metric in _ACCURACIES:
            if any(v > 1.0 for _, v in present):
                percent.append(column)
                col_values[:] = [None if v is None else v / 100.0 for v in col_values]
            for i, v in enumerate(col_values):
                if v is not None and not 0.0 <= v <= 1.0:
                    shown = v * 100 if column in percent else v
                    raise KnowledgeBaseError(
                        f"{path}, row {i + 1} (line {rows[i][0]}): accuracy {shown:g} in column "
                        f"{column!r} is out of range (expected a fraction in [0, 1] or a "
                        "percentage in [0, 100])"
                    )
        elif METRICS[metric] == "int":
            bad = next(
                ((i, v) for i, v in present if not math.isfinite(v) or v != int(v) or v < 0),
                None,
            )
            if bad is not None:
                if not explicit:  # e.g. params in millions: not a count, leave it out
                    dropped[column] = f"{metric} must be a non-negative integer count"
                    del mapping[metric]
                    del values[metric]
                    continue
                i, v = bad
                raise KnowledgeBaseError(
                    f"{path}, row {i + 1} (line {rows[i][0]}): {metric} must be a non-negative "
                    f"integer count, got {v:g} in column {column!r}"
                )

    file_name = path.name
    rhash = _recipe_hash(recipe, file_name, arch_column, mapping)
    recipe_config = {
        "recipe": recipe,
        "file": file_name,
        "arch_column": arch_column,
        "columns": dict(sorted(mapping.items())),
        "percent_columns": percent,
    }
    task_key = published_task_key(dataset)
    with kb.transaction():
        task_id = kb.add_task(
            task_key,
            name=dataset,
            source=dataset,
            spec={"kind": "published", "dataset": dataset},
        )
        imported = kb.add_evaluations(
            {
                "task_id": task_id,
                "arch": arch_str,
                "canonical": canonical,
                "space": "nb201",
                "recipe": recipe,
                "recipe_hash": rhash,
                "recipe_config": recipe_config,
                "seed": seed,
                "metrics": {m: values[m][i] for m in mapping},
                "extra": {"csv_row": i + 1},
            }
            for i, (arch_str, canonical) in enumerate(parsed_archs)
        )
    return {
        "file": str(path),
        "dataset": dataset,
        "task_key": task_key,
        "task_id": task_id,
        "rows": len(rows),
        "imported": imported,
        "skipped_duplicates": len(rows) - imported,
        "arch_column": arch_column,
        "metric_columns": dict(mapping),
        "percent_columns": percent,
        "ignored_columns": dropped,
        "recipe": recipe,
        "recipe_hash": rhash,
    }
