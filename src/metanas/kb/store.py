"""The knowledge base: (task, architecture, metrics) evaluations in one SQLite file.

The knowledge base (KB) is the meta-training data of every method. Worker processes train
architectures on tasks and hand their results to *one* writer (the main process), which stores
them here; any number of readers may read at the same time (the file is in WAL journal mode, so
readers never block the writer and see only committed transactions).

Every write runs in a transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), so an interrupted build
never leaves a half-written row behind.

Tables: ``meta`` (format, schema version, creation time, metanas version), ``tasks`` (one row
per task, identified by a caller-computed key), ``architectures`` (space + architecture string,
with a canonical id shared by functionally identical cells), ``recipes`` (training recipe by
hash: name + full config, stored once) and ``evaluations`` (task x architecture x recipe x seed
-> metrics). Accuracies are fractions in [0, 1]. The schema version is kept in ``PRAGMA user_version``
(and, readable by humans, in the ``meta`` table); a file written by a newer metanas is refused
with a clear message instead of being misread. A metanas KB is recognised by its SQLite
``application_id``.

A :class:`KnowledgeBase` object holds one SQLite connection: use it from one thread, and do not
share it across processes (open a new one in each process instead).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import json
import math
import operator
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from metanas.errors import KnowledgeBaseError, first_line, shorten
from metanas.paths import atomic_write

__all__ = [
    "APPLICATION_ID",
    "EVALUATION_COLUMNS",
    "METRICS",
    "SCHEMA_VERSION",
    "KnowledgeBase",
    "open_for_writing",
    "writer_lock",
]

#: Version of the on-disk schema this code writes and reads.
SCHEMA_VERSION = 1
#: SQLite ``PRAGMA application_id`` marking a metanas knowledge base ("MNKB").
APPLICATION_ID = 0x4D4E4B42

#: Metric names accepted by :meth:`KnowledgeBase.add_evaluation`, with their kind.
METRICS: dict[str, str] = {
    "val_acc": "fraction",
    "test_acc": "fraction",
    "train_loss": "float",
    "val_loss": "float",
    "params": "int",
    "macs": "int",
}

#: Columns of the joined evaluation rows (:meth:`KnowledgeBase.evaluations`, CSV export).
EVALUATION_COLUMNS: tuple[str, ...] = (
    "id",
    "task_key",
    "task_name",
    "source",
    "space",
    "arch",
    "canonical",
    "recipe",
    "recipe_hash",
    "seed",
    "val_acc",
    "test_acc",
    "train_loss",
    "val_loss",
    "params",
    "macs",
    "seconds",
    "device",
    "version",
    "created_at",
    "extra",
)

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,
    name          TEXT,
    source        TEXT NOT NULL,
    fingerprint   TEXT,
    classes       TEXT,
    resolution    INTEGER,
    channels      INTEGER,
    num_classes   INTEGER,
    n_train       INTEGER,
    n_val         INTEGER,
    n_test        INTEGER,
    seed          INTEGER,
    spec          TEXT,
    meta_features TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX tasks_source ON tasks(source);
CREATE TABLE architectures (
    id        INTEGER PRIMARY KEY,
    space     TEXT NOT NULL,
    arch      TEXT NOT NULL,
    canonical TEXT,
    UNIQUE (space, arch)
);
CREATE INDEX architectures_canonical ON architectures(space, canonical);
CREATE TABLE recipes (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    config     TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE evaluations (
    id            INTEGER PRIMARY KEY,
    task_id       INTEGER NOT NULL REFERENCES tasks(id),
    arch_id       INTEGER NOT NULL REFERENCES architectures(id),
    recipe_id     INTEGER NOT NULL REFERENCES recipes(id),
    seed          INTEGER NOT NULL,
    val_acc       REAL CHECK (val_acc IS NULL OR (val_acc >= 0 AND val_acc <= 1)),
    test_acc      REAL CHECK (test_acc IS NULL OR (test_acc >= 0 AND test_acc <= 1)),
    train_loss    REAL,
    val_loss      REAL,
    params        INTEGER,
    macs          INTEGER,
    seconds       REAL,
    device        TEXT,
    version       TEXT,
    created_at    TEXT NOT NULL,
    extra         TEXT,
    UNIQUE (task_id, arch_id, recipe_id, seed)
);
CREATE INDEX evaluations_arch ON evaluations(arch_id);
CREATE INDEX evaluations_recipe ON evaluations(recipe_id);
"""

_REQUIRED_TABLES = ("meta", "tasks", "architectures", "recipes", "evaluations")

_NUMBER = "typeof({c}) NOT IN ('integer', 'real')"
_INTEGER = "typeof({c}) != 'integer'"
_JSON = "NOT json_valid({c})"
#: (table, column, SQL condition of a bad value, what is expected): the row checks run when a
#: knowledge base is opened, so a value written by another program fails there, in one line.
_ROW_CHECKS: tuple[tuple[str, str, str, str], ...] = (
    *(("evaluations", c, _NUMBER.format(c=c) + f" OR {c} < 0 OR {c} > 1", "a fraction in [0, 1]")
      for c in ("val_acc", "test_acc")),
    *(("evaluations", c, _NUMBER.format(c=c) + f" OR abs({c}) > 1e308", "a finite number")
      for c in ("train_loss", "val_loss", "seconds")),
    *(("evaluations", c, _INTEGER.format(c=c), "an integer")
      for c in ("seed", "params", "macs", "task_id", "arch_id", "recipe_id")),
    *(("tasks", c, _INTEGER.format(c=c), "an integer")
      for c in ("resolution", "channels", "num_classes", "n_train", "n_val", "n_test", "seed")),
    *(("tasks", c, _JSON.format(c=c), "JSON") for c in ("classes", "spec")),
    ("tasks", "meta_features", "NOT json_valid(meta_features) OR json_type(meta_features) != "
     "'object' OR EXISTS (SELECT 1 FROM json_each(meta_features) WHERE type NOT IN "
     "('integer', 'real', 'null'))", "a JSON object of numbers"),
    ("tasks", "key", "typeof(key) != 'text'", "text"),
    ("architectures", "arch", "typeof(arch) != 'text'", "text"),
    ("evaluations", "extra", _JSON.format(c="extra"), "JSON"),
    ("recipes", "config", _JSON.format(c="config"), "JSON"),
)

