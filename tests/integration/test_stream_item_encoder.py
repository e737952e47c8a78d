"""The item encoder worker on a real Kafka and Redis: events become vectors and notifications."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from learnrec.shared.dead_letter import DeadLetter
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import ItemEvent
from learnrec.shared.topics import DEAD_LETTER, ITEMS, topic_name
from learnrec.stream.workers import build_item_worker
from learnrec.versions.registry import ModelRegistry
from tests.kafka_helpers import read_topic
from tests.stream_helpers import HashEncoder, produce, save_tiny_encoder, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def fast(settings):
    """Settings with the quickest group joins the broker allows."""
    return settings.replace(kafka_session_timeout_ms=6000)


def _updates(redis_client, keys: RedisKeys) -> list[tuple[str, str]]:
    return [(f[b"item_id"].decode(), f[b"version"].decode()) for _, f in redis_client.xrange(keys.item_updates())]


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _run_until(worker, condition, timeout_s: float = 20.0) -> None:
    assert wait_until(lambda: worker.run_once() is not None and condition(), timeout_s, every_s=0)


def test_item_event_becomes_a_vector_and_a_notification_and_bad_events_are_dead_lettered(fast, redis_client):
    keys = RedisKeys.from_settings(fast)
    worker = build_item_worker(fast, encoder=HashEncoder())
    version = ModelRegistry.from_settings(fast, redis_client).current()
    bad = [b"{not json", b'{"item_id": "x"}']
    produce(fast, [ItemEvent(item_id="i1", title="Digital caliper", brand="Acme", price=19.5)],
            raw=[(ITEMS, b"x", value) for value in bad])
    try:
        _run_until(worker, lambda: worker.totals.polled >= 3)
    finally:
        worker.consumer.close(autocommit=False)
    vector = np.frombuffer(redis_client.hget(keys.vectors(version), "i1"), np.float32)
    assert vector.shape == (fast.versions.bootstrap_output_dim,)
    assert abs(np.linalg.norm(vector) - 1) < 1e-5
    item = redis_client.hgetall(keys.item("i1"))
    assert item[b"title"] == b"Digital caliper" and item[b"brand"] == b"Acme" and item[b"price"] == b"19.5"
    assert item[b"text"] == b"Title: Digital caliper. Brand: Acme"
    assert np.frombuffer(item[b"content"], np.float32).shape == (16,)
    assert _updates(redis_client, keys) == [("i1", version)]
    letters = [DeadLetter.from_record(r) for r in read_topic(fast, topic_name(fast, DEAD_LETTER), expected=2)]
    assert sorted(d.value for d in letters) == sorted(bad)
    assert {d.stage for d in letters} == {"item-encoder"}
    assert worker.totals.dead_lettered == 2


def test_a_duplicate_delivery_has_a_single_effect_and_a_changed_text_is_encoded_again(fast, redis_client):
    keys = RedisKeys.from_settings(fast)
    encoder = HashEncoder()
    worker = build_item_worker(fast, encoder=encoder)
    version = ModelRegistry.from_settings(fast, redis_client).current()
    first = ItemEvent(item_id="i1", title="Drill", timestamp=1.0)
    unchanged_before = _metric("learnrec_items_total", outcome="unchanged")
    encodes_before = _metric("learnrec_encode_seconds_count")
    try:
        produce(fast, [first])
        _run_until(worker, lambda: worker.totals.polled >= 1)
        stored = redis_client.hget(keys.vectors(version), "i1")
        produce(fast, [first])  # delivered again
        _run_until(worker, lambda: worker.totals.polled >= 2)
        assert redis_client.hget(keys.vectors(version), "i1") == stored
        assert _updates(redis_client, keys) == [("i1", version)]
        assert encoder.calls == [["Title: Drill"]]
        produce(fast, [ItemEvent(item_id="i1", title="Drill", brand="Acme", timestamp=2.0)])
        _run_until(worker, lambda: worker.totals.polled >= 3)
    finally:
        worker.consumer.close(autocommit=False)
    assert encoder.calls[-1] == ["Title: Drill. Brand: Acme"]
    assert _metric("learnrec_items_total", outcome="unchanged") == unchanged_before + 1
    assert _metric("learnrec_encode_seconds_count") == encodes_before + 2
    assert redis_client.hget(keys.vectors(version), "i1") != stored
    assert _updates(redis_client, keys) == [("i1", version), ("i1", version)]


def test_the_worker_runs_the_real_encoder_named_in_settings(fast, redis_client, tmp_path):
    tiny = fast.replace(encoder=save_tiny_encoder(tmp_path / "tiny"))
    keys = RedisKeys.from_settings(tiny)
    worker = build_item_worker(tiny)
    produce(tiny, [ItemEvent(item_id="i1", title="glass beaker", brand="acme")])
    try:
        _run_until(worker, lambda: worker.totals.polled >= 1)
    finally:
        worker.consumer.close(autocommit=False)
    registry = ModelRegistry.from_settings(tiny, redis_client)
    info = registry.info(registry.current())
    assert info.encoder == str((tmp_path / "tiny").resolve()) and info.content_dim == 16
    assert redis_client.hexists(keys.vectors(info.version), "i1")
