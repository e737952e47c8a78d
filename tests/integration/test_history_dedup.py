"""The history updater's exactly-once effect on a real Redis, batch by batch: per-partition
applied-offset watermarks (re-deliveries), the user's recent event ids (a producer's
duplicates), and bounded state (a TTL and a cap on users), with O(partitions + users) keys."""

from __future__ import annotations

import time
from collections import Counter, namedtuple

import pytest
from prometheus_client import REGISTRY

from learnrec.shared.popularity import bucket_of
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent
from learnrec.shared.worker import Accepted
from learnrec.stream.history_updater import RECENT_EVENT_IDS, HistoryHandler

pytestmark = pytest.mark.integration

Record = namedtuple("Record", "topic partition offset")


def _batch(events, partition: int = 0, first_offset: int = 0) -> list[Accepted]:
    return [Accepted(Record("interactions", partition, first_offset + n), e) for n, e in enumerate(events)]


def _history(redis_client, keys: RedisKeys, user: str) -> list[str]:
    return [i.decode() for i in redis_client.lrange(keys.history(user), 0, -1)]


def test_redelivered_records_and_duplicate_events_have_no_second_effect(settings, redis_client):
    keys = RedisKeys.from_settings(settings)
    handler = HistoryHandler(redis_client, keys, settings)
    now = time.time()
    events = [InteractionEvent(event_id=f"e{n}", user_id=f"u{n % 3}", item_id=f"i{n}", timestamp=now)
              for n in range(300)]
    first = _batch(events[:200])
    handler(first)
    handler(first[50:])  # a crash before the commit: part of the batch comes again
    handler(_batch(events[150:], first_offset=150))  # re-delivered from 150, then new records
    handler(_batch([events[299]], first_offset=300))  # a producer's retry: same event, new offset
    handler(_batch(events[:3], partition=1))  # another partition has its own watermark: applied
    for user in range(3):
        mine = [f"i{n}" for n in range(user, 300, 3)]
        assert _history(redis_client, keys, f"u{user}") == (mine + [f"i{user}"])[-settings.stream.history_length:]
    assert redis_client.hgetall(keys.history_applied()) == {b"interactions:0": b"300", b"interactions:1": b"2"}
    # O(partitions + users) keys, none per event
    users = {f"u{n}" for n in range(3)}
    expected = {keys.history(u) for u in users} | {keys.history_events(u) for u in users}
    expected |= {keys.history_users(), keys.history_applied(), keys.popular_clock()}
    found = {k.decode() for k in redis_client.scan_iter(match=keys.pattern_all(), count=1000)}
    assert {k for k in found if ":popular:" not in k} == expected


def test_histories_expire_and_the_least_recently_active_users_leave_past_the_cap(settings, redis_client):
    capped = settings.replace(history_max_users=2, history_ttl_s=600)
    keys = RedisKeys.from_settings(capped)
    handler = HistoryHandler(redis_client, keys, capped)
    now = time.time()
    events = [InteractionEvent(event_id=f"e{n}", user_id=f"u{n}", item_id="i", timestamp=now + n) for n in range(3)]
    handler(_batch(events[:2]))
    handler(_batch([InteractionEvent(event_id="again", user_id="u0", item_id="j", timestamp=now + 5)],
                   first_offset=2))  # u0 is active again: u1 is now the least recent
    handler(_batch(events[2:], first_offset=3))
    assert not redis_client.exists(keys.history("u1"), keys.history_events("u1"))
    assert _history(redis_client, keys, "u0") == ["i", "j"] and _history(redis_client, keys, "u2") == ["i"]
    assert {m.decode() for m in redis_client.zrange(keys.history_users(), 0, -1)} == {"u0", "u2"}
    for user in ("u0", "u2"):
        assert 0 < redis_client.ttl(keys.history(user)) <= 600
        assert 0 < redis_client.ttl(keys.history_events(user)) <= 600


def test_redis_key_count_stays_flat_under_a_steady_stream_of_new_users(settings, redis_client):
    """New users keep arriving: past ``history_max_users`` the key count stops growing (before
    the cap it grew by two keys per user, and before the watermarks by one key per event)."""
    capped = settings.replace(history_max_users=40)
    keys = RedisKeys.from_settings(capped)
    handler = HistoryHandler(redis_client, keys, capped)
    # every event inside one popularity bucket: a bucket boundary between two rounds would add
    # a key of its own (the test failed once when its rounds straddled a full hour)
    now = (time.time() // capped.stream.popularity_bucket_s) * capped.stream.popularity_bucket_s
    offset, counts = 0, []
    for round_ in range(8):
        events = [InteractionEvent(event_id=f"r{round_}-{k}", user_id=f"user-{round_}-{k % 30}", item_id=f"i{k % 7}",
                                   timestamp=now + round_) for k in range(120)]
        handler(_batch(events, first_offset=offset))
        offset += len(events)
        counts.append(sum(1 for _ in redis_client.scan_iter(match=keys.pattern_all(), count=1000)))
    assert redis_client.zcard(keys.history_users()) == 40
    assert counts[0] < counts[1] and len(set(counts[1:])) == 1, counts  # flat once the cap is reached


def test_one_large_batch_has_the_effects_of_its_events_one_at_a_time(settings, redis_client):
    """Past the script's slices (1,000 pushed values, 500 users' times, 500 counted items): a hot
    user's 1,200 events, 700 other users, 800 items, one counted before, and a producer's
    duplicate inside the batch. Times keep their every bit through the JSON argument."""
    keys = RedisKeys.from_settings(settings)
    handler = HistoryHandler(redis_client, keys, settings)
    bucket_s = settings.stream.popularity_bucket_s
    now = bucket_of(time.time(), bucket_s) * bucket_s + bucket_s / 2 + 0.123456789
    handler(_batch([InteractionEvent(event_id="before", user_id="old", item_id="i0", timestamp=now)]))
    hot = [InteractionEvent(event_id=f"h{n}", user_id="hot", item_id=f"i{n % 800}", timestamp=now + n / 10)
           for n in range(1200)]
    others = [InteractionEvent(event_id=f"o{n}", user_id=f"u{n}", item_id=f"i{n}", timestamp=now - n / 7)
              for n in range(700)]
    duplicates = REGISTRY.get_sample_value("learnrec_interactions_total", {"outcome": "duplicate"}) or 0
    handler(_batch(hot + others + [hot[5]], first_offset=1))
    assert REGISTRY.get_sample_value("learnrec_interactions_total", {"outcome": "duplicate"}) == duplicates + 1
    assert _history(redis_client, keys, "hot") == [e.item_id for e in hot][-settings.stream.history_length:]
    assert [i.decode() for i in redis_client.lrange(keys.history_events("hot"), 0, -1)] == \
        [e.event_id for e in hot][-RECENT_EVENT_IDS:]
    expected = Counter(e.item_id for e in hot + others) + Counter(["i0"])
    counted = redis_client.zrange(keys.popular(bucket_of(now, bucket_s)), 0, -1, withscores=True)
    assert {item.decode(): score for item, score in counted} == expected
    times = dict(redis_client.zrange(keys.history_users(), 0, -1, withscores=True))
    assert times == {b"old": now, b"hot": hot[-1].timestamp, **{e.user_id.encode(): e.timestamp for e in others}}
    assert redis_client.hget(keys.history_applied(), "interactions:0") == b"1901"
