"""Regenerate search-digits.json: `python tests/cli/golden/make_golden.py [CASE ...]` (only
when a pick is meant to change; say why in the commit). Named cases are re-run and the others
kept as recorded; no names re-runs every case."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from test_golden import CASES, run_case  # noqa: E402

if __name__ == "__main__":
    path = HERE / "search-digits.json"
    names = sys.argv[1:] or list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        sys.exit(f"unknown case(s) {', '.join(unknown)}; cases: {', '.join(CASES)}")
    out = json.loads(path.read_text()) if sys.argv[1:] else {}
    for name in names:
        out[name] = run_case(CASES[name], Path("/tmp"))
        print(name, out[name]["architectures"][0], file=sys.stderr)
    path.write_text(json.dumps({n: out[n] for n in CASES}, indent=1) + "\n")
