"""What a wheel ships: every shipped asset (checkpoints, the KB catalog and its files) must be
matched by pyproject's package-data globs, or a non-editable install silently loses it."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "metanas"


def test_every_asset_is_in_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["metanas"]
    assets = [p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "assets").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts]
    assert assets, "no assets found"
    missing = [a for a in assets if not any(fnmatch.fnmatch(a, g) and a.count("/") == g.count("/")
                                            for g in globs)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
