"""Popular items, the answer for users without a usable history.

The history updater counts interactions in ``{p}:popular:{bucket}`` zsets, one per
``popularity_bucket_s`` seconds. A background thread merges the ``popularity_window_buckets``
of them that end at the stream's clock every ``serving_popular_refresh_s`` seconds into an
in-process ranking, so requests never wait on it. Each bucket contributes its top
:data:`PER_BUCKET` items: an approximation of the window's top items that keeps the refresh cost
bounded however large the catalogue.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Collection, Container

import redis

from learnrec.shared.config import Settings
from learnrec.shared.popularity import bucket_of, window_end
from learnrec.shared.redis_keys import RedisKeys

log = logging.getLogger(__name__)

PER_BUCKET = 2000


class PopularItems:
    """The window's most interacted-with items, refreshed in the background."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self._settings = settings
        self._redis = client
        self._keys = RedisKeys.from_settings(settings)
        self._ranking: list[tuple[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="popular-items", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def top(self, k: int, exclude: Collection[str] = (), servable: Container[str] | None = None) -> list[tuple[str, float]]:
        """Up to ``k`` (item id, interaction count) pairs, most popular first, leaving out the
        items in ``exclude`` and, when given, those not in ``servable`` (removed or unavailable
        items: not in the version's index)."""
        ranking = self._ranking
        if not exclude and servable is None:
            return ranking[:k]
        return [pair for pair in ranking
                if pair[0] not in exclude and (servable is None or pair[0] in servable)][:k]

    def refresh(self, now: float | None = None) -> None:
        """Re-read the window's buckets from Redis (ending at the stream's clock by default, see
        :mod:`learnrec.shared.popularity`)."""
        bucket_s = self._settings.stream.popularity_bucket_s
        bucket = window_end(self._redis, self._keys, bucket_s) if now is None else bucket_of(now, bucket_s)
        pipe = self._redis.pipeline(transaction=False)
        for b in range(bucket - self._settings.stream.popularity_window_buckets + 1, bucket + 1):
            pipe.zrange(self._keys.popular(b), 0, PER_BUCKET - 1, desc=True, withscores=True)
        counts: Counter[str] = Counter()
        for entries in pipe.execute():
            for item_id, score in entries:
                counts[item_id.decode()] += score
        self._ranking = counts.most_common(PER_BUCKET)

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:
                log.exception("refreshing popular items failed")
            if self._stop.wait(self._settings.serving.popular_refresh_s):
                return
