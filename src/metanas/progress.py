"""One progress display for every long loop (training, searches, knowledge-base builds).

Bars go to stderr so piped JSON/CSV output stays clean; disabled, every call is a no-op.
"""

from __future__ import annotations


class Bars:
    """Named rich progress bars with elapsed time and ETA, or nothing when disabled."""

    def __init__(self, enabled: bool = True, *, transient: bool = False) -> None:
        self.enabled = enabled
        self.transient = transient
        self._prog = None

    def __enter__(self) -> Bars:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._prog = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), console=Console(stderr=True), transient=self.transient,
            )
            self._prog.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._prog is not None:
            self._prog.stop()

    def add(self, label: str, total: int | None):
        return self._prog.add_task(label, total=total, status="") if self._prog else None

    def set(self, bar, completed: int) -> None:
        if self._prog is not None:
            self._prog.update(bar, completed=completed)

    def advance(self, bar, status: str | None = None) -> None:
        if self._prog is not None:
            if status is not None:
                self._prog.update(bar, status=status)
            self._prog.advance(bar)
