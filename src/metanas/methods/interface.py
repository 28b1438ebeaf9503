"""The contract every search method implements (value network, MetaD2A, BASE, baselines).

A method takes a dataset and returns ranked candidates with scores and timings. Meta-learned
methods are built from a knowledge base once (``meta_train``), saved as a safe checkpoint, and
loaded for search; baselines search from scratch on the target task within a budget.
"""

from __future__ import annotations

import abc
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from metanas.data import ImageDataset
from metanas.errors import ConfigError


def config_from_options(cls: type, options: dict[str, Any], what: str, *,
                        also: tuple[str, ...] = ()) -> Any:
    """``cls(**options)`` for a method's config dataclass, with a one-line error naming the
    unknown options and the known ones (``also``: options the caller takes itself)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"{what} has no option(s) {', '.join(unknown)}; its options: "
                          f"{', '.join(sorted(known | set(also)))}")
    return cls(**options)


def proxy_resolution(side: int, options: tuple[int, ...] | list[int] = (16, 32)) -> int:
    """The option closest (in log scale) to an image side: where a method builds its task."""
    return min(options, key=lambda r: (abs(math.log2(r) - math.log2(side)), r))


@dataclass
class Candidate:
    """One ranked architecture: higher score is better; ``extra`` holds method-specific numbers."""

    arch: str
    score: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Budget:
    """A search budget for methods that train candidates: wall seconds and/or evaluations."""

    seconds: float | None = None
    evaluations: int | None = None

    def __post_init__(self) -> None:
        """Checked once here, so no method runs forever on ``--budget nan`` or ``inf``."""
        if self.seconds is not None and (
                isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float))
                or not math.isfinite(self.seconds) or self.seconds <= 0):
            raise ConfigError(f"--budget must be a finite number of seconds > 0, got "
                              f"{self.seconds!r}")
        if self.evaluations is not None and (
                isinstance(self.evaluations, bool) or not isinstance(self.evaluations, int)
                or self.evaluations < 1):
            raise ConfigError(f"--budget-evals must be an integer >= 1, got "
                              f"{self.evaluations!r}")

    def exhausted(self, elapsed: float, evaluations: int) -> bool:
        if self.evaluations is not None and evaluations >= self.evaluations:
            return True
        return self.seconds is not None and elapsed >= self.seconds

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    """Ranked candidates (best first) plus how long the search took and method details."""

    method: str
    dataset: str
    candidates: list[Candidate]
    search_seconds: float
    space: str = "nb201"
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return self.candidates[0].arch

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "space": self.space,
            "dataset": self.dataset,
            "architecture": self.architecture,
            "candidates": [
                {"architecture": c.arch, "score": c.score, **c.extra} for c in self.candidates
            ],
            "search_seconds": self.search_seconds,
            "timings": self.timings,
            "details": self.details,
        }


class SearchMethod(abc.ABC):
    """Picks architectures for a dataset."""

    name: ClassVar[str]
    meta_learned: ClassVar[bool] = False

    @abc.abstractmethod
    def search(
        self,
        dataset: ImageDataset,
        *,
        top: int = 10,
        seed: int = 0,
        budget: Budget | None = None,
        progress: bool = False,
    ) -> SearchResult:
        """Rank architectures for ``dataset``; ``search_seconds`` covers task encoding too."""


class MetaLearnedMethod(SearchMethod):
    """A method learned from a knowledge base, persisted as a safe checkpoint."""

    meta_learned = True

    @classmethod
    @abc.abstractmethod
    def meta_train(cls, kb, **options) -> MetaLearnedMethod:
        """Learn from a :class:`metanas.kb.KnowledgeBase`."""

    @abc.abstractmethod
    def save(self, path: str | Path) -> None:
        """Write a checkpoint that loads without unpickling code."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> MetaLearnedMethod:
        """Read a checkpoint written by :meth:`save` (version-checked), for ``device``."""
