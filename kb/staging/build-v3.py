"""Build KB v3 = combined-v2 + the Omniglot-background tasks (session 13's build) and pack it
as ``combined-v3``. Rerunnable: the merge skips what the output holds already.

Run from the repository root: ``python kb/staging/build-v3.py [--default]``. Needs the
Omniglot snapshot decompressed (``xz -dc kb/staging/omniglot-bg-v1.db.xz >
runs/omniglot-bg-v1.db``; its checksum is in the ``.sha256`` beside it).
"""

import os
import shutil
import sys
from pathlib import Path

import metanas.api as api
from metanas.kb import pack_kb
from metanas.kb.catalog import resolve_kb

out = Path("runs/combined-v3.db")
if not out.exists():  # copied whole or not at all, so a rerun never resumes a torn copy
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resolve_kb("combined-v2"), out.with_suffix(".part"))
    os.replace(out.with_suffix(".part"), out)
print(api.kb_merge(out, ["runs/omniglot-bg-v1.db"]), flush=True)
print(pack_kb(out, "combined-v3", make_default="--default" in sys.argv, description=(
    "combined-v2 + 40 Omniglot-background tasks (20-200 way, 13 images per class, 28 px, "
    "cpu-proxy 6 epochs); docs/knowledge_base.md")))
