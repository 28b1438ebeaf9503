"""Build KB v2 = KB v1 (CPU proxy runs) + the two published NB201 sources. Resumable.

Run from the repository root: ``python kb/staging/build-v2.py [OUT.db]``. The published rows
import in seconds; the stand-in meta-features of MetaD2A's 3,031 tasks take ~10-20 min on
2 cores and are skipped when already present, so an interrupted run just continues.
"""

import shutil
import sys
from pathlib import Path

import metanas.api as api
from metanas.kb.catalog import resolve_kb

out = Path(sys.argv[1] if len(sys.argv) > 1 else "kb/staging/tinyimagenet-v2.db")
if not out.exists():
    shutil.copyfile(resolve_kb("tinyimagenet-v1"), out)
for name in ("nb201-imagenet16-120", "metad2a-imagenet32"):
    print(api.import_source(name, out, progress=True), flush=True)
