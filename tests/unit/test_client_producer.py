"""EventProducer against an in-memory Kafka producer: validation, keys, topics, delivery reports."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
from kafka.future import Future

from learnrec.client import EventError, EventProducer, InteractionEvent, ItemEvent, PublishError
from learnrec.client import producer as producer_module
from learnrec.shared.config import Settings
from learnrec.shared.schemas import MAX_EVENT_BYTES

ROOT = Path(__file__).resolve().parents[2]


class FakeKafka:
    """Records sends; ``flush`` settles them: failed for keys in ``fail_keys``, pending for keys
    in ``stuck_keys`` (and a timeout), else delivered."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, Future]] = []
        self.fail_keys: set[bytes] = set()
        self.stuck_keys: set[bytes] = set()
        self.closed = False

    def send(self, topic, key=None, value=None):
        future = Future()
        self.sent.append((topic, key, value, future))
        return future

    def flush(self, timeout=None):
        for _, key, _, future in self.sent:
            if future.is_done or key in self.stuck_keys:
                continue
            if key in self.fail_keys:
                future.failure(NotLeaderForPartitionError("boom"))
            else:
                future.success("metadata")
        if any(not f.is_done for *_, f in self.sent):
            raise KafkaTimeoutError("flush timed out")

    def close(self, timeout=None):
        self.closed = True


@pytest.fixture
def kafka(monkeypatch) -> FakeKafka:
    fake = FakeKafka()
    monkeypatch.setattr(producer_module, "make_producer", lambda settings, **_: fake)
    return fake


@pytest.fixture
def producer(kafka) -> EventProducer:
    return EventProducer(Settings(topic_prefix="p."))


ITEM = {"item_id": "i1", "title": "Digital caliper", "category": "Tools", "timestamp": 1.0}


def test_items_interactions_and_removals_go_to_their_topics_with_their_keys(producer, kafka):
    item = producer.publish_item(ITEM)
    interaction = producer.publish_interaction(
        InteractionEvent(event_id="e1", user_id="u1", item_id="i1", action="like"))
    producer.remove_item("i/2?")
    assert isinstance(item, ItemEvent) and item.category == "Tools"
    assert [(t, k, v) for t, k, v, _ in kafka.sent] == [
        ("p.items", b"i1", item.to_bytes()),
        ("p.interactions", b"u1", interaction.to_bytes()),
        ("p.items", b"i/2?", None),
    ]
    assert producer.flush() == 3
    assert producer.flush() == 0  # counted since the last flush


def test_a_mapping_gets_a_fresh_event_id_and_an_explicit_one_is_kept(producer, kafka):
    first = producer.publish_interaction({"user_id": "u1", "item_id": "i1"})
    second = producer.publish_interaction({"user_id": "u1", "item_id": "i1"})
    kept = producer.publish_interaction({"event_id": "mine", "user_id": "u1", "item_id": "i1"})
    assert len(first.event_id) == 32 and first.event_id != second.event_id
    assert kept.event_id == "mine"
    assert InteractionEvent.model_validate_json(kafka.sent[0][2]).event_id == first.event_id


@pytest.mark.parametrize(
    ("publish", "event", "reason"),
    [
        ("publish_item", {"item_id": "i1"}, "title"),
        ("publish_item", {**ITEM, "item_id": "has space"}, "item_id"),
        ("publish_item", {**ITEM, "price": -1}, "price"),
        ("publish_interaction", {"user_id": "u1", "item_id": "i1", "action": "stare"}, "action"),
        ("publish_interaction", {"user_id": "", "item_id": "i1"}, "user_id"),
        ("publish_interaction", ItemEvent(**ITEM), "InteractionEvent"),
    ],
)
def test_invalid_events_raise_before_anything_is_sent(producer, kafka, publish, event, reason):
    with pytest.raises(EventError, match=reason):
        getattr(producer, publish)(event)
    assert kafka.sent == []


def test_the_wire_size_limit_is_checked(producer, kafka):
    with pytest.raises(EventError, match=str(MAX_EVENT_BYTES)):
        producer.publish_item({**ITEM, "description": "x" * 20_000,
                               "attributes": {f"a{n}": "y" * 1000 for n in range(50)}})
    assert kafka.sent == []


@pytest.mark.parametrize("item_id", ["", "a b", "x" * 129, "tab\t"])
def test_a_removal_needs_a_valid_item_id(producer, kafka, item_id):
    with pytest.raises(EventError, match="invalid item id"):
        producer.remove_item(item_id)
    assert kafka.sent == []


def test_flush_reports_every_failed_and_unconfirmed_event(producer, kafka):
    kafka.fail_keys = {b"u-bad"}
    kafka.stuck_keys = {b"gone"}
    producer.publish_item(ITEM)
    producer.publish_interaction({"user_id": "u-bad", "item_id": "i1"})
    producer.remove_item("gone")
    with pytest.raises(PublishError, match="2 event") as raised:
        producer.flush(timeout_s=0.1)
    failures = raised.value.failures
    assert raised.value.delivered == 1
    assert [(f.topic, f.key, type(f.error)) for f in failures] == [
        ("p.interactions", "u-bad", NotLeaderForPartitionError),
        ("p.items", "gone", KafkaTimeoutError),
    ]
    kafka.stuck_keys = set()
    assert producer.flush() == 0  # already reported as unconfirmed: not counted again


def test_sent_interactions_are_logged_with_their_event_id(producer, caplog):
    with caplog.at_level(logging.DEBUG, logger="learnrec.client"):
        event = producer.publish_interaction({"user_id": "u1", "item_id": "i1"})
    assert [r.event_id for r in caplog.records if r.name == "learnrec.client"] == [event.event_id]


def test_the_context_manager_flushes_and_closes(kafka):
    with EventProducer(Settings()) as producer:
        producer.publish_item(ITEM)
    assert kafka.sent[0][3].succeeded() and kafka.closed


def test_the_context_manager_closes_without_a_second_error(kafka, monkeypatch):
    def broken_close(timeout=None):
        raise RuntimeError("close failed")

    monkeypatch.setattr(kafka, "close", broken_close)
    with pytest.raises(ValueError, match="original"), EventProducer(Settings()):
        raise ValueError("original")


def test_the_client_imports_without_torch_or_the_services():
    check = ("import sys, learnrec.client; assert not any(m.split('.')[0] in {'torch','transformers',"
             "'onnxruntime','stream','serving','trainer'} for m in sys.modules)")
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
