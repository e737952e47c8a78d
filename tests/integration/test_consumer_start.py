"""Workers started beside brand-new topics always get their partitions and consume.

This is the start-up race that made CI fail at random: two consumers started in one process
beside a live server, right after their topics were created; now and then a consumer never
received its assignment (kafka-python 3.0.12 lost a wake-up of its IO thread), so the worker
silently did nothing. Every round here repeats that start on fresh topics, groups and keys; each
worker must apply a record produced after it started.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from kafka import ConsumerRebalanceListener

from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import (
    TopicsNotReady,
    ensure_topics,
    make_consumer,
    wait_for_partitions,
)
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.shared.topics import ITEMS, topic_name
from learnrec.stream.workers import build_history_worker, build_item_worker
from tests.serving_support import LiveServer
from tests.stream_helpers import HashEncoder, produce, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 8


def _one_round(base: Settings, redis_client) -> None:
    """The serving end-to-end set-up on fresh topics, groups and keys: both stream workers in
    threads and a live server, started at once; both workers must apply a record."""
    prefix = f"s{uuid.uuid4().hex[:10]}"
    settings = base.replace(topic_prefix=f"{prefix}.", redis_prefix=prefix)
    keys = RedisKeys.from_settings(settings)
    ensure_topics(settings)
    workers = [build_item_worker(settings, HashEncoder()), build_history_worker(settings)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        with LiveServer(settings):
            produce(settings, [ItemEvent(item_id="i1", title="camera lens"),
                               InteractionEvent(event_id="e1", user_id="u1", item_id="i1")])
            applied = wait_until(
                lambda: redis_client.exists(keys.item("i1")) and redis_client.llen(keys.history("u1")),
                timeout_s=30, every_s=0.05,
            )
            assert applied, {w.name: w.totals for w in workers}
    finally:
        for worker in workers:
            worker.stop_event.set()
        for thread in threads:
            thread.join(timeout=15)
        stale = list(redis_client.scan_iter(match=f"{prefix}:*", count=1000))
        if stale:
            redis_client.delete(*stale)


def test_workers_started_beside_new_topics_always_consume(settings, redis_client):
    for _ in range(ROUNDS):
        _one_round(settings, redis_client)


class _Assignments(ConsumerRebalanceListener):
    """Records every assignment the consumer receives."""

    def __init__(self) -> None:
        self.assigned: list[set[int]] = []

    def on_partitions_revoked(self, revoked) -> None:
        pass

    def on_partitions_assigned(self, assigned) -> None:
        self.assigned.append({tp.partition for tp in assigned})


def test_the_first_assignment_after_topic_creation_is_complete(settings):
    """Topics created a moment ago: the consumer's first assignment already holds every
    partition (no empty assignment followed by a metadata-driven rebalance)."""
    ensure_topics(settings)
    listener = _Assignments()
    consumer = make_consumer(settings, f"{settings.connection.topic_prefix}g", [topic_name(settings, ITEMS)],
                             listener=listener)
    try:
        assert wait_until(lambda: consumer.poll(timeout_ms=100) is not None and listener.assigned,
                          timeout_s=30, every_s=0)
        assert listener.assigned[0] == set(range(settings.connection.partitions)), listener.assigned
    finally:
        consumer.close(autocommit=False)


def test_a_consumer_of_a_missing_topic_fails_clearly(settings):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=settings.connection.kafka_bootstrap_servers)
    try:
        with pytest.raises(TopicsNotReady, match="no partition metadata"):
            wait_for_partitions(consumer, [f"{settings.connection.topic_prefix}never-created"], 0.5)
        ensure_topics(settings)
        counts = wait_for_partitions(consumer, [topic_name(settings, ITEMS)], 10)
        assert counts == {topic_name(settings, ITEMS): settings.connection.partitions}
    finally:
        consumer.close()
