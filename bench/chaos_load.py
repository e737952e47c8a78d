"""What :mod:`bench.chaos` runs beside its faults and counts after them: a steady event load, a
steady request load, malformed events, consumer offsets, and the exactly-once tally."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter

import httpx
from kafka import KafkaConsumer, TopicPartition

from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import kafka_security, make_producer
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.shared.topics import DEAD_LETTER, INTERACTIONS, ITEMS, topic_name


def fuzzed(rng: random.Random, n: int) -> list[tuple[str, bytes | None]]:
    """``n`` malformed (topic, value) records, of every kind the decoders must refuse."""
    good_item = {"item_id": "i", "title": "t"}
    good_click = {"event_id": "e", "user_id": "u", "item_id": "i"}
    kinds = [
        lambda: rng.randbytes(rng.randint(1, 64)).replace(b"{", b"(") + b"\xff",  # not UTF-8
        lambda: None,  # a null value on interactions
        lambda: json.dumps(rng.choice([[1, 2], 3, "text", True, None])).encode(),  # not an object
        lambda: json.dumps(dict(list(good_click.items())[: rng.randint(0, 2)])).encode(),  # fields missing
        lambda: json.dumps(good_click | {"timestamp": rng.choice(["soon", -1, 1e400])}).encode(),
        lambda: json.dumps(good_click | {"user_id": rng.choice(["", "a b", "x" * 200, 7])}).encode(),
        lambda: json.dumps(good_click | {"action": "teleport"}).encode(),
        lambda: json.dumps(good_click | {"schema_version": rng.randint(2, 9)}).encode(),
        lambda: json.dumps(good_click)[: rng.randint(1, 20)].encode(),  # truncated
        lambda: b'{"pad": "' + b"x" * (65 * 1024) + b'"}',  # over the size limit
    ]
    item_kinds = [
        lambda: json.dumps(good_item | {"title": rng.choice(["", "   ", 5])}).encode(),
        lambda: json.dumps(good_item | {"price": -0.01 - rng.random()}).encode(),
        lambda: json.dumps(good_item | {"attributes": {f"k{i}": "v" for i in range(60)}}).encode(),
        lambda: json.dumps({"title": "no id"}).encode(),
    ]
    return [(ITEMS, rng.choice(item_kinds)()) if rng.random() < 0.3 else (INTERACTIONS, rng.choice(kinds)())
            for _ in range(n)]


class EventLoad:
    """Interactions at a steady rate, and a new item with every tenth, until stopped. Counts
    only what the broker acknowledged as produced (a send that failed was never accepted).
    ``catalogue``: clicks go to published items (the trainer learns from them) instead of a
    unique item id per event."""

    def __init__(self, settings: Settings, rate: float, users: int = 50, catalogue: bool = False) -> None:
        self.settings, self.rate, self.users, self.catalogue = settings, rate, users, catalogue
        self.acked: list[InteractionEvent] = []
        self.items: list[str] = []
        self.failed_sends = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()
        self._rng = random.Random(0)

    def _ack(self, event: InteractionEvent | ItemEvent):
        def done(_metadata) -> None:
            with self._lock:
                (self.acked if isinstance(event, InteractionEvent) else self.items).append(event)  # type: ignore[arg-type]
        return done

    def _failed(self, _err) -> None:
        with self._lock:
            self.failed_sends += 1

    def _run(self) -> None:
        producer = make_producer(self.settings)
        k, started = 0, time.monotonic()
        while not self.stop.is_set():
            if k % 10 == 0:
                item = ItemEvent(item_id=f"item-{k // 10}", title=f"a thing called {k // 10} in series {k % 7}")
                producer.send(topic_name(self.settings, ITEMS), key=item.key, value=item.to_bytes()) \
                    .add_callback(self._ack(item)).add_errback(self._failed)
            item_id = f"item-{self._rng.randrange(k // 10 + 1)}" if self.catalogue else f"x{k}"
            event = InteractionEvent(event_id=f"e{k}", user_id=f"u{k % self.users}", item_id=item_id)
            producer.send(topic_name(self.settings, INTERACTIONS), key=event.key, value=event.to_bytes()) \
                .add_callback(self._ack(event)).add_errback(self._failed)
            k += 1
            self.stop.wait(max(0.0, started + k / self.rate - time.monotonic()))
        producer.flush(timeout=60)
        producer.close()


class RequestLoad:
    """Recommendation requests at a steady rate against ``url`` until stopped."""

    def __init__(self, url: str, rate: float, users: int = 50) -> None:
        self.url, self.rate, self.users = url, rate, users
        self.ok = self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        k, started = 0, time.monotonic()
        with httpx.Client(timeout=2.0) as client:
            while not self.stop.is_set():
                try:
                    status = client.get(f"{self.url}/v1/users/u{k % self.users}/recommendations").status_code
                except httpx.HTTPError:
                    status = 0
                self.ok += status == 200
                self.failed += status != 200
                k += 1
                self.stop.wait(max(0.0, started + k / self.rate - time.monotonic()))


def offsets(settings: Settings, group: str | None, topic: str) -> dict[int, int]:
    """End offsets (``group`` None) or the group's committed offsets, per partition."""
    consumer = KafkaConsumer(bootstrap_servers=settings.connection.kafka_bootstrap_servers, group_id=group,
                             enable_auto_commit=False, **kafka_security(settings))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if group is None:
            return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
        return {tp.partition: consumer.committed(tp) or 0 for tp in tps}
    finally:
        consumer.close()


