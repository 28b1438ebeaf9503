"""Hostile inputs through the command line, each judged handled or not (issue 16's sweep).

    python benchmarks/hostile_inputs.py                  # every case, ~3-6 min on 2 cores
    python benchmarks/hostile_inputs.py --only checkpoint --out /tmp/h

Every case the issue's sweep reported as not handled is rebuilt here (the files in a temporary
folder), plus neighbours of each. A case is *handled* when the command exits with the expected
code (2 for bad input), a failing command's stderr ends in exactly one ``error:`` line, no
traceback is printed, the process's peak RSS stays under 500 MB, it finishes within its time
limit, and the files it must not touch are intact (no ``-wal``/``-shm`` beside a knowledge
base that was only read, no knowledge base deleted by a concurrent build). The peak RSS is the
child's own (``os.wait4``). Writes ``hostile_inputs.json`` (one row per case) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from safetensors import safe_open
from safetensors.torch import save_file

from metanas.jsonio import write_json
from metanas.paths import assets_dir

MAX_RSS_MB = 500
A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@dataclass
class Case:
    group: str
    name: str
    argv: list[str]
    rc: int | tuple[int, ...] = 2
    """The exit code(s) that count as handled."""
    timeout: float = 120.0
    after: Callable[[int], str | None] | None = None
    """Checked once the command ended, given its exit code: None when intact, else what is
    wrong."""
    env: dict[str, str] = field(default_factory=dict)
    needle: str | None = None
    """Text the error line must contain (the option or file at fault), so a case does not pass
    on an unrelated error."""


def run(argv: list[str], timeout: float, env: dict[str, str]) -> dict:
    """Run ``metanas ARGV``: exit code, stderr, the child's own peak RSS (``os.wait4``), seconds."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "metanas.cli", *argv],
                                stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "OMP_NUM_THREADS": "1", **env})
        deadline = t0 + timeout
        status = rusage = None
        while time.perf_counter() < deadline:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            proc.kill()
            _, status, rusage = os.wait4(proc.pid, 0)
            status = None
        proc.returncode = 0  # reaped here; keep Popen from waiting again
        err.seek(0)
        text = err.read().decode(errors="replace")
    rc = None if status is None else os.waitstatus_to_exitcode(status)
    return {"rc": rc, "stderr": text, "rss_mb": rusage.ru_maxrss / 1024,
            "seconds": time.perf_counter() - t0}


def judge(case: Case, got: dict) -> str | None:
    """None when handled, else the first thing that was not."""
    lines = [ln for ln in got["stderr"].splitlines() if ln.strip()]
    if got["rc"] is None:
        return f"still running after {case.timeout:g} s"
    if "Traceback" in got["stderr"]:
        return "traceback"
    if got["rc"] not in (case.rc if isinstance(case.rc, tuple) else (case.rc,)):
        return f"exit {got['rc']}, expected {case.rc}"
    if got["rc"] != 0:
        errors = [ln for ln in lines if ln.startswith("error:")]
        if len(errors) != 1 or not lines[-1].startswith("error:"):
            return f"{len(errors)} error lines, last line {lines[-1][:60] if lines else ''!r}"
        if len(lines[-1]) > 600:
            return f"error line of {len(lines[-1])} characters"
        if case.needle and case.needle.lower() not in lines[-1].lower():
            return f"the error does not name {case.needle!r}: {lines[-1][:80]!r}"
    if got["rss_mb"] > MAX_RSS_MB:
        return f"peak RSS {got['rss_mb']:.0f} MB"
    return case.after(got["rc"]) if case.after else None


# ---------------------------------------------------------------------------- the inputs


def npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def dataset_cases(d: Path) -> list[Case]:
    img = np.zeros((4, 8, 8), np.uint8)
    specs = {
        "label 2**40, no class names": npz(d / "big.npz", x=img[:2], y=np.array([0, 2**40])),
        "label 10**7": npz(d / "1e7.npz", x=img[:2], y=np.array([0, 10**7])),
        "negative label": npz(d / "neg.npz", x=img[:2], y=np.array([0, -3])),
        "object array": npz(d / "obj.npz", x=np.array([None, 1], object), y=np.array([0, 1])),
        "complex images": npz(d / "cx.npz", x=img.astype(np.complex64), y=np.arange(4) % 2),
        "x and y of other lengths": npz(d / "len.npz", x=img, y=np.array([0, 1])),
        "one class": npz(d / "one.npz", x=np.random.default_rng(0).integers(0, 255, (40, 8, 8),
                                                                             dtype=np.uint8),
                         y=np.zeros(40, int)),
        "1x1 px images": npz(d / "px1.npz", x=np.zeros((40, 1, 1), np.uint8), y=np.arange(40) % 2),
        "5-d images": npz(d / "5d.npz", x=np.zeros((4, 2, 2, 2, 2), np.uint8), y=np.arange(4) % 2),
    }
    (d / "trunc.npz").write_bytes(Path(specs["label 10**7"]).read_bytes()[:100])
    specs["truncated .npz"] = str(d / "trunc.npz")
    (d / "text.npz").write_text("not a zip")
    specs["text named .npz"] = str(d / "text.npz")
    with (zipfile.ZipFile(d / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf,  # ~400 KB on disk
          zf.open("a/0.png", "w", force_zip64=True) as member):
        for _ in range(400):
            member.write(bytes(1 << 20))
    specs["zip member inflating to 400 MB"] = str(d / "bomb.zip")
    with zipfile.ZipFile(d / "trav.zip", "w") as zf:
        zf.writestr("../../evil/0.png", b"x")
    specs["zip path traversal"] = str(d / "trav.zip")
    for kind in ("broken", "loop"):
        folder = d / f"{kind}-folder"
        for c in ("a", "b"):
            (folder / c).mkdir(parents=True)
        target = folder / "a" / "x.png" if kind == "loop" else d / "missing.png"
        (folder / "a" / "x.png").symlink_to(target)
        specs[f"ImageFolder with a {kind} symlink"] = str(folder)
    fifo = d / "fifo-folder"
    (fifo / "a").mkdir(parents=True)
    (fifo / "b").mkdir()
    os.mkfifo(fifo / "a" / "x.png")
    specs["ImageFolder with a FIFO"] = str(fifo)
    specs["missing file"] = str(d / "nope.npz")
    cases = [Case("dataset", name, ["search", "--dataset", spec, "--top", "1"])
             for name, spec in specs.items() if name != "1x1 px images"]
    # 1 px images are resized to the task's 16 px as digits' 8 px are; being constant, they
    # skip the zero-cost re-rank (documented): a ranking with finite scores, or a clear error
    out = d / "px1.json"
    cases.append(Case("dataset", "1x1 px images", ["search", "--dataset", specs["1x1 px images"],
                                                    "--json", str(out)], rc=(0, 2),
                      after=lambda rc: _finite_ranking(out) if rc == 0 else None))
    return cases


def _finite_ranking(path: Path) -> str | None:
    """After exit 0: the ranking must be there and finite (``--json`` writes NaN as null)."""
    if not path.exists():
        return "exit 0 without the --json ranking"
    scores = [c["score"] for c in json.loads(path.read_text())["candidates"]]
    finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in scores)
    return None if scores and finite else f"scores {scores[:3]}"


