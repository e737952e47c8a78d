"""pyproject.toml installs every package folder of the repository, and only under ``learnrec``."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _installed_folders() -> dict[str, Path]:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    folders = {}
    for package in setuptools["packages"]:
        assert package.split(".")[0] == "learnrec", package
        parent = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len, default=None)
        if parent is None:
            folders[package] = ROOT / package.replace(".", "/")
        else:
            folders[package] = ROOT / mapping[parent] / package[len(parent) + 1:].replace(".", "/")
    return folders


def test_every_listed_package_is_a_folder_and_every_folder_is_listed():
    folders = _installed_folders()
    for package, folder in folders.items():
        assert (folder / "__init__.py").is_file(), f"{package}: no {folder}/__init__.py"
    roots = {folder for package, folder in folders.items() if package.count(".") <= 1}
    found = {init.parent for root in roots for init in root.rglob("__init__.py")
             if "__pycache__" not in init.parts}
    assert found == set(folders.values()), sorted(map(str, found ^ set(folders.values())))


def test_development_tooling_stays_out_of_the_package():
    folders = {folder.relative_to(ROOT).parts[0] for folder in _installed_folders().values()}
    assert folders == {"learnrec", "cli", "shared", "versions", "stream", "serving", "trainer", "demo"}
    assert "devtools" not in folders and "bench" not in folders and "tests" not in folders
