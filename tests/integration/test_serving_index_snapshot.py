"""A model version's index is built once: the first serving process saves it into the version's
folder, a later one loads it and catches up from the item-updates stream (real Redis)."""

from __future__ import annotations

import numpy as np
import pytest

from learnrec.serving import index_store
from learnrec.serving.index import ItemIndex
from learnrec.serving.versions import VersionHolder, VersionManager
from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions.registry import ModelRegistry
from tests.serving_support import export_tiny_version, put_items, unit

pytestmark = [pytest.mark.integration]

DIM = 8
VERSION = "v20260101000000-snapsh"


def _items(start: int, n: int, rng) -> tuple[list[str], np.ndarray]:
    return [f"i{k}" for k in range(start, start + n)], unit(rng.standard_normal((n, DIM)))


def _remove(redis_client, keys: RedisKeys, item_ids: list[str]) -> None:
    """As the item encoder removes items: out of the catalogue, vectors deleted, then announced."""
    for item_id in item_ids:
        redis_client.srem(keys.items(), item_id)
        redis_client.hdel(keys.vectors(VERSION), item_id)
        redis_client.xadd(keys.item_updates(), {"item_id": item_id, "removed": "1"})


def test_a_second_process_loads_the_snapshot_and_catches_up(settings, redis_client, monkeypatch) -> None:
    settings = settings.replace(serving_exact_below=50)
    keys = RedisKeys.from_settings(settings)
    rng = np.random.default_rng(0)
    ids, vectors = _items(0, 300, rng)
    put_items(redis_client, keys, ids, vectors, {VERSION: vectors})
    ModelRegistry.from_settings(settings, redis_client).register(
        export_tiny_version(settings.versions.model_dir, VERSION, np.eye(DIM, dtype=np.float32)))

    first = VersionManager(settings, redis_client, VersionHolder()).load(VERSION)
    assert first.index.approximate and len(first.index) == 300
    snapshot = settings.versions.model_dir / VERSION / index_store.FOLDER
    assert (snapshot / "graph.hnsw").exists() and (snapshot / "stream_id").exists()

    new_ids, new_vectors = _items(300, 20, rng)
    put_items(redis_client, keys, new_ids, new_vectors, {VERSION: new_vectors})
    _remove(redis_client, keys, ["i0", "i1", "i2"])

    def no_build(self) -> None:
        raise AssertionError("the graph was built again instead of loaded")

    monkeypatch.setattr(ItemIndex, "_build_hnsw", no_build)
    second = VersionManager(settings, redis_client, VersionHolder()).load(VERSION)
    assert second.index.approximate and len(second.index) == 317
    assert "i0" not in second.index and "i305" in second.index
    everything = np.concatenate([vectors[3:], new_vectors])
    everything_ids = ids[3:] + new_ids
    for row in (0, 150, 300):
        truth = [everything_ids[i] for i in np.argsort(-(everything @ everything[row]))[:5]]
        assert [i for i, _ in second.index.search(everything[row], 5)] == truth


def test_a_snapshot_older_than_the_trimmed_stream_is_not_used(settings, redis_client) -> None:
    settings = settings.replace(serving_exact_below=50)
    keys = RedisKeys.from_settings(settings)
    ids, vectors = _items(0, 100, np.random.default_rng(1))
    put_items(redis_client, keys, ids, vectors, {VERSION: vectors})
    ModelRegistry.from_settings(settings, redis_client).register(
        export_tiny_version(settings.versions.model_dir, VERSION, np.eye(DIM, dtype=np.float32)))
    VersionManager(settings, redis_client, VersionHolder()).load(VERSION)
    folder = settings.versions.model_dir / VERSION
    assert index_store.restore(redis_client, keys, folder, DIM) is not None

    more, more_vectors = _items(100, 5, np.random.default_rng(2))
    put_items(redis_client, keys, more, more_vectors, {VERSION: more_vectors})
    redis_client.xtrim(keys.item_updates(), maxlen=6, approximate=False)  # the snapshot's entry is oldest
    assert index_store.restore(redis_client, keys, folder, DIM) is not None
    redis_client.xtrim(keys.item_updates(), maxlen=2, approximate=False)  # entries after it are gone
    assert index_store.restore(redis_client, keys, folder, DIM) is None
    rebuilt = VersionManager(settings, redis_client, VersionHolder()).load(VERSION)
    assert len(rebuilt.index) == 105


def test_without_any_item_update_the_snapshot_is_used(settings, redis_client) -> None:
    settings = settings.replace(serving_exact_below=50)
    keys = RedisKeys.from_settings(settings)
    ids, vectors = _items(0, 100, np.random.default_rng(3))
    put_items(redis_client, keys, ids, vectors, {VERSION: vectors}, notify=False)
    ModelRegistry.from_settings(settings, redis_client).register(
        export_tiny_version(settings.versions.model_dir, VERSION, np.eye(DIM, dtype=np.float32)))
    VersionManager(settings, redis_client, VersionHolder()).load(VERSION)
    restored = index_store.restore(redis_client, keys, settings.versions.model_dir / VERSION, DIM)
    assert restored is not None and restored[1] == "0-0" and len(restored[0]) == 100
