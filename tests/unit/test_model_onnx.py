"""ONNX export: files, meta, dynamic shapes, and agreement with torch (<= 1e-4 in fp32)."""

import json
import re

import numpy as np
import onnxruntime as ort
import pytest
import torch

from shared.model.onnx_export import export_version, new_version_id
from shared.model.towers import LearnConfig, LearnModel


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(1)
    model = LearnModel(LearnConfig(content_dim=20, model_dim=32, output_dim=16, max_len=10)).eval()
    version = new_version_id()
    out = tmp_path_factory.mktemp("models") / version
    meta = export_version(model, out, {"encoder": "tiny"})
    return model, out, meta


def test_version_id_format():
    assert re.fullmatch(r"v\d{14}-[0-9a-f]{6}", new_version_id())


def test_meta(exported):
    _, out, meta = exported
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk == meta
    assert meta["version"] == out.name and meta["encoder"] == "tiny"
    assert (meta["content_dim"], meta["output_dim"], meta["max_history"]) == (20, 16, 10)
    assert {"created_at", "source"} <= set(meta)


def test_refuses_existing_folder(exported):
    model, out, _ = exported
    with pytest.raises(FileExistsError):
        export_version(model, out, {"encoder": "tiny"})


@pytest.mark.parametrize("batch,seq", [(1, 1), (5, 7), (3, 10)])
def test_user_tower_agrees_with_torch(exported, batch, seq):
    model, out, _ = exported
    rng = np.random.default_rng(batch * seq)
    content = rng.standard_normal((batch, seq, 20)).astype(np.float32)
    lengths = rng.integers(1, seq + 1, size=batch)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    sess = ort.InferenceSession(str(out / "user_tower.onnx"), providers=["CPUExecutionProvider"])
    (got,) = sess.run(["user_vector"], {"content": content, "mask": mask})
    with torch.no_grad():
        want = model.user_tower(torch.from_numpy(content), torch.from_numpy(mask)).numpy()
    assert got.shape == (batch, 16)
    assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("batch", [1, 9])
def test_item_tower_agrees_with_torch(exported, batch):
    model, out, _ = exported
    content = np.random.default_rng(batch).standard_normal((batch, 20)).astype(np.float32)
    sess = ort.InferenceSession(str(out / "item_tower.onnx"), providers=["CPUExecutionProvider"])
    (got,) = sess.run(["item_vector"], {"content": content})
    with torch.no_grad():
        want = model.item_tower(torch.from_numpy(content)).numpy()
    assert got.shape == (batch, 16)
    assert np.abs(got - want).max() <= 1e-4
