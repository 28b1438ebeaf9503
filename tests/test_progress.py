"""Progress output: rich bars on a terminal, plain lines when stderr is not one."""

from __future__ import annotations

import time

from metanas.progress import Bars


def test_lines_when_not_a_terminal(capsys):
    with Bars(True, lines=True, interval=0.05) as bars:
        bar = bars.add("rea search", 4)
        bars.advance(bar, status="best val 0.412")
        time.sleep(0.2)  # no advance: the heartbeat still prints (signs of life)
        for _ in range(3):
            bars.advance(bar, status="best val 0.5")
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("rea search: 1/4 (25%) ") and line.endswith(", best val 0.412")
               for line in lines), lines
    assert lines[-1].startswith("rea search: 4/4 (100%) ")
    assert sum("4/4" in line for line in lines) == 1  # the last state once


def test_lines_are_rate_limited_and_short_transient_bars_stay_quiet(capsys):
    with Bars(True, lines=True, interval=60, transient=True) as bars:
        bar = bars.add("train 3x3|3x3,pool|skip,3x3,skip (cpu-proxy)", 100)
        for _ in range(100):
            bars.advance(bar)
    assert capsys.readouterr().err == ""
    with Bars(True, lines=True, interval=60) as bars:  # not transient: its last state
        bar = bars.add("bench cells", 10)
        for _ in range(10):
            bars.advance(bar)
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_unbounded_bar_reports_its_count_at_the_end(capsys):
    with Bars(True, lines=True, interval=60) as bars:
        bar = bars.add("base adapt", None)
        for _ in range(5):
            bars.advance(bar, status="loss 1.234")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("base adapt: 5 done ") and line.endswith(", loss 1.234")


def test_disabled_prints_nothing(capsys):
    with Bars(False, lines=True, interval=0.01) as bars:
        bar = bars.add("x", 3)
        bars.set(bar, 2)
        bars.advance(bar)
    assert capsys.readouterr().err == ""


def test_advance_by_an_amount(capsys):
    with Bars(True, lines=True, interval=60) as bars:
        bar = bars.add("decoding images.zip", 1000)
        bars.advance(bar, amount=256)
        bars.advance(bar, amount=744)
    assert capsys.readouterr().err.startswith("decoding images.zip: 1000/1000 (100%) ")
