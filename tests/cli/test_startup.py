"""Commands that need no tensors start without importing torch (``metanas --help`` < 0.5 s)."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import json, sys
from typer.testing import CliRunner
import metanas.cli
runner = CliRunner()
report = {}
for args in json.loads(sys.argv[1]):
    res = runner.invoke(metanas.cli.app, args)
    report[" ".join(args)] = [res.exit_code, "torch" in sys.modules]
print(json.dumps(report))
"""

COMMANDS = [["--help"], ["search", "--help"], ["methods"], ["datasets"], ["kb", "list"],
            ["space", "info"]]


def test_commands_without_tensors_do_not_import_torch():
    proc = subprocess.run([sys.executable, "-c", CHECK, json.dumps(COMMANDS)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {" ".join(args): [0, False] for args in COMMANDS}


def test_package_attributes_import_the_api_on_first_use():
    """The API imports torch only in the functions that need tensors."""
    code = ("import sys, metanas; assert 'metanas.api' not in sys.modules; "
            "from metanas import search; assert 'metanas.api' in sys.modules; "
            "assert 'torch' not in sys.modules; "
            "assert search is metanas.api.search and 'search' in dir(metanas); "
            "metanas.api.methods(); metanas.api.datasets(); metanas.api.kb_list(); "
            "assert 'torch' not in sys.modules; metanas.api.TrainResult; "
            "assert 'torch' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