def option_cases(d: Path) -> list[Case]:
    s = ["search", "--dataset", "digits", "--top", "1"]
    cases = [Case("option", f"--seed {v}", [*s, "--seed", v], needle="seed")
             for v in (str(2**64), str(2**64 + 5), "-1", "1e3", "x" * 30)]
    cases += [Case("option", f"random --budget {v}", [*s, "--method", "random", "--budget", v],
                   timeout=60, needle="budget") for v in ("nan", "inf", "-1", "0", "1e400")]
    cases += [Case("option", f"value-net --set restarts={v}", [*s, "--set", f"restarts={v}"],
                   needle="restarts") for v in ("abc", "1.5", "-1", "0", "nan")]
    cases += [Case("option", f"{m} --set {kv}", [*s, "--method", m, "--set", kv],
                   needle=kv.split("=")[0])
              for m, kv in (("darts", "steps=abc"), ("darts", "steps=-4"), ("base", "resolutions=7"),
                            ("base", "resolutions=abc"), ("value-net", "bogus=1"),
                            ("value-net", "restarts"), ("value-net", "seed=1"),
                            ("value-net", f"restarts={'9' * 5000}"))]
    meta = ["meta-train", "--out", str(d / "meta.safetensors")]
    cases += [Case("option", f"meta-train {m} --set {kv}", [*meta, "--method", m, *kb, "--set", kv],
                   needle=needle)
              for m, kb, kv, needle in (
                  ("base", [], "resolutions=7", "resolution 7"),
                  ("base", [], "resolutions=abc", "resolutions"),
                  ("base", [], "meta_steps=1.5", "meta_steps"), ("base", [], "seed=1", "seed"),
                  ("base", [], "save_every=abc", "save_every"),
                  ("value-net", ["--kb", "default"], "epochs=abc", "epochs"),
                  ("value-net", ["--kb", "default"], "lr=nan", "lr"),
                  ("value-net", ["--kb", "default"], f"lr={'9' * 400}", "lr"),
                  ("value-net", ["--kb", "default"], "ensemble=0", "ensemble"),
                  ("value-net", ["--kb", "default"], "ensemble=100000", "ensemble"),
                  ("metad2a", ["--kb", "default"], "hidden=-3", "hidden"),
                  ("metad2a", ["--kb", "default"], "cache=abc", "cache"),
                  ("metad2a", ["--kb", "default"], "generator_sources=nowhere",
                   "generator_sources"),
                  ("metad2a", ["--kb", "default"], "predictor_sources=nowhere",
                   "predictor_sources"))]
    cases += [Case("option", "validate --folds 1", ["validate", "--kb", "default", "--folds", "1"],
                   needle="folds")]
    # sides an NB201 network cannot halve twice (session 17: tracebacks before)
    cases += [Case("option", label, argv, needle="divisible by 4") for label, argv in (
        ("zero-cost --resolution 5", ["zero-cost", "--dataset", "digits", "--sample", "2",
                                      "--resolution", "5"]),
        ("zero-cost method --set resolution=7", [*s, "--method", "zero-cost", "--set",
                                                 "resolution=7"]),
        ("value-net --set rerank_resolution=5", [*s, "--set", "rerank_resolution=5"]),
        ("--train --recipe cpu-proxy[resolution=30]", [*s, "--train", "--recipe",
                                                       "cpu-proxy[resolution=30]"]))]
    cases += [
        Case("option", "100 KB architecture", ["train", "--dataset", "digits", "--arch", "x" * 100_000]),
        Case("option", "architecture with an unknown op",
             ["train", "--dataset", "digits", "--arch", A.replace("nor_conv_3x3~0|+", "conv9~0|+", 1)]),
        Case("parse", "--top abc", [*s[:3], "--top", "abc"]),
        Case("parse", "unknown option", [*s, "--bogus"]),
        Case("parse", "unknown command", ["serch"]),
        Case("parse", "missing argument", ["train", "--dataset", "digits"]),
        Case("option", "unknown method", [*s, "--method", "nope"]),
        Case("option", "unknown recipe", [*s, "--train", "--recipe", "nope"]),
        Case("option", "--train-budget nan", [*s, "--train", "--train-budget", "nan"]),
        Case("option", "--device tpu", [*s, "--device", "tpu"]),
    ]
    return cases


