"""Published accuracies of picked cells, from a table such as a NATS-Bench export.

``--lookup TABLE.csv:COLUMN=DATASET`` names a CSV file with an NB201 architecture column (found
the way :func:`metanas.kb.import_table` finds it) and a metric column, and the bench dataset
whose picks it scores. A pick is matched verbatim first, else by functional equivalence
(:attr:`NB201Arch.canonical_form`), so a table that lists one member of an equivalence class
still scores the others. Percentages (any value above 1) are turned into fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from metanas.errors import ArchitectureError, ConfigError, MetanasError
from metanas.kb.tables import find_arch_column, parse_number, read_csv
from metanas.spaces.nb201 import NB201Arch

__all__ = ["Lookup", "parse_lookup"]


@dataclass
class Lookup:
    """One metric column of a published table, for one bench dataset."""

    path: Path
    column: str
    dataset: str
    exact: dict[str, float] = field(default_factory=dict, repr=False)
    canonical: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"{self.path.stem}:{self.column}"

    def value(self, arch: str) -> float | None:
        """The published number of ``arch``, or None when the table lacks it."""
        if arch in self.exact:
            return self.exact[arch]
        return self.canonical.get(NB201Arch.from_string(arch).canonical_form)

    def load(self) -> Lookup:
        """Read and check the table now (bad files fail before any training)."""
        header, rows = read_csv(self.path)
        if self.column not in header:
            raise ConfigError(f"--lookup {self.path}: no column {self.column!r}; columns: "
                              f"{', '.join(header)}")
        try:
            arch_column = find_arch_column(self.path, header, rows)
        except MetanasError as exc:
            raise ConfigError(f"--lookup {self.path}: {exc}") from None
        values: list[tuple[NB201Arch, float]] = []
        for line, row in rows:
            try:
                arch = NB201Arch.from_string((row.get(arch_column) or "").strip())
                value = parse_number(row.get(self.column) or "")
            except (ArchitectureError, ValueError):
                raise ConfigError(f"--lookup {self.path}, line {line}: bad architecture or "
                                  f"non-numeric {self.column!r}") from None
            if value is not None:
                values.append((arch, value))
        if not values:
            raise ConfigError(f"--lookup {self.path}: column {self.column!r} has no values")
        scale = 100.0 if any(v > 1.0 for _, v in values) else 1.0
        for arch, value in values:
            self.exact.setdefault(arch.to_string(), value / scale)
            self.canonical.setdefault(arch.canonical_form, value / scale)
        return self


def parse_lookup(text: str) -> Lookup:
    """``TABLE.csv:COLUMN=DATASET`` -> a loaded :class:`Lookup` (ConfigError when malformed)."""
    left, eq, dataset = text.rpartition("=")
    path, colon, column = left.rpartition(":")
    if not eq or not colon or not path.strip() or not column.strip() or not dataset.strip():
        raise ConfigError(f"--lookup must look like TABLE.csv:COLUMN=DATASET, got {text!r}")
    table = Path(path.strip()).expanduser()
    if not table.is_file():
        raise ConfigError(f"--lookup {text!r}: table {table} does not exist")
    return Lookup(table, column.strip(), dataset.strip()).load()
