"""Regenerate search-digits.json: `python tests/cli/golden/make_golden.py` (only when a pick is
meant to change; say why in the commit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from test_golden import CASES, run_case  # noqa: E402

if __name__ == "__main__":
    out = {}
    for name, argv in CASES.items():
        out[name] = run_case(argv, Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp"))
        print(name, out[name]["architectures"][0], file=sys.stderr)
    (HERE / "search-digits.json").write_text(json.dumps(out, indent=1) + "\n")
