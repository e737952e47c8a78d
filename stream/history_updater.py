"""History updater worker (``learnrec stream history``): interactions -> user histories.

One Lua script per polled batch (one round trip, atomic per batch). For every interaction:

- the partition's *applied watermark* (``{p}:history-applied``, field ``{topic}:{partition}``,
  the highest offset applied): a record at or below it was applied already (a re-delivery after
  a crash or a rebalance) and stops here. O(partitions) state, written with the effects;
- the user's recent event ids (``{p}:history-events:{user_id}``, as long as the history): an
  ``event_id`` among them is a producer's duplicate (a retry that wrote the event twice) and
  stops here;
- else ``RPUSH`` the item id on ``{p}:history:{user_id}`` and ``LTRIM`` it to the last
  ``history_length`` items, and ``ZINCRBY`` the item in the popularity bucket of the event's
  time (see :mod:`shared.popularity`).

Bounded state: both per-user keys expire ``history_ttl_s`` after the user's last event, and at
most ``history_max_users`` users are kept (``{p}:history-users``, a zset by last event time:
past the cap the least recently active users' keys are deleted).

Because the watermark and the effects are written by one script, a crash can never leave a
record applied but not marked, or marked but not applied. The script writes only under the Redis
epoch the batch was read under (:mod:`shared.rebuild`): after a wipe it refuses, and the worker
replays its partitions from the beginning first. Items need not exist yet: the id is
stored as is, the item may arrive later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import redis
from prometheus_client import Counter

from shared.config import Settings
from shared.popularity import bucket_of
from shared.redis_keys import RedisKeys
from shared.schemas import InteractionEvent
from shared.worker import Accepted, BatchResult

log = logging.getLogger(__name__)

INTERACTIONS = Counter("learnrec_interactions_total", "Interactions handled by the history updater", ["outcome"])

# A producer's retry lands among the user's next few events: the ids kept to recognise it.
RECENT_EVENT_IDS = 16

# KEYS: the watermarks hash, the users zset, the popularity clock, the epoch, then per event
# (history, recent event ids, popularity bucket). ARGV: history length, recent ids kept, history
# ttl, max users, popularity ttl, the batch's newest bucket, the history and event-ids key
# prefixes, the epoch the batch was read under ('' = unchecked), then per event (watermark
# field, offset, item id, event id, time, user id). Returns {applied, redelivered, duplicate},
# or an error when the epoch changed (a wiped Redis: the batch must be replayed in order).
# ZADD GT moves the clock and a user's last-event time forward only.
_APPLY_BATCH = """
local length, recent, ttl, max_users = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local pop_ttl, newest, history_prefix, events_prefix = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if ARGV[9] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[9] then
  return redis.error_reply('the redis epoch changed: replay first')
end
local applied, redelivered, duplicate = 0, 0, 0
local marks, touched, buckets = {}, {}, {}
for i = 1, (#KEYS - 4) / 3 do
  local k, a = 4 + (i - 1) * 3, 9 + (i - 1) * 6
  local field, offset = ARGV[a + 1], tonumber(ARGV[a + 2])
  local item, event_id, time, user = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  if marks[field] == nil then
    marks[field] = tonumber(redis.call('HGET', KEYS[1], field) or '-1')
  end
  if offset <= marks[field] then
    redelivered = redelivered + 1
  else
    marks[field] = offset
    if redis.call('LPOS', KEYS[k + 2], event_id) then
      duplicate = duplicate + 1
    else
      redis.call('RPUSH', KEYS[k + 1], item)
      redis.call('RPUSH', KEYS[k + 2], event_id)
      redis.call('ZINCRBY', KEYS[k + 3], 1, item)
      local last = touched[user]
      if last == nil or tonumber(time) > tonumber(last[2]) then
        touched[user] = {k, time}
      end
      buckets[KEYS[k + 3]] = true
      applied = applied + 1
    end
  end
end
for field, offset in pairs(marks) do
  redis.call('HSET', KEYS[1], field, offset)
end
for user, last in pairs(touched) do  -- once per user and bucket, not per event
  local k = last[1]
  redis.call('LTRIM', KEYS[k + 1], -length, -1)
  redis.call('LTRIM', KEYS[k + 2], -recent, -1)
  redis.call('EXPIRE', KEYS[k + 1], ttl)
  redis.call('EXPIRE', KEYS[k + 2], ttl)
  redis.call('ZADD', KEYS[2], 'GT', last[2], user)
end
for bucket in pairs(buckets) do
  redis.call('EXPIRE', bucket, pop_ttl)
end
local excess = redis.call('ZCARD', KEYS[2]) - max_users
if excess > 0 then
  local evicted = redis.call('ZPOPMIN', KEYS[2], excess)
  for j = 1, #evicted, 2 do
    redis.call('DEL', history_prefix .. evicted[j], events_prefix .. evicted[j])
  end
end
if applied > 0 then
  redis.call('ZADD', KEYS[3], 'GT', newest, 'latest')
end
return {applied, redelivered, duplicate}
"""


class HistoryHandler:
    """The batch handler of the history updater worker."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, settings: Settings,
                 epoch: Callable[[], str | None] | None = None) -> None:
        """``epoch``: the Redis epoch the worker's partitions were replayed under (its
        :class:`~shared.rebuild.ReplayGuard`'s); None writes without that check."""
        self.keys = keys
        self._epoch = epoch or (lambda: None)
        self.history_length = settings.history_length
        self.history_ttl_s = settings.history_ttl_s
        self.max_users = settings.history_max_users
        self.bucket_s = settings.popularity_bucket_s
        # A bucket lives as long as the window that reads it, plus one bucket of slack.
        self.popularity_ttl_s = settings.popularity_bucket_s * (settings.popularity_window_buckets + 1)
        self._apply = client.register_script(_APPLY_BATCH)

    def __call__(self, batch: Sequence[Accepted[InteractionEvent]]) -> BatchResult:
        keys = [self.keys.history_applied(), self.keys.history_users(), self.keys.popular_clock(), self.keys.epoch()]
        args: list = [self.history_length, RECENT_EVENT_IDS, self.history_ttl_s, self.max_users,
                      self.popularity_ttl_s, 0, self.keys.history(""), self.keys.history_events(""),
                      self._epoch() or ""]
        newest = 0
        for accepted in batch:  # one user's events share a partition: list order is log order
            event, record = accepted.event, accepted.record
            bucket = bucket_of(event.timestamp, self.bucket_s)
            newest = max(newest, bucket)
            keys += [self.keys.history(event.user_id), self.keys.history_events(event.user_id),
                     self.keys.popular(bucket)]
            args += [f"{record.topic}:{record.partition}", record.offset, event.item_id, event.event_id,
                     event.timestamp, event.user_id]
        args[5] = newest
        applied, redelivered, duplicate = (int(n) for n in self._apply(keys=keys, args=args))
        INTERACTIONS.labels("applied").inc(applied)
        INTERACTIONS.labels("redelivered").inc(redelivered)
        INTERACTIONS.labels("duplicate").inc(duplicate)
        log.debug("history batch", extra={"events": len(batch), "applied": applied,
                                           "redelivered": redelivered, "duplicate": duplicate})
        if log.isEnabledFor(logging.DEBUG):  # tracing: one line per event, at DEBUG only
            for accepted in batch:
                event, record = accepted.event, accepted.record
                log.debug("history event", extra={
                    "event_id": event.event_id, "user_id": event.user_id, "item_id": event.item_id,
                    "partition": record.partition, "offset": record.offset})
        return BatchResult()
