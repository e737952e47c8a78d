"""The publish gate: scores both versions on held-back events and holds a worse candidate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learnrec.trainer.content import ContentTable
from learnrec.trainer.gate import decide, not_worse, recall_at_k
from learnrec.versions.towers import LoadedVersion, VersionInfo
from tests.serving_support import export_tiny_version

DIM, N = 8, 20


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """20 items; each example's target is the item nearest to its one-item history. The good
    version ranks by cosine (target first); the bad one projects on one axis (ties)."""
    rng = np.random.default_rng(0)
    content = rng.standard_normal((N, DIM)).astype(np.float32)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    table = ContentTable(DIM)
    table.update([f"i{k}" for k in range(N)], content)
    sims = content @ content.T - 2 * np.eye(N)
    examples = [([f"i{k}"], f"i{int(sims[k].argmax())}") for k in range(N)]
    folder = tmp_path_factory.mktemp("versions")
    rank_one = np.zeros((DIM, DIM), np.float32)
    rank_one[0, 0] = 1.0
    versions = {}
    for name, weight in (("good", np.eye(DIM, dtype=np.float32)), ("bad", rank_one)):
        path = export_tiny_version(folder, name, weight)
        meta = json.loads((path / "meta.json").read_text())
        versions[name] = LoadedVersion(VersionInfo(path=path, **{k: meta[k] for k in VersionInfo.__dataclass_fields__ if k in meta}))
    return table, examples, versions


def test_recall_on_held_back_events(world):
    table, examples, versions = world
    assert recall_at_k(versions["good"], examples, table, k=1) == 1.0
    # two tied groups of about ten items (the sign of one coordinate): ties count against
    assert recall_at_k(versions["bad"], examples, table, k=10) < 0.5


def test_a_worse_candidate_is_held_and_a_better_one_published(world):
    table, examples, v = world
    held = decide(v["bad"], v["good"], examples, table, tolerance=0.01, min_events=5)
    assert not held.published and held.candidate_recall < 0.5 and held.current_recall == 1.0
    assert held.events == N and "noise" in held.reason
    assert decide(v["good"], v["bad"], examples, table, tolerance=0.01, min_events=5).published


def test_forced_first_and_thin_evidence_publish_without_scoring(world):
    table, examples, v = world
    forced = decide(v["bad"], v["good"], examples, table, 0.01, 5, forced=True)
    assert forced.published and forced.reason == "forced" and forced.candidate_recall is None
    assert decide(v["bad"], None, examples, table, 0.01, 5).reason == "no current version"
    thin = decide(v["bad"], v["good"], examples[:3], table, 0.01, 5)
    assert thin.published and thin.reason == "too few held-back events"


def test_only_a_drop_beyond_the_noise_holds():
    theirs = np.ones(400, bool)
    theirs[::4] = False  # Recall .75
    two_fewer = theirs.copy()
    two_fewer[[1, 2]] = False  # .745: inside the noise of 400 events
    assert not_worse(two_fewer, theirs, tolerance=0.0)[0]
    many_fewer = theirs.copy()
    many_fewer[1:120] = False  # about .55: a real drop
    passed, difference, margin = not_worse(many_fewer, theirs, tolerance=0.01)
    assert not passed and difference < -0.15 and 0 < margin < 0.1
    assert not_worse(theirs, theirs, tolerance=0.0) == (True, 0.0, 0.0)
