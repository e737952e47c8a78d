"""The history updater on a real Kafka and Redis: histories, popularity, duplicates, dead letters."""

from __future__ import annotations

import threading
import time

import pytest

from learnrec.shared.dead_letter import DeadLetter
from learnrec.shared.popularity import popular_items
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent
from learnrec.shared.topics import DEAD_LETTER, INTERACTIONS, topic_name
from learnrec.stream.workers import build_history_worker
from tests.kafka_helpers import read_topic
from tests.stream_helpers import produce, wait_until

pytestmark = pytest.mark.integration


def _history(redis_client, keys: RedisKeys, user: str) -> list[str]:
    return [i.decode() for i in redis_client.lrange(keys.history(user), 0, -1)]


def test_interactions_update_bounded_histories_and_popularity_once(settings, redis_client):
    fast = settings.replace(kafka_session_timeout_ms=6000, history_length=3)
    keys = RedisKeys.from_settings(fast)
    now = time.time()
    events = [InteractionEvent(event_id=f"e{n}", user_id="u1", item_id=f"i{n}", timestamp=now) for n in range(5)]
    events += [InteractionEvent(event_id="f0", user_id="u2", item_id="i4", timestamp=now),
               InteractionEvent(event_id="f1", user_id="u2", item_id="not-seen-yet", timestamp=now)]
    duplicates = [events[4], events[5]]  # delivered twice
    produce(fast, events + duplicates, raw=[(INTERACTIONS, b"u3", b'{"event_id": "bad"}')])
    worker = build_history_worker(fast)
    try:
        assert wait_until(lambda: worker.run_once() is not None and worker.totals.polled >= 10, 20, every_s=0)
    finally:
        worker.consumer.close(autocommit=False)
    assert _history(redis_client, keys, "u1") == ["i2", "i3", "i4"]  # bounded, oldest first
    assert _history(redis_client, keys, "u2") == ["i4", "not-seen-yet"]  # unknown items accepted
    top = popular_items(redis_client, fast, k=2, now=now)
    assert top[0] == ("i4", 2.0)  # once from u1, once from u2; the duplicates did not count
    assert 0 < redis_client.ttl(keys.history("u1")) <= fast.stream.history_ttl_s
    letters = [DeadLetter.from_record(r) for r in read_topic(fast, topic_name(fast, DEAD_LETTER), expected=1)]
    assert [d.value for d in letters] == [b'{"event_id": "bad"}'] and letters[0].stage == "history-updater"


def test_two_replicas_in_one_group_split_the_partitions(settings, redis_client):
    fast = settings.replace(kafka_session_timeout_ms=6000, history_length=1000)
    keys = RedisKeys.from_settings(fast)
    users = [f"u{n}" for n in range(8)]
    events = [InteractionEvent(event_id=f"e{n}", user_id=users[n % 8], item_id=f"i{n}") for n in range(2000)]
    replicas = [build_history_worker(fast), build_history_worker(fast)]

    def settled() -> bool:
        for worker in replicas:
            worker.run_once()
        return all(worker.consumer.assignment() for worker in replicas)

    assert wait_until(settled, 30, every_s=0)  # both hold partitions before any event arrives
    produce(fast, events)
    threads = [threading.Thread(target=worker.run, kwargs={"max_idle_s": 3.0}) for worker in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(worker.totals.accepted > 0 for worker in replicas)
    assert sum(worker.totals.accepted for worker in replicas) == len(events)
    assert sum(redis_client.llen(keys.history(user)) for user in users) == len(events)


def test_popularity_window_follows_the_stream_clock_for_replayed_old_events(settings, redis_client):
    """Events from 1998 (a replay): the window ends at the newest event, not at wall-clock now."""
    fast = settings.replace(kafka_session_timeout_ms=6000)
    then = 892_000_000.0
    events = [InteractionEvent(event_id=f"old{n}", user_id=f"u{n}", item_id="film-a" if n < 3 else "film-b",
                               timestamp=then + n) for n in range(4)]
    events.append(InteractionEvent(event_id="older", user_id="u9", item_id="film-c",
                                   timestamp=then - 30 * 24 * 3600))  # outside the window
    produce(fast, events)
    worker = build_history_worker(fast)
    try:
        assert wait_until(lambda: worker.run_once() is not None and worker.totals.polled >= 5, 20, every_s=0)
    finally:
        worker.consumer.close(autocommit=False)
    assert popular_items(redis_client, fast, k=3) == [("film-a", 3.0), ("film-b", 1.0)]
