"""The bootstrap (content-projected) towers obey the ONNX contract and compute what they say."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort

from learnrec.versions.bootstrap import (
    bootstrap_version_id,
    export_content_projected,
    projection_matrix,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_projection_is_orthogonal_and_seeded():
    w = projection_matrix(32, 8, seed=3)
    assert w.shape == (32, 8) and w.dtype == np.float32
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-5)
    np.testing.assert_array_equal(w, projection_matrix(32, 8, seed=3))
    assert not np.allclose(w, projection_matrix(32, 8, seed=4))
    wide = projection_matrix(4, 6, seed=0)
    assert wide.shape == (4, 6)
    np.testing.assert_allclose(wide @ wide.T, np.eye(4), atol=1e-5)


def test_version_id_is_stable_and_sorts_first():
    a = bootstrap_version_id("enc", 32, 8, 0)
    assert a == bootstrap_version_id("enc", 32, 8, 0)
    assert a != bootstrap_version_id("enc", 32, 8, 1)
    assert a < "v20240101000000-000000"


def test_exported_towers_match_the_numpy_math(tmp_path):
    folder = export_content_projected(tmp_path / "vboot", "enc", 32, 8, seed=1, max_history=5)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["version"] == "vboot" and meta["content_dim"] == 32 and meta["output_dim"] == 8
    w = projection_matrix(32, 8, seed=1)
    rng = np.random.default_rng(0)

    content = _unit(rng.standard_normal((3, 32)).astype(np.float32))
    item = ort.InferenceSession(str(folder / "item_tower.onnx"))
    (vectors,) = item.run(["item_vector"], {"content": content})
    np.testing.assert_allclose(vectors, _unit(content @ w), atol=1e-5)

    history = _unit(rng.standard_normal((2, 4, 32)).astype(np.float32))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], np.int64)
    user = ort.InferenceSession(str(folder / "user_tower.onnx"))
    (users,) = user.run(["user_vector"], {"content": history, "mask": mask})
    expected = np.stack([_unit(history[0, :2].mean(0) @ w), _unit(history[1].mean(0) @ w)])
    np.testing.assert_allclose(users, expected, atol=1e-5)
    assert users.shape == (2, 8)


def test_export_keeps_an_existing_folder(tmp_path):
    first = export_content_projected(tmp_path / "vboot", "enc", 16, 4, seed=0, max_history=5)
    stamp = (first / "meta.json").read_text()
    export_content_projected(tmp_path / "vboot", "enc", 16, 4, seed=0, max_history=5)
    assert (first / "meta.json").read_text() == stamp
