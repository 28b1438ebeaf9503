"""One progress display for every long loop (training, searches, knowledge-base builds).

Progress goes to stderr so piped JSON/CSV output stays clean; disabled, every call is a no-op.
On a terminal it is rich progress bars. When stderr is not a terminal (piped, logged, CI) a bar
that redraws in place would print nothing until the end, so there it is plain lines instead::

    rea search: 3/20 (15%) 40 s elapsed, best val 0.412

at most one line per bar every ``interval`` seconds (also while a bar does not move, so a slow
step still shows that the process is alive), plus the bar's last state when it ends.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field

DEFAULT_INTERVAL = 10.0
"""Seconds between two progress lines of one bar when stderr is not a terminal
(``$METANAS_PROGRESS_INTERVAL`` overrides)."""


def _interval() -> float:
    try:
        value = float(os.environ.get("METANAS_PROGRESS_INTERVAL", DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class Bars:
    """Named progress bars with elapsed time and ETA (rich, on a terminal), progress lines
    (stderr not a terminal, see the module docstring), or nothing when disabled.

    ``transient``: on a terminal the bars vanish when done; as lines, a bar that finished
    before its first line was due prints nothing (short sub-steps stay quiet)."""

    def __init__(self, enabled: bool = True, *, transient: bool = False,
                 lines: bool | None = None, interval: float | None = None) -> None:
        self.enabled = enabled
        self.transient = transient
        self.lines = (not _stderr_is_terminal()) if lines is None else lines
        self.interval = _interval() if interval is None else interval
        self._prog = None
        self._log: _LineLog | None = None

    def __enter__(self) -> Bars:
        if not self.enabled:
            return self
        if self.lines:
            self._log = _LineLog(self.interval, self.transient)
            self._log.start()
            return self
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
        if self._log is not None:
            self._log.stop()

    def add(self, label: str, total: int | None):
        if self._log is not None:
            return self._log.add(label, total)
        return self._prog.add_task(label, total=total, status="") if self._prog else None

    def set(self, bar, completed: int) -> None:
        if self._log is not None:
            self._log.update(bar, completed=completed)
        elif self._prog is not None:
            self._prog.update(bar, completed=completed)

    def retotal(self, bar, total: int | None) -> None:
        """A bar's total changed (a training replanned its epochs)."""
        if self._log is not None:
            self._log.update(bar, total=total)
        elif self._prog is not None:
            self._prog.update(bar, total=total)

    def advance(self, bar, status: str | None = None, amount: int = 1) -> None:
        if self._log is not None:
            self._log.update(bar, advance=amount, status=status)
        elif self._prog is not None:
            if status is not None:
                self._prog.update(bar, status=status)
            self._prog.advance(bar, amount)


@dataclass
class _Line:
    label: str
    total: int | None
    start: float
    completed: int = 0
    status: str = ""
    last_print: float = field(default=0.0)
    printed: int = 0
    """Lines printed so far."""
    done: bool = False

    def text(self, now: float) -> str:
        elapsed = f"{now - self.start:.0f} s elapsed"
        if self.total:
            count = f"{self.completed}/{self.total} ({100 * self.completed / self.total:.0f}%)"
        else:
            count = f"{self.completed} done"
        return f"{self.label}: {count} {elapsed}" + (f", {self.status}" if self.status else "")


class _LineLog:
    """The line mode of :class:`Bars`: a daemon thread prints the unfinished bars every
    ``interval`` seconds; updates print when a bar's line is due or the bar completes."""

    def __init__(self, interval: float, transient: bool) -> None:
        self.interval = interval
        self.transient = transient
        self._bars: list[_Line] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="metanas-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        now = time.perf_counter()
        with self._lock:
            for line in self._bars:
                self._finish(line, now)

    def add(self, label: str, total: int | None) -> int:
        now = time.perf_counter()
        with self._lock:
            self._bars.append(_Line(label, total, start=now, last_print=now))
            return len(self._bars) - 1

    def update(self, bar: int | None, *, completed: int | None = None, advance: int = 0,
               status: str | None = None, total: int | None = None) -> None:
        if bar is None:
            return
        now = time.perf_counter()
        with self._lock:
            line = self._bars[bar]
            if total is not None:
                line.total = total
            if completed is not None:
                line.completed = completed
            line.completed += advance
            if status is not None:
                line.status = status
            if line.total and line.completed >= line.total:
                self._finish(line, now)
            elif now - line.last_print >= self.interval:
                self._emit(line, now)

    def _beat(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0)):
            now = time.perf_counter()
            with self._lock:
                for line in self._bars:
                    if not line.done and now - line.last_print >= self.interval:
                        self._emit(line, now)

    def _finish(self, line: _Line, now: float) -> None:
        if line.done:
            return
        line.done = True
        if line.printed or not self.transient:
            self._emit(line, now)

    def _emit(self, line: _Line, now: float) -> None:
        line.last_print = now
        line.printed += 1
        with contextlib.suppress(OSError, ValueError):  # stderr closed (its reader went away)
            print(line.text(now), file=sys.stderr, flush=True)
