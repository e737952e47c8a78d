"""History updater worker (``learnrec stream history``): interactions -> user histories.

One Lua script per polled batch (one round trip, atomic per batch; the batch travels as one JSON
argument, so the client encodes one value, not nine per event). For every interaction:

- the partition's *applied watermark* (``{p}:history-applied``, field ``{topic}:{partition}``,
  the highest offset applied): a record at or below it was applied already (a re-delivery after
  a crash or a rebalance) and stops here. O(partitions) state, written with the effects;
- the user's recent event ids (``{p}:history-events:{user_id}``, as long as the history): an
  ``event_id`` among them is a producer's duplicate (a retry that wrote the event twice) and
  stops here;
- else append the item id to ``{p}:history:{user_id}``, kept to the last ``history_length``
  items, and count the item once more in the popularity bucket of the event's time (see
  :mod:`learnrec.shared.popularity`). The writes are per batch: one ``RPUSH`` per list of a user, one
  ``ZADD`` of summed counts per bucket (``ZMSCORE`` first), one ``ZADD GT`` of the users' times.

Bounded state: both per-user keys expire ``history_ttl_s`` after the user's last event, and at
most ``history_max_users`` users are kept (``{p}:history-users``, a zset by last event time:
past the cap the least recently active users' keys are deleted).

Because the watermark and the effects are written by one script, a crash can never leave a
record applied but not marked, or marked but not applied. On a Redis Cluster the handler returns
(and the worker commits the offsets) only once a replica holds the batch's writes
(:class:`~learnrec.shared.redis_client.ReplicationBarrier`): a master that fails over loses none. The script writes only under the Redis
epoch the batch was read under (:mod:`learnrec.shared.rebuild`): after a wipe it refuses, and the worker
replays its partitions from the beginning first. Items need not exist yet: the id is
stored as is, the item may arrive later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

import redis
from prometheus_client import Counter

from learnrec.shared.config import Settings
from learnrec.shared.popularity import bucket_of
from learnrec.shared.redis_client import ReplicationBarrier
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent
from learnrec.shared.worker import Accepted, BatchResult

log = logging.getLogger(__name__)

INTERACTIONS = Counter("learnrec_interactions_total", "Interactions handled by the history updater", ["outcome"])

# A producer's retry lands among the user's next few events: the ids kept to recognise it.
RECENT_EVENT_IDS = 16

# KEYS: the watermarks hash, the users zset, the popularity clock, the epoch, then the batch's
# popularity buckets. ARGV: history length, recent ids kept, history ttl, max users, popularity
# ttl, the batch's newest bucket, the history and event-ids key prefixes, the epoch the batch was
# read under ('' = unchecked), then the batch as JSON: [watermark fields, events], an event being
# [field index, offset, bucket index, time, user id, item id, event id] (indexes from 1). Returns
# {applied, redelivered, duplicate}, or an error when the epoch changed (a wiped Redis: the batch
# must be replayed in order). A user's applied events are pushed in one RPUSH per list, the
# batch's popularity counts added once per item; ZADD GT moves the clock and a user's last-event
# time forward only.
_APPLY_BATCH = """
local length, recent, ttl, max_users = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local pop_ttl, newest, history_prefix, events_prefix = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if ARGV[9] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[9] then
  return redis.error_reply('the redis epoch changed: replay first')