#: Suffixes of the files SQLite keeps beside a database while it is open.
_SIDECARS = ("-wal", "-shm", "-journal")
#: Suffix of the lock file a writer holds beside the database (see :func:`writer_lock`).
LOCK_SUFFIX = ".lock"

_TASK_FIELDS = (
    "name",
    "fingerprint",
    "classes",
    "resolution",
    "channels",
    "num_classes",
    "n_train",
    "n_val",
    "n_test",
    "seed",
    "spec",
    "meta_features",
)

_SIZE_ALIASES = {
    "train": "n_train",
    "n_train": "n_train",
    "val": "n_val",
    "valid": "n_val",
    "n_val": "n_val",
    "test": "n_test",
    "n_test": "n_test",
}

_EVAL_SELECT = """
SELECT e.id AS id, t.key AS task_key, t.name AS task_name, t.source AS source,
       a.space AS space, a.arch AS arch, a.canonical AS canonical,
       r.name AS recipe, r.hash AS recipe_hash, e.seed AS seed,
       e.val_acc AS val_acc, e.test_acc AS test_acc, e.train_loss AS train_loss,
       e.val_loss AS val_loss, e.params AS params, e.macs AS macs, e.seconds AS seconds,
       e.device AS device, e.version AS version, e.created_at AS created_at, e.extra AS extra
FROM evaluations e
JOIN tasks t ON t.id = e.task_id
JOIN architectures a ON a.id = e.arch_id
JOIN recipes r ON r.id = e.recipe_id
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    from metanas.version import __version__

    return __version__


def _json_safe(value: Any) -> Any:
    """Turn ``value`` into plain JSON types; non-finite floats become ``None``."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _json_safe(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON: {value!r}")


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(_json_safe(value), sort_keys=True, allow_nan=False)


def _acc_summary(n: int, lo: Any, mean: Any, hi: Any, sq_dev: Any) -> dict[str, Any]:
    """n / min / mean / max / population std of one accuracy column (``None`` when n = 0)."""
    if not n:
        return {"n": 0, "min": None, "mean": None, "max": None, "std": None}
    return {"n": int(n), "min": float(lo), "mean": float(mean), "max": float(hi),
            "std": math.sqrt(max(float(sq_dev or 0.0), 0.0) / n)}


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    return json.loads(text)


def _no_bool(name: str, value: Any, kind: str) -> bool:
    """``False``, or ValueError for a bool (an int subclass that is never meant as one)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return False


def _opt_int(name: str, value: Any) -> int | None:
    if value is None or _no_bool(name, value, "an integer"):
        return None
    try:
        return operator.index(value)  # int, numpy integers
    except TypeError:
        pass
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not math.isfinite(as_float) or as_float != int(as_float):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(as_float)


def _opt_float(name: str, value: Any) -> float | None:
    """A float, or ``None`` for missing / NaN (SQLite stores NaN as NULL anyway)."""
    if value is None or _no_bool(name, value, "a number"):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    return None if math.isnan(out) else out


def _check_metric(name: str, value: Any) -> float | int | None:
    kind = METRICS[name]
    if kind == "int":
        out = _opt_int(name, value)
        if out is not None and out < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return out
    out_f = _opt_float(name, value)
    if kind == "fraction" and out_f is not None and not 0.0 <= out_f <= 1.0:
        raise ValueError(
            f"{name} must be a fraction in [0, 1], got {value!r} (percentages must be divided by 100)"
        )
    return out_f


def _required_int(name: str, value: Any) -> int:
    out = _opt_int(name, value)
    if out is None:
        raise ValueError(f"{name} is required")
    return out


def _required_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _transactional(method):
    """``method`` run inside one transaction (a savepoint when nested); the bare method stays
    reachable as ``__wrapped__`` for callers that hold a transaction already."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self.transaction():
            return method(self, *args, **kwargs)

    return run


