"""Who may import whom: ``shared`` depends on no component (``versions`` included), no component depends on the CLI, and
the installed package never needs the development tooling (``devtools``, ``bench``, ``tests``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("versions", "stream", "serving", "trainer", "demo")


def imported_modules(folder: str) -> list[tuple[str, str, bool]]:
    """(module file, imported module, at module level) for every import under ``folder``."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(ROOT)), name, id(node) in top_level) for name in names]
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_shared_depends_on_no_component_and_not_on_the_cli():
    bad = [(f, n) for f, n, _ in imported_modules("shared")
           if any(_under(n, f"learnrec.{p}") for p in (*COMPONENTS, "cli"))]
    assert not bad, bad


@pytest.mark.parametrize("folder", [*COMPONENTS, "shared", "learnrec"])
def test_no_component_imports_the_cli(folder):
    bad = [(f, n) for f, n, _ in imported_modules(folder) if _under(n, "learnrec.cli")]
    assert not bad, bad


@pytest.mark.parametrize("folder", ["learnrec", "cli", "shared", *COMPONENTS])
def test_the_installed_package_imports_no_development_tooling_at_load(folder):
    bad = [(f, n) for f, n, top in imported_modules(folder)
           if top and any(_under(n, tool) for tool in ("devtools", "bench", "tests"))]
    assert not bad, bad


def test_every_import_of_the_project_goes_through_the_learnrec_namespace():
    old = [(f, n) for folder in ("learnrec", "cli", "shared", *COMPONENTS, "devtools", "bench", "tests")
           for f, n, _ in imported_modules(folder) if n.split(".")[0] in ("shared", "cli", *COMPONENTS)]
    assert not old, old
