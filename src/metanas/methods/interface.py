"""The contract every search method implements (value network, MetaD2A, BASE, baselines).

A method takes a dataset and returns ranked candidates with scores and timings. Meta-learned
methods are built from a knowledge base once (``meta_train``), saved as a safe checkpoint, and
loaded for search; baselines search from scratch on the target task within a budget.
"""

from __future__ import annotations

import abc
import math
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from metanas.data import ImageDataset
from metanas.errors import ConfigError
from metanas.methods.options import NoOptions, SearchOptions, check_value


def config_from_options(cls: type, options: dict[str, Any], what: str, *,
                        also: tuple[str, ...] = ()) -> Any:
    """``cls(**options)`` for a method's config dataclass, with a one-line error naming the
    unknown options and the known ones (``also``: options the caller takes itself); each value
    is checked against its field's type first (``resolutions=7`` is the tuple ``(7,)``,
    ``restarts=abc`` an error), the ranges by the config itself."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"{what} has no option(s) {', '.join(unknown)}; its options: "
                          f"{', '.join(sorted(known | set(also)))}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: check_value(what, k, hints[k], v, {}) for k, v in options.items()})


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
    inherited: Any = field(default=None, repr=False, compare=False)
    """A network of the top pick with weights to start its final training from (BASE with
    ``inherit=true``: an ``NB201Network`` cut out of the adapted supernet), else None. Not
    part of :meth:`to_dict`."""

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


BUDGET_KINDS = ("seconds", "evaluations")


class SearchMethod(abc.ABC):
    """Picks architectures for a dataset.

    A method declares what it accepts: ``Options`` (its typed search options,
    :mod:`metanas.methods.options`) and ``budget_kinds`` (which of ``seconds`` / ``evaluations``
    its search budget may hold; none: ``no_budget_reason`` says why). :meth:`search` checks
    both once, here, and hands the validated options to :meth:`_search`, which every method
    implements with keyword parameters named like the fields of its ``Options``.
    """

    name: ClassVar[str]
    meta_learned: ClassVar[bool] = False
    Options: ClassVar[type[SearchOptions]] = NoOptions
    budget_kinds: ClassVar[frozenset[str]] = frozenset()
    no_budget_reason: ClassVar[str] = "it ranks without training"
    trains_candidates: ClassVar[bool] = False
    """Whether search trains candidates (and so takes a training recipe)."""

    @classmethod
    def option_names(cls) -> set[str]:
        """The names of the search options this method declares."""
        return {f.name for f in fields(cls.Options)}

    def search(
        self,
        dataset: ImageDataset,
        *,
        top: int = 10,
        seed: int = 0,
        budget: Budget | None = None,
        progress: bool = False,
        **options: Any,
    ) -> SearchResult:
        """Rank architectures for ``dataset``; ``search_seconds`` covers task encoding too.
        ``options`` are the fields of :attr:`Options`."""
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ConfigError(f"top must be an integer >= 1, got {top!r}")
        parsed = self.Options.parse(options, self.name)
        budget = self.check_budget(budget)
        return self._search(dataset, top=top, seed=seed, budget=budget, progress=progress,
                            **parsed.as_kwargs())

    @classmethod
    def check_budget(cls, budget: Budget | None) -> Budget | None:
        """``budget`` if this method takes its kinds (an empty Budget is no budget)."""
        if budget is None:
            return None
        given = [k for k in BUDGET_KINDS if getattr(budget, k) is not None]
        if not given:
            return None
        refused = [k for k in given if k not in cls.budget_kinds]
        if refused and not cls.budget_kinds:
            raise ConfigError(f"{cls.name} takes no search budget: {cls.no_budget_reason}")
        if refused:
            takes = " or ".join(k for k in BUDGET_KINDS if k in cls.budget_kinds)
            raise ConfigError(f"{cls.name} takes a budget in {takes}, not in "
                              f"{' or '.join(refused)}")
        return budget

    @abc.abstractmethod
    def _search(self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
                progress: bool, **options: Any) -> SearchResult:
        """The method's search with checked arguments (see :meth:`search`)."""


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