def history_tally(settings: Settings, load: EventLoad) -> dict:
    """Per user, the produced clicks against the stored history (as multisets of item ids):
    applied exactly once, lost, applied twice; and items without a vector under the current
    version."""
    client, keys = make_redis(settings), RedisKeys.from_settings(settings)
    once = lost = twice = 0
    by_user: dict[str, Counter[str]] = {}
    for event in load.acked:
        by_user.setdefault(event.user_id, Counter())[event.item_id] += 1
    for user, expected in by_user.items():
        stored = Counter(i.decode() for i in client.lrange(keys.history(user), 0, -1))
        for item, n in expected.items():
            once += min(n, stored[item])
            lost += max(0, n - stored[item])
            twice += max(0, stored[item] - n)
    current = client.get(keys.model_current())
    vectors = set(client.hkeys(keys.vectors(current.decode()))) if current else set()
    items = {i.item_id for i in load.items}  # type: ignore[attr-defined]
    return {"events_produced": len(load.acked), "failed_sends": load.failed_sends, "applied_once": once,
            "lost": lost, "applied_twice": twice, "items_produced": len(items),
            "items_without_vectors": sum(1 for i in items if i.encode() not in vectors)}


def dead_letters(settings: Settings, expected: int) -> dict:
    """Every record of the dead-letter topic: how many per stage (each consumer of a topic
    dead-letters its own copy: the trainer reads interactions too), whether each has a reason,
    and the commonest reasons. ``expected``: malformed events published."""
    consumer = KafkaConsumer(bootstrap_servers=settings.connection.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False,
                             **kafka_security(settings))
    topic = topic_name(settings, DEAD_LETTER)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    records: list = []
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
        for part in consumer.poll(timeout_ms=500).values():
            records.extend(part)
    consumer.close()
    headers = [dict(r.headers) for r in records]
    stages = Counter(h.get("dlq.stage", b"").decode() for h in headers)
    sources = {(h.get("dlq.source.topic"), h.get("dlq.source.offset"), h.get("dlq.source.partition")) for h in headers}
    reasons = Counter(h.get("dlq.reason", b"").decode()[:40] for h in headers)
    return {"fuzzed": expected, "dead_letters": len(records), "by_stage": dict(stages),
            "distinct_events_dead_lettered": len(sources),
            "dead_letters_with_reason": sum(1 for h in headers if h.get("dlq.reason")),
            "top_reasons": reasons.most_common(8)}