end
local batch = cjson.decode(ARGV[10])
local fields = batch[1]
local applied, redelivered, duplicate = 0, 0, 0
local marks, moved, users, order, counts = {}, {}, {}, {}, {}
for _, e in ipairs(batch[2]) do
  local f, offset, user, event_id = e[1], e[2], e[5], e[7]
  local mark = marks[f] or tonumber(redis.call('HGET', KEYS[1], fields[f]) or '-1')
  if offset <= mark then
    marks[f] = mark
    redelivered = redelivered + 1
  else
    marks[f], moved[f] = offset, true
    local u = users[user]
    if u == nil then
      u = {key = events_prefix .. user, seen = {}, items = {}, ids = {}}
      users[user], order[#order + 1] = u, user
    end
    if u.seen[event_id] or redis.call('LPOS', u.key, event_id) then
      duplicate = duplicate + 1
    else
      u.seen[event_id] = true
      if #u.ids == 0 or e[4] > u.time then u.time = e[4] end
      u.items[#u.items + 1], u.ids[#u.ids + 1] = e[6], event_id
      local c = counts[e[3]] or {}
      counts[e[3]], c[e[6]] = c, (c[e[6]] or 0) + 1
      applied = applied + 1
    end
  end
end
for f in pairs(moved) do
  redis.call('HSET', KEYS[1], fields[f], marks[f])
end
local function push(key, values, keep)  -- RPUSH in slices (unpack's limit), LTRIM when longer
  local n = 0
  for i = 1, #values, 1000 do
    n = redis.call('RPUSH', key, unpack(values, i, math.min(i + 999, #values)))
  end
  if n > keep then redis.call('LTRIM', key, -keep, -1) end
  redis.call('EXPIRE', key, ttl)
end
local last = {}
for _, user in ipairs(order) do
  local u = users[user]
  if #u.items > 0 then
    push(history_prefix .. user, u.items, length)
    push(u.key, u.ids, recent)
    last[#last + 1], last[#last + 2] = u.time, user
  end
end
for i = 1, #last, 1000 do
  redis.call('ZADD', KEYS[2], 'GT', unpack(last, i, math.min(i + 999, #last)))
end
for b, c in pairs(counts) do  -- a ZINCRBY per item, as one ZMSCORE and one ZADD per 500 items
  local key, items = KEYS[4 + b], {}
  for item in pairs(c) do items[#items + 1] = item end
  for i = 1, #items, 500 do
    local slice = {unpack(items, i, math.min(i + 499, #items))}
    local scores, sums = redis.call('ZMSCORE', key, unpack(slice)), {}
    for j, item in ipairs(slice) do
      sums[2 * j - 1], sums[2 * j] = (tonumber(scores[j]) or 0) + c[item], item
    end
    redis.call('ZADD', key, unpack(sums))
  end
  redis.call('EXPIRE', key, pop_ttl)
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
        :class:`~learnrec.shared.rebuild.ReplayGuard`'s); None writes without that check."""
        self.keys = keys
        self._epoch = epoch or (lambda: None)
        self.history_length = settings.stream.history_length
        self.history_ttl_s = settings.stream.history_ttl_s
        self.max_users = settings.stream.history_max_users
        self.bucket_s = settings.stream.popularity_bucket_s
        # A bucket lives as long as the window that reads it, plus one bucket of slack.
        self.popularity_ttl_s = settings.stream.popularity_bucket_s * (settings.stream.popularity_window_buckets + 1)
        self._apply = client.register_script(_APPLY_BATCH)
        self._replicated = ReplicationBarrier(client, settings)

    def __call__(self, batch: Sequence[Accepted[InteractionEvent]]) -> BatchResult:
        fields: dict[tuple[str, int], int] = {}  # (topic, partition) -> index from 1
        buckets: dict[int, int] = {}  # popularity bucket -> index from 1
        rows = []
        for accepted in batch:  # one user's events share a partition: list order is log order
            event, record = accepted.event, accepted.record
            field = fields.setdefault((record.topic, record.partition), len(fields) + 1)
            bucket = buckets.setdefault(bucket_of(event.timestamp, self.bucket_s), len(buckets) + 1)
            rows.append((field, record.offset, bucket, event.timestamp, event.user_id, event.item_id,
                         event.event_id))
        keys = [self.keys.history_applied(), self.keys.history_users(), self.keys.popular_clock(),
                self.keys.epoch(), *(self.keys.popular(b) for b in buckets)]
        payload = json.dumps([[f"{topic}:{partition}" for topic, partition in fields], rows],
                             ensure_ascii=False, separators=(",", ":"))
        args = [self.history_length, RECENT_EVENT_IDS, self.history_ttl_s, self.max_users,
                self.popularity_ttl_s, max(buckets, default=0), self.keys.history(""),
                self.keys.history_events(""), self._epoch() or "", payload]
        applied, redelivered, duplicate = (int(n) for n in self._apply(keys=keys, args=args))
        self._replicated()  # on a Redis Cluster: on a replica too before the offsets are committed
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
