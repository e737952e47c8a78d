"""Item popularity over a recent window, for users with no history.

The history updater counts each interaction in the bucket ``floor(timestamp / bucket_s)``
(``{p}:popular:{bucket}``, a zset item_id -> count, expiring after the window). The popular
items are the sum over the last ``popularity_window_buckets`` buckets.
"""

from __future__ import annotations

import time

import redis

from shared.config import Settings
from shared.redis_keys import RedisKeys


def bucket_of(timestamp: float, bucket_s: int) -> int:
    """The popularity bucket of an event time (Unix seconds)."""
    return int(timestamp // bucket_s)


def popular_items(
    client: redis.Redis, settings: Settings, k: int, now: float | None = None
) -> list[tuple[str, float]]:
    """The ``k`` items with most interactions in the window ending at ``now``, most first."""
    keys = RedisKeys.from_settings(settings)
    last = bucket_of(time.time() if now is None else now, settings.popularity_bucket_s)
    buckets = [keys.popular(b) for b in range(last - settings.popularity_window_buckets + 1, last + 1)]
    counts = client.zunion(buckets, withscores=True)
    ranked = sorted(counts, key=lambda pair: (-pair[1], pair[0]))[:k]
    return [(item.decode(), score) for item, score in ranked]