class KnowledgeBase:
    """A knowledge base of (task, architecture, metrics) evaluations in one SQLite file.

    ``KnowledgeBase(path)`` opens the file, creating it (and its parent folders) with an empty
    schema when it does not exist. With ``readonly=True`` a missing file is an error and every
    write raises :class:`~metanas.errors.KnowledgeBaseError`. A file that is not SQLite, has no
    metanas schema or was written by a newer metanas raises ``KnowledgeBaseError`` too.

    Writes are transactional and idempotent where that makes sense (tasks by key, architectures
    by string, evaluations by (task, architecture, recipe hash, seed)). Group several writes into
    one transaction with :meth:`transaction`.
    """

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.readonly = bool(readonly)
        self._depth = 0
        self._conn: sqlite3.Connection | None = None
        if self.path.is_dir():
            raise KnowledgeBaseError(f"knowledge base {self.path} is a directory, not a file")
        if readonly and not self.path.exists():
            raise KnowledgeBaseError(f"knowledge base {self.path} does not exist")
        if not readonly:
            _make_folder(self.path)
        try:
            self._conn = self._connect()
            self._open_schema()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # the latter: SQLite's
            self.close()  # message quoting a damaged schema's bytes
            raise KnowledgeBaseError(
                f"{self.path} is not a metanas knowledge base (not a readable SQLite file: "
                f"{first_line(exc, 200)})"
            ) from exc
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ connection and schema

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            # mode=ro writes nothing to a file in rollback mode. A file left in WAL mode (by an
            # older metanas, or a writer that could not switch back) would get -wal and -shm
            # files that a read-only connection cannot remove; when no writer is there (no
            # sidecars, no lock) every committed page is in the file, and immutable=1 reads it
            # without them.
            uri = self.path.resolve().as_uri() + "?mode=ro"
            if _wal_at_rest(self.path):
                uri += "&immutable=1"
            conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        else:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        # text that is not UTF-8 (a damaged page, another program's bytes) reads with U+FFFD
        # in place of the bad bytes rather than a UnicodeDecodeError from any query
        conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The underlying SQLite connection (for read-only queries by other modules)."""
        if self._conn is None:
            raise KnowledgeBaseError(f"knowledge base {self.path} is closed")
        return self._conn

    def _tables(self) -> set[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {r[0] for r in rows}

    def _open_schema(self) -> None:
        conn = self.conn
        # Raises sqlite3.DatabaseError ("file is not a database") for non-SQLite files.
        tables = self._tables()
        if not tables and not self.readonly and self._is_blank():
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not self._tables() and self._is_blank():  # another process may have won
                    self._create_schema()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            tables = self._tables()
        self._check_schema(tables)
        if not self.readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. on a file system without shared memory
                conn.execute("PRAGMA journal_mode = DELETE")
            # a read makes the -wal and -shm files now: while they exist a reader knows a
            # writer may be here and does not open the file immutable (_wal_at_rest)
            conn.execute("SELECT COUNT(*) FROM meta").fetchone()
        conn.execute("PRAGMA foreign_keys = ON")

    def _is_blank(self) -> bool:
        """No tables and no application id / user version: a new (or empty) SQLite file."""
        conn = self.conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return app_id == 0 and version == 0

    def _create_schema(self) -> None:
        conn = self.conn
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [
                ("format", "metanas-kb"),
                ("schema_version", str(SCHEMA_VERSION)),
                ("created_at", _now()),
                ("metanas_version", _version()),
            ],
        )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_schema(self, tables: set[str]) -> None:
        conn = self.conn
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:
            what = "an empty SQLite file" if not tables else "a SQLite file of another program"
            raise KnowledgeBaseError(
                f"{self.path} is not a metanas knowledge base ({what}; "
                f"application_id={app_id:#x}, tables: {', '.join(sorted(tables)) or 'none'})"
            )
        if version > SCHEMA_VERSION:
            raise KnowledgeBaseError(
                f"knowledge base {self.path} has schema version {version}, newer than the "
                f"version {SCHEMA_VERSION} this metanas ({_version()}) supports; upgrade metanas"
            )
        if version < 1:
            raise KnowledgeBaseError(
                f"knowledge base {self.path} has an invalid schema version {version}"
            )
        # (Version < SCHEMA_VERSION would be migrated here once there is more than one version.)
        missing = [t for t in _REQUIRED_TABLES if t not in tables]
        if missing:
            raise KnowledgeBaseError(
                f"knowledge base {self.path} is damaged: missing table(s) {', '.join(missing)}"
            )
        self._check_contents()

    def _check_contents(self) -> None:
        """Refuse, in one line, a file whose pages or rows could not be read as written: a
        damaged page, a missing column, a value of the wrong kind. Every query after this
        may trust the file; the checks read it once, indexes included (about 100 ms for a 15 MB
        knowledge base)."""
        conn = self.conn
        try:
            result = conn.execute("PRAGMA integrity_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            result = str(exc)
        if result != "ok":
            raise KnowledgeBaseError(f"knowledge base {self.path} is damaged (SQLite: "
                                     f"{' '.join(str(result).split())[:200]})")
        for table, columns in _expected_columns().items():
            have = {r[1]: (r[2], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")}
            lacking = [c for c in columns if c not in have]
            if lacking:
                raise KnowledgeBaseError(f"knowledge base {self.path} is damaged: table {table} "
                                         f"lacks column(s) {', '.join(lacking)}")
            changed = [c for c in columns if have[c] != columns[c]]
            if changed:  # e.g. id no longer the row's key: it would read as NULL
                raise KnowledgeBaseError(f"knowledge base {self.path} is damaged: column "
                                         f"{table}.{changed[0]} is not declared as written")
        for table, column, bad, expected in _ROW_CHECKS:
            row = conn.execute(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL "
                               f"AND ({bad}) LIMIT 1").fetchone()
            if row is not None:
                raise KnowledgeBaseError(
                    f"knowledge base {self.path} is damaged: {table} row {row[0]} has "
                    f"{column} {shorten(row[1], 60)} ({expected} expected)")

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def meta(self) -> dict[str, str]:
        """The ``meta`` table: format, schema_version, created_at, metanas_version."""
        return {r["key"]: r["value"] for r in self.conn.execute("SELECT key, value FROM meta")}

    def close(self) -> None:
        """Close the connection (idempotent). An open transaction is rolled back, and a writer
        puts the file back in rollback mode when no one else has it open, so it is one file at
        rest (read-only opens then create no sidecar files)."""
        if self._conn is not None:
            try:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if not self.readonly:  # busy (someone else has it open) or not a KB: leave it
                    with contextlib.suppress(sqlite3.DatabaseError):
                        self._conn.execute("PRAGMA busy_timeout = 0")
                        self._conn.execute("PRAGMA journal_mode = DELETE")
            finally:
                self._conn.close()
                self._conn = None
                self._depth = 0

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else ("readonly" if self.readonly else "open")
        return f"KnowledgeBase({str(self.path)!r}, {state})"

    # ------------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[KnowledgeBase]:
        """Group writes into one transaction: all of them are stored, or none.

        Re-entrant: a nested ``transaction()`` is a savepoint of the outer one (undone alone if
        it raises; stored when the outer one commits). Takes the write lock at the
        start (``BEGIN IMMEDIATE``), waiting up to 30 s for another writer.
        """
        self._require_writable()
        conn = self.conn
        depth = self._depth
        savepoint = f"metanas_sp{depth}"
        conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
        self._depth = depth + 1
        try:
            yield self
        except BaseException:
            self._depth = depth
            if depth == 0:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO {savepoint}")
                conn.execute(f"RELEASE {savepoint}")
            raise
        else:
            self._depth = depth
            if depth > 0:
                conn.execute(f"RELEASE {savepoint}")
                return
            try:
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _require_writable(self) -> None:
        if self.readonly:
            raise KnowledgeBaseError(f"knowledge base {self.path} is open read-only")

    # ------------------------------------------------------------------ tasks

    def add_task(
        self,
        key: str,
        *,
        name: str,
        source: str,
        fingerprint: str | None = None,
        classes: Sequence[int] | None = None,
        resolution: int | None = None,
        channels: int | None = None,
        num_classes: int | None = None,
        sizes: dict | None = None,
        seed: int | None = None,
        spec: dict | None = None,
        meta_features: dict[str, float] | None = None,
    ) -> int:
        """Add a task and return its id; a task with the same ``key`` returns the existing id.

        ``key`` identifies the task (a sha256 hex string computed by the caller). ``sizes``
        holds the split sizes as ``{"train": n, "val": n, "test": n}``. Re-adding a known key
        changes nothing except filling fields (e.g. ``meta_features``) that were still empty.
        """
        _required_str("key", key)
        _required_str("source", source)
        values: dict[str, Any] = {
            "name": name,
            "fingerprint": fingerprint,
            "classes": _dumps([_required_int("classes[]", c) for c in classes])
            if classes is not None
            else None,
            "resolution": _opt_int("resolution", resolution),
            "channels": _opt_int("channels", channels),
            "num_classes": _opt_int("num_classes", num_classes),
            "n_train": None,
            "n_val": None,
            "n_test": None,
            "seed": _opt_int("seed", seed),
            "spec": _dumps(spec),
            "meta_features": _dumps(self._clean_features(meta_features))
            if meta_features is not None
            else None,
        }
        for size_key, size in (sizes or {}).items():
            column = _SIZE_ALIASES.get(size_key)
            if column is None:
                raise ValueError(f"unknown split size {size_key!r}; expected train, val or test")
            values[column] = _opt_int(f"sizes[{size_key!r}]", size)
        with self.transaction():
            row = self.conn.execute("SELECT id FROM tasks WHERE key = ?", (key,)).fetchone()
            if row is not None:
                fill = {k: v for k, v in values.items() if v is not None}
                if fill:
                    sets = ", ".join(f"{k} = COALESCE({k}, :{k})" for k in fill)
                    self.conn.execute(
                        f"UPDATE tasks SET {sets} WHERE id = :id", {**fill, "id": row[0]}
                    )
                return int(row[0])
            columns = ["key", "source", "created_at", *_TASK_FIELDS]
            params = {"key": key, "source": source, "created_at": _now(), **values}
            cur = self.conn.execute(
                f"INSERT INTO tasks({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)})",
                params,
            )
            return int(cur.lastrowid)

    @staticmethod
    def _clean_features(features: dict[str, float]) -> dict[str, float | None]:
        if not isinstance(features, dict):
            raise ValueError(f"meta features must be a dict name -> float, got {features!r}")
        out: dict[str, float | None] = {}
        for name, value in features.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"meta feature names must be non-empty strings, got {name!r}")
            out[name] = _opt_float(f"meta feature {name!r}", value)
        return out

    def set_meta_features(self, task_id: int, features: dict[str, float]) -> None:
        """Store (replace) the meta-features of a task; NaN / inf values are stored as null."""
        encoded = _dumps(self._clean_features(features))
        with self.transaction():
            cur = self.conn.execute(
                "UPDATE tasks SET meta_features = ? WHERE id = ?", (encoded, int(task_id))
            )
            if cur.rowcount != 1:
                raise KnowledgeBaseError(f"no task with id {task_id} in {self.path}")

    def _task_row(self, row: sqlite3.Row) -> dict:
        out = dict(row)
        for field in ("classes", "spec", "meta_features"):
            out[field] = _loads(out[field])
        out["sizes"] = {"train": out["n_train"], "val": out["n_val"], "test": out["n_test"]}
        return out

    def tasks(self, *, source: str | None = None) -> list[dict]:
        """All tasks (optionally of one ``source``), with JSON fields decoded, by id."""
        if source is None:
            rows = self.conn.execute("SELECT * FROM tasks ORDER BY id").fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM tasks WHERE source = ? ORDER BY id", (source,)
            ).fetchall()
        return [self._task_row(r) for r in rows]

    def task(self, key_or_id: str | int) -> dict:
        """One task by id (int), key, or unique key prefix (at least 4 characters)."""
        conn = self.conn
        if isinstance(key_or_id, int) and not isinstance(key_or_id, bool):
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (key_or_id,)).fetchone()
            if row is None:
                raise KnowledgeBaseError(f"no task with id {key_or_id} in {self.path}")
            return self._task_row(row)
        key = str(key_or_id)
        row = conn.execute("SELECT * FROM tasks WHERE key = ?", (key,)).fetchone()
        if row is None and len(key) >= 4:
            pattern = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = conn.execute(
                "SELECT * FROM tasks WHERE key LIKE ? ESCAPE '\\' LIMIT 2", (pattern,)
            ).fetchall()
            if len(rows) > 1:
                raise KnowledgeBaseError(
                    f"task key prefix {key!r} is ambiguous in {self.path}; give more characters"
                )
            row = rows[0] if rows else None
        if row is None:
            raise KnowledgeBaseError(f"no task with key {key!r} in {self.path}")
        return self._task_row(row)

    # ------------------------------------------------------------------ architectures

    def add_architecture(
        self, arch: str, *, space: str = "nb201", canonical: str | None = None
    ) -> int:
        """Add an architecture string of a search space and return its id (idempotent).

        The string is stored as given (callers normalise it); ``canonical`` is an identifier
        shared by functionally identical architectures (e.g. ``NB201Arch.canonical_hash()``),
        filled in if an existing row has none.
        """
        _required_str("arch", arch)
        _required_str("space", space)
        with self.transaction():
            return self._add_architecture(arch, space, canonical)

    def _add_architecture(self, arch: str, space: str, canonical: str | None) -> int:
        conn = self.conn
        row = conn.execute(
            "SELECT id, canonical FROM architectures WHERE space = ? AND arch = ?", (space, arch)
        ).fetchone()
        if row is not None:
            if canonical is not None and row["canonical"] is None:
                conn.execute(
                    "UPDATE architectures SET canonical = ? WHERE id = ?", (canonical, row["id"])
                )
            return int(row["id"])
        cur = conn.execute(
            "INSERT INTO architectures(space, arch, canonical) VALUES (?, ?, ?)",
            (space, arch, canonical),
        )
        return int(cur.lastrowid)

    def architectures(self, *, space: str | None = None) -> list[dict]:
        """All architectures (id, space, arch, canonical), by id."""
        sql = "SELECT id, space, arch, canonical FROM architectures"
        params: tuple = ()
        if space is not None:
            sql += " WHERE space = ?"
            params = (space,)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY id", params)]

    # ------------------------------------------------------------------ evaluations

    @_transactional
    def add_evaluation(
        self,
        task_id: int,
        arch_id: int,
        *,
        recipe: str,
        recipe_hash: str,
        seed: int,
        metrics: dict,
        recipe_config: dict | None = None,
        seconds: float | None = None,
        device: str | None = None,
        extra: dict | None = None,
        version: str | None = None,
        created_at: str | None = None,
    ) -> bool:
        """Store one evaluation; ``False`` (and nothing written) if it exists already.

        ``metrics`` may hold ``val_acc`` and ``test_acc`` (fractions in [0, 1]), ``train_loss``,
        ``val_loss``, ``params`` and ``macs``; missing ones are stored as null, unknown names
        raise ``ValueError``. An evaluation is identified by (task, architecture, recipe_hash,
        seed). ``recipe`` (name) and ``recipe_config`` are stored once per recipe hash in the
        ``recipes`` table (see :meth:`recipes`). ``version`` and ``created_at`` (default: this
        metanas version, now) say which metanas measured it and when; a merge keeps them.
        """
        _required_str("recipe", recipe)
        _required_str("recipe_hash", recipe_hash)
        if not isinstance(metrics, dict):
            raise ValueError(f"metrics must be a dict, got {metrics!r}")
        unknown = sorted(set(metrics) - set(METRICS))
        if unknown:
            raise ValueError(
                f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(METRICS)}"
                " (put anything else in extra=)"
            )
        params: dict[str, Any] = {name: _check_metric(name, metrics.get(name)) for name in METRICS}
        secs = _opt_float("seconds", seconds)
        if secs is not None and secs < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        params.update(
            task_id=_required_int("task_id", task_id),
            arch_id=_required_int("arch_id", arch_id),
            recipe_id=self._add_recipe(recipe, recipe_hash, recipe_config),
            seed=_required_int("seed", seed),
            seconds=secs,
            device=device,
            version=_version() if version is None else _required_str("version", version),
            created_at=_now() if created_at is None else _required_str("created_at", created_at),
            extra=_dumps(extra),
        )
        columns = list(params)
        try:
            cur = self.conn.execute(
                f"INSERT INTO evaluations({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)}) "
                "ON CONFLICT(task_id, arch_id, recipe_id, seed) DO NOTHING",
                params,
            )
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" not in str(exc).upper():
                raise
            conn = self.conn
            if conn.execute("SELECT 1 FROM tasks WHERE id = ?", (params["task_id"],)).fetchone():
                what = f"architecture id {params['arch_id']}"
            else:
                what = f"task id {params['task_id']}"
            raise KnowledgeBaseError(f"no {what} in {self.path}") from exc
        return cur.rowcount == 1

    _add_evaluation = add_evaluation.__wrapped__
    """The same without its own savepoint, for :meth:`add_evaluations`' one transaction."""

    def _add_recipe(self, name: str, recipe_hash: str, config: dict | None) -> int:
        conn = self.conn
        row = conn.execute(
            "SELECT id, config FROM recipes WHERE hash = ?", (recipe_hash,)
        ).fetchone()
        if row is not None:
            if config is not None and row["config"] is None:
                conn.execute(
                    "UPDATE recipes SET config = ? WHERE id = ?", (_dumps(config), row["id"])
                )
            return int(row["id"])
        cur = conn.execute(
            "INSERT INTO recipes(hash, name, config, created_at) VALUES (?, ?, ?, ?)",
            (recipe_hash, name, _dumps(config), _now()),
        )
        return int(cur.lastrowid)

    def recipes(self) -> list[dict]:
        """Training recipes of the stored evaluations: hash, name, config (decoded), evaluations.

        A recipe is identified by its hash; its name and config are those of the first
        evaluation stored with that hash.
        """
        rows = self.conn.execute(
            "SELECT r.id, r.hash, r.name, r.config, r.created_at, COUNT(e.id) AS evaluations "
            "FROM recipes r LEFT JOIN evaluations e ON e.recipe_id = r.id "
            "GROUP BY r.id ORDER BY r.id"
        ).fetchall()
        out = []
        for row in rows:
            d = dict(row)
            d["config"] = _loads(d["config"])
            out.append(d)
        return out

    def add_evaluations(self, rows: Iterable[dict]) -> int:
        """Store many evaluations in one transaction; returns how many were new.

        Each row holds the keyword arguments of :meth:`add_evaluation` (``task_id``,
        ``arch_id``, ``recipe``, ``recipe_hash``, ``seed``, ``metrics``, ...). Instead of ids a
        row may give ``task_key`` (an existing task) and ``arch`` (+ ``space``, ``canonical``;
        added if new), and metrics may be given at the top level instead of in ``metrics``.
        If any row is invalid nothing is stored.
        """
        new = 0
        task_ids: dict[str, int] = {}
        with self.transaction():
            for i, raw in enumerate(rows):
                row = dict(raw)
                try:
                    if "task_id" not in row:
                        key = row.pop("task_key")
                        if key not in task_ids:
                            found = self.conn.execute(
                                "SELECT id FROM tasks WHERE key = ?", (key,)
                            ).fetchone()
                            if found is None:
                                raise KnowledgeBaseError(
                                    f"no task with key {key!r} in {self.path} (row {i})"
                                )
                            task_ids[key] = int(found[0])
                        row["task_id"] = task_ids[key]
                    else:
                        row.pop("task_key", None)
                    space = row.pop("space", "nb201")
                    canonical = row.pop("canonical", None)
                    arch = row.pop("arch", None)
                    if "arch_id" not in row:
                        if arch is None:
                            raise ValueError(f"evaluation row {i} has neither arch_id nor arch")
                        row["arch_id"] = self._add_architecture(
                            _required_str("arch", arch), space, canonical
                        )
                    metrics = dict(row.pop("metrics", None) or {})
                    for name in METRICS:
                        if name in row:
                            metrics[name] = row.pop(name)
                    task_id = row.pop("task_id")
                    arch_id = row.pop("arch_id")
                    new += self._add_evaluation(task_id, arch_id, metrics=metrics, **row)
                except KeyError as exc:
                    raise ValueError(f"evaluation row {i} lacks {exc}") from None
                except TypeError as exc:
                    raise ValueError(f"evaluation row {i}: {exc}") from None
        return new

    def has_evaluation(
        self, task_key: str, arch: str, recipe_hash: str, seed: int, space: str = "nb201"
    ) -> bool:
        """Whether an evaluation of ``arch`` on task ``task_key`` exists for that recipe + seed."""
        row = self.conn.execute(
            "SELECT 1 FROM evaluations e "
            "JOIN tasks t ON t.id = e.task_id JOIN architectures a ON a.id = e.arch_id "
            "JOIN recipes r ON r.id = e.recipe_id "
            "WHERE t.key = ? AND a.space = ? AND a.arch = ? AND r.hash = ? AND e.seed = ? "
            "LIMIT 1",
            (task_key, space, arch, recipe_hash, int(seed)),
        ).fetchone()
        return row is not None

    def done_keys(self, recipe_hash: str | None = None) -> set[tuple[str, str, int]]:
        """``(task_key, arch, seed)`` of the stored evaluations (of one recipe hash, if given).

        One query, meant for resuming an interrupted build: skip what is in this set.
        """
        sql = (
            "SELECT t.key, a.arch, e.seed FROM evaluations e "
            "JOIN tasks t ON t.id = e.task_id JOIN architectures a ON a.id = e.arch_id"
        )
        params: tuple = ()
        if recipe_hash is not None:
            sql += " WHERE e.recipe_id = (SELECT id FROM recipes WHERE hash = ?)"
            params = (recipe_hash,)
        return {(k, a, int(s)) for k, a, s in self.conn.execute(sql, params)}

    def _evaluation_query(
        self,
        task_key: str | None,
        recipe: str | None,
        source: str | None,
        recipe_hash: str | None,
        space: str | None,
    ) -> tuple[str, list]:
        where: list[str] = []
        params: list = []
        for column, value in (
            ("t.key", task_key),
            ("r.name", recipe),
            ("t.source", source),
            ("r.hash", recipe_hash),
            ("a.space", space),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = _EVAL_SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY e.id"
        return sql, params

    def evaluations(
        self,
        *,
        task_key: str | None = None,
        recipe: str | None = None,
        source: str | None = None,
        recipe_hash: str | None = None,
        space: str | None = None,
    ) -> list[dict]:
        """Evaluation rows joined with their task and architecture, in insertion order.

        Keys: see :data:`EVALUATION_COLUMNS` (``extra`` decoded from JSON).
        """
        sql, params = self._evaluation_query(task_key, recipe, source, recipe_hash, space)
        out = []
        for row in self.conn.execute(sql, params):
            d = dict(row)
            d["extra"] = _loads(d["extra"])
            out.append(d)
        return out

    def merge_from(self, other: KnowledgeBase) -> dict[str, int]:
        """Copy every task of ``other`` and every evaluation (with its architecture, recipe
        and the metanas version and time that measured it) into this base, in one
        transaction; what is already here (same task key, or same task, architecture, recipe
        hash and seed) is kept as it is, so a repeated merge adds nothing. Returns the tasks
        and evaluations that were new. A row ``other`` holds but this schema refuses raises
        :class:`KnowledgeBaseError` naming ``other``, and nothing is written."""
        self._require_writable()
        configs = {r["hash"]: r["config"] for r in other.recipes()}
        known = {row[0] for row in self.conn.execute("SELECT key FROM tasks")}
        try:
            return self._merge_rows(other, configs, known)
        except (ValueError, TypeError) as exc:
            raise KnowledgeBaseError(f"{other.path}: cannot merge: {exc}") from None

    def _merge_rows(self, other: KnowledgeBase, configs: dict, known: set) -> dict[str, int]:
        with self.transaction():
            tasks = other.tasks()
            for t in tasks:
                self.add_task(
                    t["key"], name=t["name"], source=t["source"], fingerprint=t["fingerprint"],
                    classes=t["classes"], resolution=t["resolution"], channels=t["channels"],
                    num_classes=t["num_classes"], sizes=t["sizes"], seed=t["seed"],
                    spec=t["spec"], meta_features=t["meta_features"])
            rows = ({
                "task_key": e["task_key"], "arch": e["arch"], "space": e["space"],
                "canonical": e["canonical"], "recipe": e["recipe"],
                "recipe_hash": e["recipe_hash"], "recipe_config": configs.get(e["recipe_hash"]),
                "seed": e["seed"], "metrics": {m: e[m] for m in METRICS},
                "seconds": e["seconds"], "device": e["device"], "extra": e["extra"],
                "version": e["version"], "created_at": e["created_at"],
            } for e in other.evaluations())
            new = self.add_evaluations(rows)
        return {"tasks": sum(t["key"] not in known for t in tasks), "evaluations": new}

    def counts(self) -> dict[str, int]:
        """Numbers of tasks, architectures and evaluations."""
        conn = self.conn
        return {
            table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("tasks", "architectures", "evaluations")
        }

    def source_counts(self) -> dict[str, dict[str, int]]:
        """Per task source: its tasks and evaluations."""
        rows = self.conn.execute(
            "SELECT t.source, COUNT(DISTINCT t.id), COUNT(e.id) FROM tasks t "
            "LEFT JOIN evaluations e ON e.task_id = t.id GROUP BY t.source ORDER BY t.source")
        return {str(row[0]): {"tasks": int(row[1]), "evaluations": int(row[2])} for row in rows}

    def task_summaries(self) -> list[dict[str, Any]]:
        """Per task: id, key, name, source, whether it has meta-features, evaluations,
        architectures, ``val_acc`` / ``test_acc`` (n, min, mean, max, population std) and
        ``best``: the architecture with the highest mean validation accuracy over its
        evaluations (test accuracy where the task has no validation accuracies)."""
        conn = self.conn
        # Two passes (mean, then squared deviations) so the std of equal values is exactly 0.
        deviations = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                "SELECT e.task_id, SUM((e.val_acc - m.v) * (e.val_acc - m.v)), "
                "SUM((e.test_acc - m.t) * (e.test_acc - m.t)) FROM evaluations e "
                "JOIN (SELECT task_id, AVG(val_acc) AS v, AVG(test_acc) AS t FROM evaluations "
                "GROUP BY task_id) m ON m.task_id = e.task_id GROUP BY e.task_id"
            )
        }
        best = self._best_per_task()
        tasks: list[dict[str, Any]] = []
        for row in conn.execute(
            """
            SELECT t.id, t.key, t.name, t.source, t.meta_features IS NOT NULL AS has_features,
                   COUNT(e.id) AS n, COUNT(DISTINCT e.arch_id) AS archs,
                   COUNT(e.val_acc) AS vn, MIN(e.val_acc) AS vmin, AVG(e.val_acc) AS vmean,
                   MAX(e.val_acc) AS vmax,
                   COUNT(e.test_acc) AS tn, MIN(e.test_acc) AS tmin, AVG(e.test_acc) AS tmean,
                   MAX(e.test_acc) AS tmax
            FROM tasks t LEFT JOIN evaluations e ON e.task_id = t.id
            GROUP BY t.id ORDER BY t.id
            """
        ):
            dev_v, dev_t = deviations.get(row["id"], (None, None))
            tasks.append({
                "id": int(row["id"]), "key": row["key"], "name": row["name"],
                "source": row["source"], "meta_features": bool(row["has_features"]),
                "evaluations": int(row["n"]), "architectures": int(row["archs"]),
                "val_acc": _acc_summary(row["vn"], row["vmin"], row["vmean"], row["vmax"], dev_v),
                "test_acc": _acc_summary(row["tn"], row["tmin"], row["tmean"], row["tmax"], dev_t),
                "best": best.get(row["id"]),
            })
        return tasks

    def _best_per_task(self) -> dict[int, dict[str, Any]]:
        best: dict[int, dict[str, Any]] = {}
        for row in self.conn.execute(
            """
            WITH per AS (
                SELECT task_id, arch_id, AVG(val_acc) AS v, AVG(test_acc) AS t, COUNT(*) AS n
                FROM evaluations GROUP BY task_id, arch_id
            ), has AS (
                SELECT task_id, COUNT(val_acc) > 0 AS has_val FROM evaluations GROUP BY task_id
            ), ranked AS (
                SELECT per.*, has.has_val,
                       ROW_NUMBER() OVER (
                           PARTITION BY per.task_id
                           ORDER BY CASE WHEN has.has_val THEN per.v ELSE per.t END DESC,
                                    per.arch_id
                       ) AS rn
                FROM per JOIN has ON has.task_id = per.task_id
            )
            SELECT r.task_id, a.arch, a.canonical, r.v, r.t, r.n, r.has_val
            FROM ranked r JOIN architectures a ON a.id = r.arch_id
            WHERE r.rn = 1
            """
        ):
            value = row["v"] if row["has_val"] else row["t"]
            if value is None:  # no accuracy at all for this task
                continue
            best[row["task_id"]] = {
                "arch": row["arch"], "canonical": row["canonical"],
                "metric": "val_acc" if row["has_val"] else "test_acc", "value": float(value),
                "val_acc": None if row["v"] is None else float(row["v"]),
                "test_acc": None if row["t"] is None else float(row["t"]),
                "evaluations": int(row["n"]),
            }
        return best

    def evaluation_overview(self) -> dict[str, Any]:
        """Distinct evaluated architectures and canonical classes, evaluations per recipe."""
        distinct_archs, distinct_canonical = self.conn.execute(
            "SELECT COUNT(DISTINCT e.arch_id), COUNT(DISTINCT a.space || ':' || a.canonical) "
            "FROM evaluations e JOIN architectures a ON a.id = e.arch_id").fetchone()
        recipes = {
            str(r[0]): int(r[1]) for r in self.conn.execute(
                "SELECT r.name, COUNT(*) FROM evaluations e JOIN recipes r ON r.id = e.recipe_id "
                "GROUP BY r.name ORDER BY r.name")
        }
        return {"distinct_architectures": int(distinct_archs),
                "distinct_canonical": int(distinct_canonical), "recipes": recipes}

    def export_csv(self, path: str | os.PathLike) -> int:
        """Write the joined evaluation rows to a CSV file (header + one row per evaluation).

        Written to a temporary file first and moved into place, so ``path`` never holds a
        partial export. Returns the number of rows.
        """
        target = Path(path).expanduser()
        if target.is_dir():
            raise KnowledgeBaseError(f"cannot export to {target}: it is a directory")
        if not target.parent.is_dir():
            raise KnowledgeBaseError(f"cannot export to {target}: folder {target.parent} missing")
        sql, params = self._evaluation_query(None, None, None, None, None)
        n = 0

        def write(tmp: str) -> None:
            nonlocal n
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(EVALUATION_COLUMNS)
                for row in self.conn.execute(sql, params):
                    writer.writerow(["" if v is None else v for v in row])
                    n += 1

        try:
            atomic_write(target, write)
        except OSError as exc:
            raise KnowledgeBaseError(f"cannot export to {target}: {exc.strerror or exc}") from None
        return n


