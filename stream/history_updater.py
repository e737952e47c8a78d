"""History updater worker (``learnrec stream history``): interactions -> user histories.

For every interaction, one Lua script per polled batch (one round trip, atomic per batch):

- ``SET {p}:event-seen:{event_id} NX EX ttl``: a re-delivered event (same ``event_id``) stops here;
- ``RPUSH`` the item id on ``{p}:history:{user_id}`` and ``LTRIM`` it to the last
  ``history_length`` items;
- ``ZINCRBY`` the item in the popularity bucket of the event's time (see :mod:`shared.popularity`).

Because the marker and the effects are written by one script, a crash can never leave an event
marked but not applied, or applied but not marked: a re-delivered batch has no second effect.
Items need not exist yet: the id is stored as is, the item may arrive later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from prometheus_client import Counter

from shared.config import Settings
from shared.popularity import bucket_of
from shared.redis_keys import RedisKeys
from shared.schemas import InteractionEvent
from shared.worker import Accepted, BatchResult

log = logging.getLogger(__name__)

INTERACTIONS = Counter("learnrec_interactions_total", "Interactions handled by the history updater", ["outcome"])

# KEYS: per event (seen marker, history list, popularity bucket), then the popularity clock.
# ARGV: dedup ttl, history length, popularity ttl, the batch's newest bucket, then the item id
# of each event. Returns the number applied. ZADD GT moves the clock forward only.
_APPLY_BATCH = """
local ttl, length, pop_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local applied = 0
for i = 1, (#KEYS - 1) / 3 do
  local base = (i - 1) * 3
  if redis.call('SET', KEYS[base + 1], '1', 'NX', 'EX', ttl) then
    local item = ARGV[4 + i]
    redis.call('RPUSH', KEYS[base + 2], item)
    redis.call('LTRIM', KEYS[base + 2], -length, -1)
    redis.call('ZINCRBY', KEYS[base + 3], 1, item)
    redis.call('EXPIRE', KEYS[base + 3], pop_ttl)
    applied = applied + 1
  end
end
if applied > 0 then
  redis.call('ZADD', KEYS[#KEYS], 'GT', ARGV[4], 'latest')
end
return applied
"""


class HistoryHandler:
    """The batch handler of the history updater worker."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, settings: Settings) -> None:
        self.keys = keys
        self.dedup_ttl_s = settings.event_dedup_ttl_s
        self.history_length = settings.history_length
        self.bucket_s = settings.popularity_bucket_s
        # A bucket lives as long as the window that reads it, plus one bucket of slack.
        self.popularity_ttl_s = settings.popularity_bucket_s * (settings.popularity_window_buckets + 1)
        self._apply = client.register_script(_APPLY_BATCH)

    def __call__(self, batch: Sequence[Accepted[InteractionEvent]]) -> BatchResult:
        keys: list[str] = []
        items: list[str] = []
        newest = 0
        for accepted in batch:  # one user's events share a partition: list order is log order
            event = accepted.event
            bucket = bucket_of(event.timestamp, self.bucket_s)
            newest = max(newest, bucket)
            keys += [
                self.keys.event_seen(event.event_id),
                self.keys.history(event.user_id),
                self.keys.popular(bucket),
            ]
            items.append(event.item_id)
        keys.append(self.keys.popular_clock())
        args = [self.dedup_ttl_s, self.history_length, self.popularity_ttl_s, newest, *items]
        applied = int(self._apply(keys=keys, args=args))
        INTERACTIONS.labels("applied").inc(applied)
        INTERACTIONS.labels("duplicate").inc(len(batch) - applied)
        log.debug("history batch", extra={"events": len(batch), "applied": applied})
        return BatchResult()
