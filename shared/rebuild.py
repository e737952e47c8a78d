"""Refill a wiped (or replaced) Redis from the Kafka logs, without an operator step.

Redis holds rebuildable state only: item texts, embeddings and vectors come from the compacted
``items`` topic, histories and popularity from ``interactions``. Its *epoch* (``{p}:epoch``, a
random id) names one lifetime of that state: the first worker that finds none (a wiped, new or
replaced Redis) starts a new one, and with it marks every partition of every stream worker's
topic as *rebuilding* (``{p}:rebuilding``: ``{group}|{topic}|{partition}`` -> the offset the
partition must reach, ``-1`` until its worker has rewound it). Serving answers 503 while that
hash is not empty.

Each stream worker runs :meth:`ReplayGuard.check` before every poll. A partition it owns that
was not replayed under the current epoch (``{p}:replayed:{group}``) is read again from the
beginning of its log: its committed offset is set back there first (a crash cannot skip the
replay), its target becomes the log's end offset, and it is marked replayed. A partition whose
position (everything before it handled and committed) reached its target leaves
``rebuilding``. Records polled from a partition the guard has not checked yet (assigned by a
rebalance inside that poll) are not handled: :meth:`ReplayGuard.covers` says so, and the worker
rewinds them and checks again, so nothing is applied before its partition is replayed.
Effects that are not idempotent (the history updater's) are written only under the epoch they
were read under (see :mod:`learnrec.stream.history_updater`), so a wipe in the middle of a batch cannot
mix old and new state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from learnrec.shared.redis_keys import RedisKeys

log = logging.getLogger(__name__)

# KEYS[1] = epoch, KEYS[2] = rebuilding; ARGV[1] = a new epoch id, ARGV[2..] = the fields of
# every partition of every stream worker. Starts an epoch when there is none. Returns the epoch.
_BEGIN_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if epoch then
  return epoch
end
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #ARGV do
  redis.call('HSET', KEYS[2], ARGV[i], '-1')
end
return ARGV[1]
"""


def field(group: str, tp: TopicPartition) -> str:
    return f"{group}|{tp.topic}|{tp.partition}"


class ReplayGuard:
    """Replays a stream worker's partitions when Redis begins a new epoch (module docstring).

    ``group`` is the worker's consumer group; ``workers`` every (group, topic) of the stream
    workers, so that a new epoch marks all of them as rebuilding at once; ``on_replay`` runs
    before partitions are rewound (the item encoder restores the current model version).
    """

    def __init__(self, client: redis.Redis, keys: RedisKeys, group: str,
                 workers: Sequence[tuple[str, str]], on_replay: Callable[[], None] | None = None) -> None:
        self.redis = client
        self.keys = keys
        self.group = group
        self.workers = list(workers)
        self.on_replay = on_replay
        self.epoch: str | None = None
        self.checked: set[TopicPartition] = set()  # owned and replayed under ``epoch``
        self._begin = client.register_script(_BEGIN_EPOCH)

    def covers(self, records: Sequence[object]) -> bool:
        """Whether every record's partition was checked under the current epoch."""
        return all(TopicPartition(r.topic, r.partition) in self.checked for r in records)  # type: ignore[attr-defined]

    def begin(self, consumer: KafkaConsumer) -> str:
        """The current epoch; when there is none, start one and mark every stream worker's
        partitions as rebuilding (run it before restoring anything serving would read)."""
        raw = self.redis.get(self.keys.epoch())
        if raw is not None:
            return raw.decode()
        fields = [field(group, TopicPartition(topic, p))
                  for group, topic in self.workers for p in sorted(consumer.partitions_for_topic(topic) or ())]
        epoch = self._begin(keys=[self.keys.epoch(), self.keys.rebuilding()], args=[uuid.uuid4().hex, *fields])
        epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
        log.warning("redis has no epoch (new, wiped or replaced): epoch %s begins; rebuilding from the logs", epoch)
        return epoch

    def check(self, consumer: KafkaConsumer) -> set[TopicPartition]:
        """Rewind the owned partitions not replayed under the current epoch; clear the
        rebuilding mark of those that caught up. Returns the partitions rewound now."""
        self.epoch = self.begin(consumer)
        owned = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        self.checked = set()
        if not owned:
            return set()
        names = [field(self.group, tp) for tp in owned]
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.replayed(self.group), names)
            pipe.hmget(self.keys.rebuilding(), names)
            replayed, targets = pipe.execute()
        stale = [tp for tp, mark in zip(owned, replayed, strict=True) if mark is None or mark.decode() != self.epoch]
        if stale:
            self._replay(consumer, stale)
        done = [name for tp, name, target in zip(owned, names, targets, strict=True)
                if tp not in stale and target is not None and int(target) >= 0
                and consumer.position(tp) >= int(target)]
        if done:
            self.redis.hdel(self.keys.rebuilding(), *done)
            log.info("%s: rebuilt %s", self.group, done)
        self.checked = set(owned)
        return set(stale)

    def _replay(self, consumer: KafkaConsumer, stale: list[TopicPartition]) -> None:
        ends = consumer.end_offsets(stale)
        self.redis.hset(self.keys.rebuilding(), mapping={field(self.group, tp): ends[tp] for tp in stale})
        if self.on_replay is not None:
            self.on_replay()
        consumer.seek_to_beginning(*stale)
        starts = {tp: consumer.position(tp) for tp in stale}
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in starts.items()})
        self.redis.hset(self.keys.replayed(self.group), mapping={field(self.group, tp): self.epoch for tp in stale})
        log.warning("%s: replaying %s from the beginning under epoch %s",
                    self.group, {f"{tp.topic}:{tp.partition}": f"{starts[tp]}..{ends[tp]}" for tp in stale}, self.epoch)
