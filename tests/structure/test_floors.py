"""The house's floors (docs/architecture.md): a module imports only from its own floor or the
floors below it, function-level imports included. A new upward arrow fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import metanas

FLOORS: list[set[str]] = [
    {"errors", "version", "paths", "jsonio", "figures", "safefiles", "progress", "threads"},  # 0 plumbing
    {"spaces", "data"},                                                # 1 what is searched, on what
    {"supernet", "tasks"},                                             # 2
    {"training", "kb"},                                                # 3 training; knowledge
    {"kb_build"},                                                      # 4 knowledge by training
    {"features"},                                                      # 5
    {"methods"},                                                       # 6
    {"bench"},                                                         # 7
    {"api"},                                                           # 8
    {"cli", "__init__"},                                               # 9 the shells
]
FLOOR = {name: i for i, names in enumerate(FLOORS) for name in names}
ROOT = Path(metanas.__file__).parent


def _package_of(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "metanas":
                out += [(node.lineno, a.name) for a in node.names]
            elif node.module.startswith("metanas."):
                out.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1]) for a in node.names
                    if a.name.startswith("metanas.")]
    return out


def test_every_package_has_a_floor():
    packages = {_package_of(p) for p in ROOT.rglob("*.py")}
    assert packages <= set(FLOOR), packages - set(FLOOR)


def test_no_module_imports_from_a_floor_above_it():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        own = FLOOR[_package_of(path)]
        for line, target in _imports(path):
            if target in FLOOR and FLOOR[target] > own:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports metanas.{target}")
    assert not upward, "\n".join(upward)


def test_the_cli_speaks_only_to_the_api():
    allowed = {"api", "errors", "version", "cli"}
    for path in (ROOT / "cli").rglob("*.py"):
        used = {t for _, t in _imports(path)}
        assert used <= allowed, (path.name, used - allowed)
