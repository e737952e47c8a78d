"""The model-version protocol on a real Redis: bootstrap, publish, the publish race, rollback, prune."""

from __future__ import annotations

import time

import numpy as np
import pytest

from learnrec.shared.redis_keys import RedisKeys
from learnrec.stream.item_encoder import content_hash
from learnrec.stream.item_store import EncodedItem, ItemStore
from learnrec.versions.bootstrap import ensure_current_version, export_content_projected
from learnrec.versions.cache import VersionCache
from learnrec.versions.registry import ModelRegistry, VersionError
from tests.stream_helpers import HashEncoder

pytestmark = pytest.mark.integration

DIM = 16


@pytest.fixture
def encoder():
    return HashEncoder(DIM)


@pytest.fixture
def registry(settings, redis_client):
    return ModelRegistry.from_settings(settings, redis_client)


@pytest.fixture
def store(settings, redis_client, registry, encoder):
    towers = VersionCache(registry, encoder.model_id, DIM)
    return ItemStore(redis_client, RedisKeys.from_settings(settings), towers, 1000)


def _item(encoder: HashEncoder, item_id: str, text: str) -> EncodedItem:
    return EncodedItem(item_id, {"title": text, "text": text}, content_hash(encoder.model_id, text), encoder.encode([text])[0])


def _new_version(settings, registry, encoder, name: str, seed: int) -> str:
    folder = export_content_projected(settings.versions.model_dir / name, encoder.model_id, DIM, 8, seed, max_history=5)
    return registry.register(folder).version


def _assert_every_item_has_its_vector(redis_client, settings, registry, encoder, version: str) -> None:
    """Every item in ``items`` has a vector under ``version`` equal to the tower applied to its
    stored content (so no stale vector survived)."""
    keys = RedisKeys.from_settings(settings)
    tower = registry.load_version(version)
    for raw in redis_client.smembers(keys.items()):
        item_id = raw.decode()
        content = np.frombuffer(redis_client.hget(keys.item(item_id), "content"), np.float32)
        stored = redis_client.hget(keys.vectors(version), item_id)
        assert stored is not None, f"{item_id} has no vector under {version}"
        np.testing.assert_allclose(np.frombuffer(stored, np.float32), tower.item_vectors(content[None])[0], atol=1e-6)


def test_bootstrap_publishes_a_content_projected_version(settings, registry, encoder):
    version = ensure_current_version(settings, registry, encoder.model_id, DIM)
    assert registry.current() == version and registry.versions() == [version]
    info = registry.info(version)
    assert info.source.startswith("bootstrap:content-projected") and info.content_dim == DIM
    assert info.output_dim == settings.versions.bootstrap_output_dim
    assert ensure_current_version(settings, registry, encoder.model_id, DIM) == version  # idempotent
    vectors = registry.load_version(version).item_vectors(encoder.encode(["a", "b"]))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_item_writes_go_to_current_and_preparing_versions(settings, redis_client, registry, store, encoder):
    old = ensure_current_version(settings, registry, encoder.model_id, DIM)
    new = _new_version(settings, registry, encoder, "vnew", seed=7)
    registry.begin_publish(new)
    result = store.write([_item(encoder, "i1", "Caliper")], [])
    assert result.versions == [old, new] and result.announced == {old: 1, new: 1}
    keys = RedisKeys.from_settings(settings)
    updates = redis_client.xrange(keys.item_updates())
    assert sorted((f[b"item_id"], f[b"version"]) for _, f in updates) == [(b"i1", old.encode()), (b"i1", new.encode())]


def test_an_item_arriving_during_a_publish_has_a_vector_under_the_new_version(settings, redis_client, registry, store, encoder):
    """The race: items change and arrive between the publisher's snapshot and its writes."""
    old = ensure_current_version(settings, registry, encoder.model_id, DIM)
    store.write([_item(encoder, f"i{n}", f"item {n}") for n in range(5)], [])
    new = _new_version(settings, registry, encoder, "vnew", seed=7)

    def encoder_writes_meanwhile() -> None:
        # i0 changes its text (the snapshot's vector for it is now stale) and i9 is new.
        store.write([_item(encoder, "i0", "item 0, new text"), _item(encoder, "i9", "item 9")], [])

    written = registry.publish(new, batch_size=100, after_snapshot_batch=encoder_writes_meanwhile)
    assert written == 4  # i0's stale projection was not written over the encoder's fresh one
    assert registry.current() == new and registry.preparing() == set()
    assert registry.versions() == [old, new]
    _assert_every_item_has_its_vector(redis_client, settings, registry, encoder, new)


def test_an_encoder_write_racing_a_publish_start_is_redone(settings, redis_client, registry, store, encoder, monkeypatch):
    """begin_publish lands between the encoder's read of the versions and its EXEC."""
    ensure_current_version(settings, registry, encoder.model_id, DIM)
    new = _new_version(settings, registry, encoder, "vnew", seed=7)
    real_get = store.towers.get
    started = []

    def get_then_publish(version):
        if not started:
            started.append(version)
            registry.begin_publish(new)
        return real_get(version)

    monkeypatch.setattr(store.towers, "get", get_then_publish)
    result = store.write([_item(encoder, "i1", "Caliper")], [])
    assert new in result.versions
    registry.publish(new)
    _assert_every_item_has_its_vector(redis_client, settings, registry, encoder, new)


