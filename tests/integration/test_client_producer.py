"""EventProducer through a real broker: items, interactions and a removal read back."""

from __future__ import annotations

import pytest

from learnrec.client import EventProducer, InteractionEvent, ItemEvent
from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.topics import INTERACTIONS, ITEMS, topic_name
from tests.kafka_helpers import read_topic

pytestmark = [pytest.mark.integration]


def test_published_events_and_a_removal_arrive_with_their_keys(settings):
    ensure_topics(settings)
    with EventProducer(settings) as producer:
        item = producer.publish_item({"item_id": "i/1", "title": "Digital caliper", "price": 19.5})
        interaction = producer.publish_interaction({"user_id": "u1", "item_id": "i/1", "action": "like"})
        producer.remove_item("i/2")
        assert producer.flush() == 3

    items = read_topic(settings, topic_name(settings, ITEMS), expected=2)
    interactions = read_topic(settings, topic_name(settings, INTERACTIONS), expected=1)
    by_key = {r.key: r.value for r in items}
    assert len(items) == 2 and by_key[b"i/2"] is None  # the tombstone
    assert ItemEvent.model_validate_json(by_key[b"i/1"]) == item
    assert [r.key for r in interactions] == [b"u1"]
    received = InteractionEvent.model_validate_json(interactions[0].value)
    assert received == interaction and len(received.event_id) == 32
