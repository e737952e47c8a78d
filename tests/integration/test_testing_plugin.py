"""learnrec's pytest plugin, used as a project that installs learnrec would use it.

``test_a_published_item_gets_recommended`` uses the ``learnrec`` fixture here; the second test
builds learnrec as a wheel, installs it (alone, no dependencies) into a folder, and runs pytest
on a temporary project whose only test uses the plugin's fixtures, with that folder first on
the path and this repository nowhere on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cluster_helpers import recommends_a_lens_after_a_lens

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["learnrec", "cli", "shared", "versions", "stream", "serving", "trainer", "demo"]

PROJECT_TEST = '''
def test_a_new_item_is_recommended_to_a_user_who_clicked_its_neighbours(learnrec):
    print("learnrec from", learnrec.__class__.__module__, __import__("learnrec").__file__)
    for n, word in enumerate(["red", "blue", "green"]):
        learnrec.producer.publish_item({"item_id": f"mug-{word}", "title": f"coffee mug {word}"})
        learnrec.producer.publish_item({"item_id": f"tent-{n}", "title": f"camping tent {n}"})
    learnrec.producer.flush()
    for item_id in ["mug-red", "tent-0"]:
        learnrec.wait_until_servable(item_id)
    learnrec.producer.publish_interaction({"user_id": "ann", "item_id": "mug-red"})
    learnrec.producer.publish_interaction({"user_id": "ann", "item_id": "mug-blue"})
    learnrec.producer.flush()
    learnrec.wait_until_reflected("ann", "mug-blue")

    learnrec.producer.publish_item({"item_id": "mug-new", "title": "coffee mug white"})
    learnrec.producer.flush()
    learnrec.wait_until_servable("mug-new")
    answer = learnrec.client.for_user("ann", k=2)
    assert answer.source == "personal"
    assert set(answer.item_ids) == {"mug-green", "mug-new"}
'''


def test_a_published_item_gets_recommended(learnrec):
    recommends_a_lens_after_a_lens(learnrec)


@pytest.fixture(scope="module")
def installed_learnrec(tmp_path_factory) -> Path:
    """learnrec built from this checkout and installed alone into a folder."""
    source = tmp_path_factory.mktemp("source")
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return target


def test_installed_learnrec_is_one_top_level_package(installed_learnrec):
    names = {p.name for p in installed_learnrec.iterdir()} - {"bin"}
    assert {n for n in names if not n.endswith(".dist-info")} == {"learnrec"}, names
    inside = {p.name for p in (installed_learnrec / "learnrec").iterdir() if (p / "__init__.py").exists()}
    assert inside == {"cli", "client", "testing", "shared", "versions", "stream", "serving", "trainer", "demo"}, inside
    assert (installed_learnrec / "learnrec" / "shared" / "model" / "towers.py").is_file()


def test_a_project_that_installs_learnrec_uses_its_plugin(installed_learnrec, learnrec_servers, tmp_path):
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_with_learnrec.py").write_text(textwrap.dedent(PROJECT_TEST))
    kafka, redis_url = learnrec_servers
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(PYTHONPATH=str(installed_learnrec), KAFKA_BOOTSTRAP_SERVERS=kafka, REDIS_URL=redis_url,
               HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in output, output
    assert f"learnrec from learnrec.testing.stack {installed_learnrec}" in output, output
