"""A version's files travel through Redis: a second host (its own model folder, no access to the
publisher's) loads the same towers, checked against the manifest; corrupt files are refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from learnrec.shared.model.onnx_export import export_version
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions import files
from learnrec.versions.registry import ModelRegistry, VersionError

pytestmark = pytest.mark.integration

ID_ITEMS = ["a", "b", "c", "d"]


@pytest.fixture
def published(settings, redis_client, tmp_path):
    """A hybrid version exported on "host A" and registered there; returns (version, content)."""
    torch.manual_seed(0)
    model = LearnModel(LearnConfig(content_dim=20, model_dim=32, output_dim=16, max_len=10, id_rows=5)).eval()
    folder = tmp_path / "host-a" / "v-files"
    export_version(model, folder, {"encoder": "tiny", "version": "v-files"}, id_items=ID_ITEMS)
    host_a = ModelRegistry(redis_client, RedisKeys.from_settings(settings), tmp_path / "host-a")
    version = host_a.register(folder).version
    content = np.random.default_rng(0).normal(size=(4, 20)).astype(np.float32)
    return host_a, version, content


def _host_b(settings, redis_client, tmp_path) -> ModelRegistry:
    return ModelRegistry(redis_client, RedisKeys.from_settings(settings), tmp_path / "host-b")


def test_a_host_without_the_folder_loads_the_same_towers(settings, redis_client, tmp_path, published):
    host_a, version, content = published
    expected = host_a.load_version(version).item_vectors(content, ID_ITEMS)
    shutil.rmtree(host_a.info(version).path)  # host B could never see it anyway
    host_b = _host_b(settings, redis_client, tmp_path)
    loaded = host_b.load_version(version)
    assert loaded.info.path == tmp_path / "host-b" / version
    np.testing.assert_array_equal(loaded.item_vectors(content, ID_ITEMS), expected)
    meta = redis_client.hgetall(RedisKeys.from_settings(settings).model_meta(version))
    manifest = json.loads(meta[b"files"])
    assert {"item_tower.onnx", "user_tower.onnx", "meta.json", "id_table.npy", "id_items.json"} <= set(manifest)
    assert meta[b"digest"].decode() == files.digest_of(manifest)


def test_a_corrupt_file_in_redis_is_refused_and_a_corrupt_local_copy_fetched_again(settings, redis_client, tmp_path,
                                                                                   published):
    host_a, version, content = published
    shutil.rmtree(host_a.info(version).path)
    host_b = _host_b(settings, redis_client, tmp_path)
    expected = host_b.load_version(version).item_vectors(content, ID_ITEMS)
    cached = tmp_path / "host-b" / version / "id_table.npy"
    cached.write_bytes(cached.read_bytes()[:-4] + b"\0\0\0\0")  # a damaged local copy: fetched again
    np.testing.assert_array_equal(host_b.load_version(version).item_vectors(content, ID_ITEMS), expected)

    shutil.rmtree(tmp_path / "host-b" / version)
    key = RedisKeys.from_settings(settings).model_files(version)
    chunk = redis_client.hget(key, "item_tower.onnx#0")
    redis_client.hset(key, "item_tower.onnx#0", chunk[:-1] + bytes([chunk[-1] ^ 1]))
    with pytest.raises(VersionError, match="item_tower.onnx does not match its SHA-256"):
        host_b.load_version(version)
    redis_client.hdel(key, "item_tower.onnx#0")
    with pytest.raises(VersionError, match="item_tower.onnx is missing"):
        host_b.load_version(version)


def test_a_large_file_travels_in_several_chunks(redis_client, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "CHUNK_BYTES", 1000)
    source, copy = tmp_path / "source", tmp_path / "copy"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "table.bin").write_bytes(np.random.default_rng(1).bytes(4500))
    (source / "empty.txt").write_bytes(b"")
    (source / "index").mkdir()
    (source / "index" / "snapshot.bin").write_bytes(b"host-local")
    key = "learnrec-test-files:chunks"
    try:
        manifest = files.upload(redis_client, key, source)
        assert manifest["sub/table.bin"]["chunks"] == 5 and manifest["empty.txt"]["chunks"] == 1
        assert "index/snapshot.bin" not in manifest  # a serving host's own index snapshot stays local
        files.materialise(redis_client, key, manifest, copy)
        assert (copy / "sub" / "table.bin").read_bytes() == (source / "sub" / "table.bin").read_bytes()
        assert files.matches(copy, manifest) and (copy / "empty.txt").read_bytes() == b""
    finally:
        redis_client.delete(key)


def test_discarding_a_version_deletes_its_files_in_redis_and_the_cached_copies(settings, redis_client, tmp_path,
                                                                               published):
    host_a, version, _ = published
    shutil.rmtree(host_a.info(version).path)
    host_b = _host_b(settings, redis_client, tmp_path)
    host_b.load_version(version)
    host_b.discard(version)
    keys = RedisKeys.from_settings(settings)
    assert not redis_client.exists(keys.model_files(version), keys.model_meta(version))
    assert not (tmp_path / "host-b" / version).exists()
