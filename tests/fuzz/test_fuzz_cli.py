"""The command line: bad inputs give exit code 2, one line on stderr and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _files(tmp_path):
    (tmp_path / "notes.txt").write_text("not a database\n" * 10)
    (tmp_path / "x.npz").write_bytes(b"PK\3\4 truncated")
    return tmp_path


CASES = [
    ["search", "--top", "abc"],
    ["search", "--no-such-option"],
    ["serch"],
    ["kb", "stats"],
    ["train", "-d", "digits", "--arch", "|none~0|" * 12_500],
    ["train", "-d", "digits", "--arch", A, "--seed", "9" * 30],
    ["kb", "stats", "{tmp}/notes.txt"],
    ["kb", "export", "{tmp}/notes.txt", "--csv", "{tmp}/e.csv"],
    ["search", "-d", "{tmp}/x.npz", "--method", "random"],
    ["search", "-d", "digits", "--checkpoint", "{tmp}/notes.txt"],
    ["search", "-d", "digits", "--method", "random", "--budget", "nan"],
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a)[:40])
def test_bad_command_lines_are_one_line_exit_2(tmp_path, args):
    folder = _files(tmp_path)
    argv = [a.replace("{tmp}", str(folder)) for a in args]
    env = {**os.environ, "METANAS_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "80"}
    res = subprocess.run([sys.executable, "-m", "metanas.cli", *argv], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr[-2000:]
    assert len(lines[0]) < 600
