"""Item popularity over a recent window, for users with no history.

The history updater counts each interaction in the bucket ``floor(timestamp / bucket_s)``
(``{p}:popular:{bucket}``, a zset item_id -> count, expiring after the window) and advances the
stream's clock, ``{p}:popular-clock`` (the newest bucket counted, only ever moving forward).
The popular items are the sum over the ``popularity_window_buckets`` buckets ending at that
clock: event time, not wall-clock time, so a replay or a backfill of older events has a
popularity window too, and a quiet night does not empty it.
"""

from __future__ import annotations

import time

import redis

from learnrec.shared.config import Settings
from learnrec.shared.redis_keys import RedisKeys


def bucket_of(timestamp: float, bucket_s: int) -> int:
    """The popularity bucket of an event time (Unix seconds)."""
    return int(timestamp // bucket_s)


CLOCK_MEMBER = "latest"


def window_end(client: redis.Redis, keys: RedisKeys, bucket_s: int) -> int:
    """The newest bucket counted by the history updater (the current one before any event)."""
    latest = client.zscore(keys.popular_clock(), CLOCK_MEMBER)
    return int(latest) if latest is not None else bucket_of(time.time(), bucket_s)


def popular_items(
    client: redis.Redis, settings: Settings, k: int, now: float | None = None
) -> list[tuple[str, float]]:
    """The ``k`` items with most interactions in the window ending at ``now`` (default: the
    stream's clock), most first."""
    keys = RedisKeys.from_settings(settings)
    bucket_s = settings.stream.popularity_bucket_s
    last = window_end(client, keys, bucket_s) if now is None else bucket_of(now, bucket_s)
    buckets = [keys.popular(b) for b in range(last - settings.stream.popularity_window_buckets + 1, last + 1)]
    counts = client.zunion(buckets, withscores=True)
    ranked = sorted(counts, key=lambda pair: (-pair[1], pair[0]))[:k]
    return [(item.decode(), score) for item, score in ranked]