@functools.cache
def _expected_columns() -> dict[str, dict[str, tuple[str, int]]]:
    """Each table's columns in :data:`_SCHEMA` (name -> declared type, primary-key rank),
    read from an in-memory copy of it."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(_SCHEMA)
        return {t: {r[1]: (r[2], r[5]) for r in conn.execute(f"PRAGMA table_info({t})")}
                for t in _REQUIRED_TABLES}
    finally:
        conn.close()


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KnowledgeBaseError(
            f"cannot create knowledge base {path}: cannot create its folder "
            f"({exc.strerror or exc})"
        ) from None


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _wal_at_rest(path: Path) -> bool:
    """A SQLite file whose header says WAL (bytes 18-19 are 2), with no sidecar files and no
    writer's lock beside it: nothing newer than the file exists, so it may be read immutable."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    if len(header) < 20 or not header.startswith(b"SQLite format 3\0") or header[18:20] != b"\2\2":
        return False
    return not any(_sibling(path, s).exists() for s in (*_SIDECARS, LOCK_SUFFIX))


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock of the knowledge base ``path`` (``flock`` on ``<path>.lock``,
    not waiting): a second writer fails at once with a :class:`KnowledgeBaseError` naming the
    file, instead of interleaving with (or deleting) the first one's work.

    The lock file is removed on release; a writer that opened it just before is not fooled,
    since it checks after locking that the file it holds is still the one at that path.
    Readers take no lock. Without ``fcntl`` (Windows) there is no lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    path = Path(path).expanduser()
    _make_folder(path)
    lock = _sibling(path, LOCK_SUFFIX)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise KnowledgeBaseError(
                f"cannot lock knowledge base {path}: cannot create {lock.name} "
                f"({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise KnowledgeBaseError(
                    f"knowledge base {path} is in use: another build holds its lock {lock.name}; "
                    "wait for it to finish or use another file") from None
            raise KnowledgeBaseError(
                f"cannot lock knowledge base {path} ({exc.strerror or exc})") from None
        try:
            held = os.fstat(fd)
            now = os.stat(lock)
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed the file we locked: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


