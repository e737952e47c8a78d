"""Both event types round-trip through a real Kafka broker; bad events go to the dead letters."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from learnrec.shared.dead_letter import DeadLetter, DeadLetterWriter
from learnrec.shared.kafka_io import ensure_topics, make_consumer, make_producer
from learnrec.shared.schemas import (
    InteractionEvent,
    ItemEvent,
    decode_interaction_event,
    decode_item_event,
)
from learnrec.shared.topics import (
    DEAD_LETTER,
    GROUP_HISTORY_UPDATER,
    INTERACTIONS,
    ITEMS,
    group_name,
    topic_name,
)
from learnrec.shared.worker import Accepted, BatchResult, BatchWorker, values
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.integration


def test_topics_are_created_with_their_layout(settings):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    created = ensure_topics(settings)
    assert set(created) == {topic_name(settings, t) for t in (ITEMS, INTERACTIONS, DEAD_LETTER)}
    assert ensure_topics(settings) == []  # idempotent
    admin = KafkaAdminClient(bootstrap_servers=settings.connection.kafka_bootstrap_servers)
    try:
        items = topic_name(settings, ITEMS)
        described = admin.describe_topics([items])
        assert len(described[0]["partitions"]) == settings.connection.partitions
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, items)])
        text = repr(configs)
        assert "cleanup.policy" in text and "compact" in text
    finally:
        admin.close()


def test_item_and_interaction_events_round_trip(settings):
    ensure_topics(settings)
    producer = make_producer(settings)
    items = [
        ItemEvent(item_id=f"i{n}", title=f"Digital caliper {n}", brand="Mitutoyo",
                  category="Measuring", price=19.5 + n, attributes={"unit": "mm"}, timestamp=1_700_000_000 + n)
        for n in range(5)
    ]
    interactions = [
        InteractionEvent(event_id=f"e{n}", user_id=f"u{n % 2}", item_id=f"i{n}", action="click",
                         timestamp=1_700_000_100 + n)
        for n in range(5)
    ]
    for event in items:
        producer.send(topic_name(settings, ITEMS), key=event.key, value=event.to_bytes())
    for event in interactions:
        producer.send(topic_name(settings, INTERACTIONS), key=event.key, value=event.to_bytes())
    producer.flush()
    producer.close()

    got_items = read_topic(settings, topic_name(settings, ITEMS), expected=5)
    got_interactions = read_topic(settings, topic_name(settings, INTERACTIONS), expected=5)
    decoded_items = sorted((decode_item_event(r.value) for r in got_items), key=lambda e: e.item_id)
    assert decoded_items == items
    assert all(r.key == e.item_id.encode() for r in got_items for e in [decode_item_event(r.value)])
    decoded = sorted((decode_interaction_event(r.value) for r in got_interactions), key=lambda e: e.event_id)
    assert decoded == interactions
    # Keyed by user: one user's events share a partition, in order.
    by_user: dict[str, set[int]] = {}
    for r in got_interactions:
        by_user.setdefault(r.key.decode(), set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_user.values())


def test_malformed_event_goes_to_dead_letters_and_the_worker_goes_on(settings):
    ensure_topics(settings)
    source = topic_name(settings, INTERACTIONS)
    producer = make_producer(settings)
    good = [
        InteractionEvent(event_id=f"e{n}", user_id="u1", item_id=f"i{n}", timestamp=1_700_000_000 + n)
        for n in range(4)
    ]
    bad_values = [b"{not json", json.dumps({"event_id": "x", "user_id": "u1"}).encode()]
    # good, bad, good, bad, good, good: all for one user so they share a partition in order.
    sequence = [good[0].to_bytes(), bad_values[0], good[1].to_bytes(), bad_values[1],
                good[2].to_bytes(), good[3].to_bytes()]
    for value in sequence:
        producer.send(source, key=b"u1", value=value)
    producer.flush()

    applied: list[InteractionEvent] = []

    def handle(batch: Sequence[Accepted[InteractionEvent]]) -> BatchResult:
        applied.extend(a.event for a in batch)
        return BatchResult()

    consumer = make_consumer(settings, group_name(settings, GROUP_HISTORY_UPDATER), [source],
                             session_timeout_ms=6000, heartbeat_interval_ms=1000)
    worker = BatchWorker("test", consumer, values(decode_interaction_event), handle,
                         DeadLetterWriter(producer, topic_name(settings, DEAD_LETTER), "test"))
    totals = worker.run(max_idle_s=3.0)
    producer.close()

    assert [e.event_id for e in applied] == ["e0", "e1", "e2", "e3"]
    assert totals.dead_lettered == 2
    letters = [DeadLetter.from_record(r) for r in read_topic(settings, topic_name(settings, DEAD_LETTER), expected=2)]
    assert sorted(dl.value for dl in letters) == sorted(bad_values)  # original bytes kept
    assert all(dl.source_topic == source and dl.stage == "test" for dl in letters)
    by_value = {dl.value: dl for dl in letters}
    assert "not UTF-8 JSON" in by_value[bad_values[0]].reason
    assert "item_id" in by_value[bad_values[1]].reason and "Field required" in by_value[bad_values[1]].reason
    assert sorted(dl.source_offset for dl in letters) == [1, 3]
