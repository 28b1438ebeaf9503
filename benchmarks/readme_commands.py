"""Run every command of README.md's CLI tour as written and tabulate return code and seconds.

    python benchmarks/readme_commands.py            # all of them (tens of minutes on 2 cores)
    python benchmarks/readme_commands.py --fast     # only the quick ones (what CI runs)

The commands run one after the other in one fresh temporary folder (later commands use what
earlier ones wrote, as a reader following the tour would), with ``../shared`` linked to the
repository's ``../shared`` when it exists; without it the commands that name ``../shared`` are
skipped. ``metanas`` is the one next to this Python. Exits 1 when a command fails or times out.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOUR_HEADING = "## CLI tour"

SLOW = (
    # What takes more than ~20 s on the 2-core CPU (substrings of the commands).
    "--train",
    "metanas fit",
    "--method rea",
    "--method base",
    "--method fisher-nearest",
    "metanas bench",
    "metanas kb build",
    "metanas meta-train",
    "metanas validate",
    "kb import-table",
    "kb import-source",
)
WRITES_KB = ("kb build", "kb import-table", "kb import-source", "kb merge")
"""Commands that create ``kb.db``; the others naming it need it to exist."""


@dataclass
class Outcome:
    command: str
    status: str  # ok | FAIL | TIMEOUT | skipped: <why>
    rc: int | None = None
    seconds: float = 0.0
    tail: str = ""


def tour_commands(readme: Path = REPO / "README.md") -> list[str]:
    """The commands of the bash blocks in README's CLI tour section, comments dropped and
    ``\\`` continuations joined."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(TOUR_HEADING)
    nxt = text.find("\n## ", start + len(TOUR_HEADING))
    section = text[start: nxt if nxt != -1 else len(text)]
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def is_slow(command: str) -> bool:
    return any(s in command for s in SLOW)


def run_tour(commands: list[str], *, fast: bool, timeout: float, shared: Path | None,
             keep: bool = False, echo: bool = True) -> list[Outcome]:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    root = Path(tempfile.mkdtemp(prefix="metanas-tour-"))
    work = root / "tour"
    work.mkdir()
    if shared is not None:
        (root / "shared").symlink_to(shared.resolve(), target_is_directory=True)
    outcomes: list[Outcome] = []
    for cmd in commands:
        needs_kb = "kb.db" in cmd and not any(w in cmd for w in WRITES_KB)
        if "../shared" in cmd and shared is None:
            outcomes.append(Outcome(cmd, "skipped: no ../shared"))
        elif fast and is_slow(cmd):
            outcomes.append(Outcome(cmd, "skipped: slow"))
        elif needs_kb and not (work / "kb.db").exists():
            outcomes.append(Outcome(cmd, "skipped: no kb.db (the tour's kb build)"))
        else:
            outcomes.append(_run(cmd, work, env, timeout))
        if echo:
            o = outcomes[-1]
            print(f"[{len(outcomes)}/{len(commands)}] {o.status:<8} {o.seconds:7.1f} s  "
                  f"{_short(cmd, 90)}", file=sys.stderr, flush=True)
    if keep:
        print(f"kept {work}", file=sys.stderr)
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return outcomes


def _run(cmd: str, cwd: Path, env: dict[str, str], timeout: float) -> Outcome:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(shlex.split(cmd), cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        return Outcome(cmd, "TIMEOUT", None, time.perf_counter() - t0, tail[-2000:])
    seconds = time.perf_counter() - t0
    status = "ok" if proc.returncode == 0 else "FAIL"
    return Outcome(cmd, status, proc.returncode, seconds,
                   (proc.stdout[-1000:] + proc.stderr[-2000:]) if status != "ok" else "")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(outcomes: list[Outcome], width: int = 100) -> str:
    rows = [f"{'command':<{width}}  {'rc':>4}  {'seconds':>8}  status"]
    for o in outcomes:
        rc = "-" if o.rc is None else str(o.rc)
        rows.append(f"{_short(o.command, width):<{width}}  {rc:>4}  {o.seconds:8.1f}  {o.status}")
    return "\n".join(rows)


def failed(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status in ("FAIL", "TIMEOUT")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="only the commands that take "
                        "< ~20 s (the slow ones are listed in SLOW in this script)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per command (default 120 with --fast, else 1800)")
    parser.add_argument("--only", default=None, help="only commands containing this text")
    parser.add_argument("--no-shared", action="store_true",
                        help="behave as on a machine without ../shared")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    commands = tour_commands()
    if args.only:
        commands = [c for c in commands if args.only in c]
    if args.list:
        for c in commands:
            print(("[slow] " if is_slow(c) else "       ") + c)
        return 0
    shared = None if args.no_shared else REPO.parent / "shared"
    if shared is not None and not shared.is_dir():
        shared = None
    timeout = args.timeout or (120.0 if args.fast else 1800.0)
    outcomes = run_tour(commands, fast=args.fast, timeout=timeout, shared=shared,
                        keep=args.keep)
    print(format_table(outcomes))
    bad = failed(outcomes)
    for o in bad:
        print(f"\n--- {o.status}: {o.command}\n{o.tail.rstrip()}", file=sys.stderr)
    print(f"\n{len(outcomes) - len(bad)} of {len(outcomes)} ok or skipped, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