def test_unchanged_items_get_missing_vectors_only(settings, redis_client, registry, store, encoder):
    version = ensure_current_version(settings, registry, encoder.model_id, DIM)
    store.write([_item(encoder, "i1", "Caliper")], [])
    assert store.write([], ["i1"]).announced == {}
    keys = RedisKeys.from_settings(settings)
    redis_client.hdel(keys.vectors(version), "i1")
    redis_client.srem(keys.items(), "i1")  # a partial wipe (a live `learnrec rebuild`) left only its hash
    assert store.write([], ["i1"]).announced == {version: 1}
    assert redis_client.sismember(keys.items(), "i1")  # so the next publish re-projects it too
    _assert_every_item_has_its_vector(redis_client, settings, registry, encoder, version)


def test_rollback_reprojects_items_that_arrived_later(settings, redis_client, registry, store, encoder):
    old = ensure_current_version(settings, registry, encoder.model_id, DIM)
    new = _new_version(settings, registry, encoder, "vnew", seed=7)
    registry.publish(new)
    store.write([_item(encoder, "late", "arrived under the new version")], [])
    assert registry.rollback() == old
    assert registry.current() == old
    _assert_every_item_has_its_vector(redis_client, settings, registry, encoder, old)
    with pytest.raises(VersionError):
        registry.rollback("never-published")


def test_prune_keeps_current_and_newest(settings, redis_client, registry, encoder):
    boot = ensure_current_version(settings, registry, encoder.model_id, DIM)
    versions = [_new_version(settings, registry, encoder, f"v{n}", seed=n) for n in range(3)]
    for version in versions:
        registry.publish(version)
    assert registry.prune(keep=2) == [boot, versions[0]]
    assert registry.versions() == versions[1:]
    assert not (settings.versions.model_dir / versions[0]).exists()
    with pytest.raises(VersionError):
        registry.info(versions[0])


def test_an_abandoned_publish_is_aborted_when_its_lease_runs_out(settings, redis_client, encoder, store):
    """A publisher killed mid-publish leaves its version preparing: encoders would write vectors
    for it forever. Its lease runs out; the next publish (or ``model abort``) aborts it, and a
    version never published is deleted with its partial vectors and folder."""
    registry = ModelRegistry(redis_client, RedisKeys.from_settings(settings), settings.versions.model_dir, lease_s=60)
    keys = RedisKeys.from_settings(settings)
    current = ensure_current_version(settings, registry, encoder.model_id, DIM)
    dead = _new_version(settings, registry, encoder, "dead", seed=3)
    registry.begin_publish(dead)  # ... and its publisher dies here
    store.write([_item(encoder, "i1", "written while dead was preparing")], [])
    assert redis_client.hexists(keys.vectors(dead), "i1")
    assert 0 < redis_client.pttl(keys.model_lease(dead)) <= 60_000
    assert registry.abort_abandoned() == []  # the lease still runs: its publisher may be alive
    redis_client.pexpire(keys.model_lease(dead), 1)  # 60 s later, nobody renewed it
    time.sleep(0.01)
    live = _new_version(settings, registry, encoder, "live", seed=4)
    registry.publish(live)  # begins by aborting the abandoned one
    assert registry.current() == live and registry.preparing() == set()
    assert not redis_client.exists(keys.vectors(dead), keys.model_meta(dead), keys.model_lease(dead))
    assert not (settings.versions.model_dir / "dead").exists()
    assert registry.versions() == [current, live]
    with pytest.raises(VersionError):  # its publisher, if it wakes up, cannot flip to it
        registry.finish_publish(dead)


def test_model_abort_command(settings, redis_client, encoder, monkeypatch, capsys):
    from learnrec.cli.main import main
    from learnrec.shared.config import get_settings

    for name, value in {"REDIS_URL": settings.connection.redis_url, "LEARNREC_REDIS_PREFIX": settings.connection.redis_prefix,
                        "LEARNREC_MODEL_DIR": str(settings.versions.model_dir)}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        registry = ModelRegistry.from_settings(settings, redis_client)
        ensure_current_version(settings, registry, encoder.model_id, DIM)
        stuck = _new_version(settings, registry, encoder, "stuck", seed=5)
        registry.begin_publish(stuck)
        with pytest.raises(SystemExit):
            main(["model", "abort", "not-preparing"])
        assert main(["model", "abort", stuck]) == 0
        assert capsys.readouterr().out.strip().endswith(stuck)
        assert registry.preparing() == set() and not redis_client.exists(RedisKeys.from_settings(settings).model_meta(stuck))
    finally:
        get_settings.cache_clear()