def checkpoint_cases(d: Path) -> list[Case]:
    with safe_open(str(assets_dir() / "value_net.safetensors"), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        meta = dict(fh.metadata())
    config = json.loads(meta["config"])
    # one network's tensors are net.*, an ensemble's net.members.<i>.*
    bias = next(k for k in tensors if k.endswith("head.4.bias"))
    weight = next(k for k in tensors if k.endswith("task.0.weight"))
    variants = {
        "zero feature_std": ({**tensors, "feature_std": tensors["feature_std"] * 0}, meta),
        "NaN weights": ({**tensors, bias: tensors[bias] * math.nan}, meta),
        "declared hidden 15,000": (tensors, {**meta, "config": json.dumps({**config, "hidden": 15_000})}),
        "declared ensemble of 10**6": (
            tensors, {**meta, "config": json.dumps({**config, "ensemble": 10**6})}),
        "declared ensemble of 3, other count stored": (
            tensors, {**meta, "config": json.dumps({**config, "ensemble": 3})}),
        "newer metanas_version": (tensors, {**meta, "metanas_version": "99.0.0"}),
        "unparsable metanas_version": (tensors, {**meta, "metanas_version": "banana"}),
        "wrong feature shape": ({**tensors, "feature_mean": tensors["feature_mean"][:5]}, meta),
        'n_features="abc"': (tensors, {**meta, "n_features": "abc"}),
        "config not JSON": (tensors, {**meta, "config": "{bad"}),
        "foreign format tag": (tensors, {**meta, "format": "someone-else/1"}),
        "a tensor dropped": ({k: v for k, v in tensors.items() if k != weight}, meta),
    }
    cases = []
    for i, (name, (t, m)) in enumerate(variants.items()):
        path = d / f"vn{i}.safetensors"
        save_file(t, str(path), metadata=m)
        cases.append(Case("checkpoint", name, ["search", "--dataset", "digits", "--checkpoint", str(path)]))
    good = (assets_dir() / "value_net.safetensors").read_bytes()
    for name, data in (("truncated", good[: len(good) // 2]), ("text file", b"hello"),
                       ("header declaring 2**62 bytes", (2**62).to_bytes(8, "little") + b"{}"),
                       ("pickle payload", b"\x80\x04\x95cos\nsystem\n.")):
        path = d / f"{name.split()[0]}.safetensors"
        path.write_bytes(data)
        cases.append(Case("checkpoint", name, ["search", "--dataset", "digits", "--checkpoint", str(path)]))
    return cases


def small_kb(path: Path) -> Path:
    """A knowledge base of 3 tasks x 3 cells written by metanas itself, at rest (one file)."""
    from metanas.features.metafeatures import FEATURE_NAMES
    from metanas.kb import KnowledgeBase
    from metanas.spaces.nb201.genotype import NB201Arch

    cells = NB201Arch.sample_distinct(9, seed=0)
    with KnowledgeBase(path) as kb:
        for i in range(3):
            t = kb.add_task(f"{i}" * 64, name=f"t{i}", source="s", classes=[0, 1],
                            meta_features={n: float(i + k) for k, n in enumerate(FEATURE_NAMES)})
            for j in range(3):
                a = kb.add_architecture(cells[3 * i + j].to_string())
                kb.add_evaluation(t, a, recipe="r", recipe_hash="h", seed=0,
                                  metrics={"val_acc": 0.5 + j / 10, "test_acc": 0.4 + j / 10})
    return path


def kb_cases(d: Path) -> list[Case]:
    good = small_kb(d / "good.db")
    damage = {
        "damaged pages": lambda p: _poke(p, [(2048 + 97 * i, 0x5A) for i in range(60)]),
        "truncated": lambda p: p.write_bytes(p.read_bytes()[:3000]),
        "foreign column": lambda p: _sql(p, "ALTER TABLE evaluations ADD COLUMN foo TEXT"),
        "column dropped": lambda p: _sql(p, "ALTER TABLE evaluations DROP COLUMN seconds"),
        "bad JSON in meta_features": lambda p: _sql(p, "UPDATE tasks SET meta_features = '{bad'"),
        "text in test_acc": lambda p: _sql(p, "UPDATE evaluations SET test_acc = 'abc'"),
        "future schema version": lambda p: _sql(p, "PRAGMA user_version = 999"),
        "not SQLite": lambda p: p.write_text("hello"),
    }
    cases = []
    for i, (name, hurt) in enumerate(damage.items()):
        for command in (["kb", "stats"], ["kb", "export"], ["validate"]):
            path = d / f"kb{i}-{command[-1]}.db"
            shutil.copy(good, path)
            hurt(path)
            before = path.read_bytes()
            argv = ([*command, str(path), "--csv", str(d / f"e{i}.csv")] if command[-1] == "export"
                    else [*command, "--kb", str(path)] if command == ["validate"] else [*command, str(path)])
            tolerated = (0, 2) if name == "foreign column" else 2  # an added column may be read
            cases.append(Case("kb", f"{' '.join(command)}: {name}", argv, rc=tolerated,
                              after=lambda rc, p=path, b=before: _untouched(p, b)))
        # merged into a new file: the source untouched, no output left behind on an error
        path, target = d / f"kb{i}-merge.db", d / f"merged{i}.db"
        shutil.copy(good, path)
        hurt(path)
        cases.append(Case("kb", f"kb merge: {name}",
                          ["kb", "merge", str(path), "--kb", str(target)],
                          rc=(0, 2) if name == "foreign column" else 2,
                          after=lambda rc, p=path, b=path.read_bytes(), t=target: (
                              _untouched(p, b) or ("left the half-merged output behind"
                                                   if rc == 2 and t.exists() else None))))
    return cases


def _poke(path: Path, edits: list[tuple[int, int]]) -> None:
    data = bytearray(path.read_bytes())
    for offset, value in edits:
        data[offset % len(data)] = value
    path.write_bytes(bytes(data))


def _sql(path: Path, statement: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA ignore_check_constraints = ON")
    conn.execute(statement)
    conn.commit()
    conn.close()


def _untouched(path: Path, before: bytes) -> str | None:
    sidecars = [s for s in ("-wal", "-shm", "-journal", ".lock") if Path(f"{path}{s}").exists()]
    if sidecars:
        return f"left {', '.join(sidecars)} beside the file"
    return None if path.read_bytes() == before else "the file's bytes changed"


def race_cases(d: Path, tries: int) -> list[tuple[str, Callable[[], str | None]]]:
    """Build A (a bad --n-way) and build B (good) on one new file, B started 0.2 s after A."""
    build = ["kb", "build", "--source", "digits", "--tasks", "1", "--archs", "2", "--anchors", "1",
             "--resolutions", "16", "--recipe", "cpu-tiny", "--executor", "local"]

    def one(i: int, gap: float, bad_first: bool) -> str | None:
        db = d / f"race{i}.db"
        bad = [*build, "--n-way", "999", "--kb", str(db)]
        good = [*build, "--n-way", "4", "--kb", str(db)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        first, second = (bad, good) if bad_first else (good, bad)
        p1 = subprocess.Popen([sys.executable, "-m", "metanas.cli", *first], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(gap)
        p2 = subprocess.Popen([sys.executable, "-m", "metanas.cli", *second], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        outs = {id(first): p1.communicate(timeout=300), id(second): p2.communicate(timeout=300)}
        rc = {id(first): p1.returncode, id(second): p2.returncode}
        if rc[id(bad)] != 2:
            return f"the bad build exited {rc[id(bad)]}"
        if rc[id(good)] == 0:
            if not db.exists():
                return "the good build exited 0 and its file is gone"
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            n = conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
            dup = conn.execute("SELECT COUNT(*) - COUNT(DISTINCT task_id || '/' || arch_id || '/' "
                               "|| recipe_id || '/' || seed) FROM evaluations").fetchone()[0]
            conn.close()
            return None if n == 2 and dup == 0 else f"{n} evaluations, {dup} duplicates"
        lines = outs[id(good)][1].decode().strip().splitlines()
        return None if rc[id(good)] == 2 and lines and lines[-1].startswith("error:") else \
            f"the good build exited {rc[id(good)]}"

    return [(f"two builds, {'bad' if k % 2 == 0 else 'good'} first, {gap:g} s apart",
             lambda i=k, g=gap, b=k % 2 == 0: one(i, g, b))
            for k, gap in enumerate([0.2, 0.2, 0.0, 1.0, 3.0, 0.5][:tries])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--only", default="", help="Run only cases whose group or name contains this.")
    ap.add_argument("--races", type=int, default=6, help="Concurrent-build tries.")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        env = {"METANAS_CACHE_DIR": str(d / "cache")}
        cases = [*dataset_cases(d), *option_cases(d), *checkpoint_cases(d), *kb_cases(d)]
        cases = [c for c in cases if args.only in c.group or args.only in c.name]
        for i, case in enumerate(cases, 1):
            got = run(case.argv, case.timeout, {**env, **case.env})
            problem = judge(case, got)
            last = (got["stderr"].strip().splitlines() or [""])[-1]
            rows.append({"group": case.group, "case": case.name, "rc": got["rc"],
                         "rss_mb": round(got["rss_mb"], 1), "seconds": round(got["seconds"], 2),
                         "handled": problem is None, "problem": problem, "stderr_last": last[:300]})
            print(f"[{i}/{len(cases)}] {'ok ' if problem is None else 'BAD'} {case.group}: "
                  f"{case.name} ({got['rss_mb']:.0f} MB) {problem or last[:100]}", flush=True)
        if not args.only or args.only in "race":
            for name, check in race_cases(d, args.races):
                t0 = time.perf_counter()
                problem = check()
                rows.append({"group": "race", "case": name, "rc": None, "rss_mb": None,
                             "seconds": round(time.perf_counter() - t0, 2),
                             "handled": problem is None, "problem": problem, "stderr_last": ""})
                print(f"{'ok ' if problem is None else 'BAD'} race: {name} {problem or ''}", flush=True)
    show(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "hostile_inputs.json", {
        "cases": len(rows), "handled": sum(r["handled"] for r in rows),
        "max_rss_mb": max((r["rss_mb"] or 0) for r in rows), "rows": rows}, option="--out")
    print(f"wrote {out / 'hostile_inputs.json'}")


def show(rows: list[dict]) -> None:
    table = Table(title=f"hostile inputs: {sum(r['handled'] for r in rows)} of {len(rows)} handled")
    for col in ("group", "cases", "handled", "max peak RSS MB", "max seconds"):
        table.add_column(col)
    for group in dict.fromkeys(r["group"] for r in rows):
        g = [r for r in rows if r["group"] == group]
        table.add_row(group, str(len(g)), str(sum(r["handled"] for r in g)),
                      f"{max((r['rss_mb'] or 0) for r in g):.0f}", f"{max(r['seconds'] for r in g):.1f}")
    Console(width=120).print(table)
    for r in rows:
        if not r["handled"]:
            print(f"not handled: {r['group']}: {r['case']}: {r['problem']}")


if __name__ == "__main__":
    main()
