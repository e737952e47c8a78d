"""ONNX export: files, meta, dynamic shapes, and agreement with torch (<= 1e-4 in fp32)."""

import json
import re

import numpy as np
import onnxruntime as ort
import pytest
import torch

from learnrec.shared.model.onnx_export import export_version, new_version_id
from learnrec.shared.model.towers import LearnConfig, LearnModel

ID_ITEMS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A hybrid model whose last ID row has no item (rows beyond ``id_items`` are not exported)."""
    torch.manual_seed(1)
    model = LearnModel(LearnConfig(content_dim=20, model_dim=32, output_dim=16, max_len=10, id_rows=5, id_scale=3.0)).eval()
    with torch.no_grad():
        model.id_table.normal_()
    version = new_version_id()
    out = tmp_path_factory.mktemp("models") / version
    meta = export_version(model, out, {"encoder": "tiny"}, id_items=ID_ITEMS)
    return model, out, meta


def _loaded(out):
    from learnrec.versions.towers import LoadedVersion, VersionInfo

    meta = json.loads((out / "meta.json").read_text())
    fields = {k: meta[k] for k in VersionInfo.__dataclass_fields__ if k in meta}
    return LoadedVersion(VersionInfo(path=out, **fields))


def _id_vectors(model, names):
    rows = torch.tensor([ID_ITEMS.index(n) if n in ID_ITEMS else -1 for n in names])
    return model.id_vectors(rows)


def test_version_id_format():
    assert re.fullmatch(r"v\d{14}-[0-9a-f]{6}", new_version_id())


def test_meta(exported):
    _, out, meta = exported
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk == meta
    assert meta["version"] == out.name and meta["encoder"] == "tiny"
    assert (meta["content_dim"], meta["output_dim"], meta["max_history"]) == (20, 16, 10)
    assert (meta["id_dim"], meta["id_rows"]) == (32, 4)
    assert json.loads((out / "id_items.json").read_text()) == ID_ITEMS
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
    names = [[str(rng.choice(ID_ITEMS + ["new"])) for _ in range(n)] for n in lengths]
    got = _loaded(out).user_vectors(content, mask, names)
    padded = [row + ["pad"] * (seq - len(row)) for row in names]
    with torch.no_grad():
        ids = torch.stack([_id_vectors(model, row) for row in padded])
        want = model.user_tower(torch.from_numpy(content), torch.from_numpy(mask), ids).numpy()
    assert got.shape == (batch, 16)
    assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("batch", [1, 9])
def test_item_tower_agrees_with_torch(exported, batch):
    model, out, _ = exported
    content = np.random.default_rng(batch).standard_normal((batch, 20)).astype(np.float32)
    names = [(ID_ITEMS + ["new"])[i % 5] for i in range(batch)]
    got = _loaded(out).item_vectors(content, names)
    with torch.no_grad():
        want = model.item_tower(torch.from_numpy(content), _id_vectors(model, names)).numpy()
    assert got.shape == (batch, 16)
    assert np.abs(got - want).max() <= 1e-4


def test_a_content_only_model_takes_no_item_ids(tmp_path):
    model = LearnModel(LearnConfig(content_dim=20, model_dim=32, output_dim=16, item_ids="none")).eval()
    out = tmp_path / new_version_id()
    assert export_version(model, out, {"encoder": "tiny"})["id_dim"] == 0
    assert not (out / "id_table.npy").exists()
    sess = ort.InferenceSession(str(out / "item_tower.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["content"]
    content = np.random.default_rng(0).standard_normal((3, 20)).astype(np.float32)
    with torch.no_grad():
        want = model.item_tower(torch.from_numpy(content)).numpy()
    assert np.abs(_loaded(out).item_vectors(content) - want).max() <= 1e-4


def test_a_whitened_model_exports_its_whitening(tmp_path):
    torch.manual_seed(2)
    model = LearnModel(LearnConfig(content_dim=20, model_dim=32, output_dim=16, item_ids="none", whiten_content=True))
    rng = np.random.default_rng(3)
    catalogue = rng.standard_normal((200, 20)).astype(np.float32) + 2.0
    model.fit_whitening(catalogue)
    model.eval()
    out = tmp_path / new_version_id()
    export_version(model, out, {"encoder": "tiny"})
    content, mask = catalogue[:6].reshape(2, 3, 20), np.ones((2, 3), dtype=np.int64)
    with torch.no_grad():
        items = model.item_tower(torch.from_numpy(catalogue[:6])).numpy()
        users = model.user_tower(torch.from_numpy(content), torch.from_numpy(mask)).numpy()
    assert np.abs(_loaded(out).item_vectors(catalogue[:6]) - items).max() <= 1e-4
    assert np.abs(_loaded(out).user_vectors(content, mask) - users).max() <= 1e-4


def test_a_blended_model_exports_its_served_vectors(tmp_path):
    """With a content blend the towers export the served vectors: the towers' output, then the
    content part; their dot products are what the offline scorer ranks by."""
    torch.manual_seed(3)
    model = LearnModel(LearnConfig(content_dim=20, model_dim=32, output_dim=16, max_len=10, id_rows=4,
                                   content_blend=0.4)).eval()
    with torch.no_grad():
        model.id_table.normal_()
    out = tmp_path / new_version_id()
    meta = export_version(model, out, {"encoder": "tiny"}, id_items=ID_ITEMS)
    assert (meta["output_dim"], meta["content_blend"]) == (16 + 20, 0.4)
    rng = np.random.default_rng(4)
    content, mask = rng.standard_normal((3, 5, 20)).astype(np.float32), np.ones((3, 5), dtype=np.int64)
    mask[0, 2:] = 0
    names = [["a", "new", "b", "c", "d"]] * 3
    items = rng.standard_normal((6, 20)).astype(np.float32)
    item_names = ["a", "b", "new", "c", "d", "new"]
    with torch.no_grad():
        ids = torch.stack([_id_vectors(model, row) for row in names])
        users = model.served_user(torch.from_numpy(content), torch.from_numpy(mask), ids).numpy()
        vectors = model.served_item(torch.from_numpy(items), _id_vectors(model, item_names)).numpy()
    version = _loaded(out)
    assert np.abs(version.user_vectors(content, mask, names) - users).max() <= 1e-4
    assert np.abs(version.item_vectors(items, item_names) - vectors).max() <= 1e-4