@contextlib.contextmanager
def open_for_writing(path: str | os.PathLike) -> Iterator[KnowledgeBase]:
    """Open (or create) the knowledge base ``path`` for writing, holding :func:`writer_lock`.

    When the body fails on a user error (:class:`~metanas.errors.MetanasError`) and this call
    created the file and nothing was stored in it, the file is removed again, so a bad option
    leaves no stray file; a file that existed, holds evaluations or was replaced meanwhile is
    never removed.
    """
    from metanas.errors import MetanasError

    path = Path(path).expanduser()
    with writer_lock(path):
        created = not path.exists()
        try:
            store = KnowledgeBase(path)
        except MetanasError:
            if created and path.is_file() and path.stat().st_size == 0:
                path.unlink()  # the blank file SQLite made before the error
            raise
        ours = os.stat(path)
        try:
            yield store
        except MetanasError:
            empty = store.counts()["evaluations"] == 0
            store.close()
            if created and empty:
                _remove_if_same(path, ours)
            raise
        finally:
            store.close()


def _remove_if_same(path: Path, stat: os.stat_result) -> None:
    """Remove ``path`` (and SQLite's sidecar files) if it is still the file ``stat`` saw."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return
    if (now.st_dev, now.st_ino) != (stat.st_dev, stat.st_ino):
        return
    for suffix in ("", *_SIDECARS):
        with contextlib.suppress(OSError):
            _sibling(path, suffix).unlink(missing_ok=True)
