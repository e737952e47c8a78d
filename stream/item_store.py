"""The item encoder's side of the version protocol: one atomic Redis write per batch.

For a batch of encoded items, :meth:`ItemStore.write` WATCHes ``model:current`` and
``model:preparing``, reads the active versions (current + preparing), projects the content
embeddings through each version's item tower, and in one MULTI/EXEC stores the item hashes,
adds them to ``items``, stores the vectors and announces them on ``item-updates``. When a
watched key changed in between (a publish began or flipped), nothing is written and the batch is
projected again under the new set of versions. See docs/VERSIONS.md for the argument.
:meth:`ItemStore.remove` takes items out the same way (tombstones, items made unavailable).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import redis
from prometheus_client import Counter

from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions.cache import VersionCache

log = logging.getLogger(__name__)

WRITE_RETRIES = Counter(
    "learnrec_item_write_retries_total", "Item batch writes redone because the model versions changed"
)


@dataclass(frozen=True)
class EncodedItem:
    """An item ready to store: ``fields`` are its text fields, ``content`` float32 ``[content_dim]``."""

    item_id: str
    fields: dict[str, str]
    content_hash: str
    content: np.ndarray


@dataclass
class WriteResult:
    """What one batch write did: versions written to and vectors announced per version."""

    versions: list[str] = field(default_factory=list)
    announced: dict[str, int] = field(default_factory=dict)


class ItemStore:
    """Reads and writes item state under one Redis prefix."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, towers: VersionCache, updates_maxlen: int) -> None:
        self.redis = client
        self.keys = keys
        self.towers = towers
        self.updates_maxlen = updates_maxlen

    def stored_hashes(self, item_ids: list[str]) -> list[str | None]:
        """The stored ``content_hash`` of each item (``None`` for an item not stored yet)."""
        pipe = self.redis.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.hget(self.keys.item(item_id), "content_hash")
        return [h.decode() if h else None for h in pipe.execute()]

    def write(self, changed: list[EncodedItem], unchanged_ids: list[str]) -> WriteResult:
        """Store ``changed`` items with vectors under every active version, and give each
        ``unchanged_ids`` item (stored already, same text) a vector under any active version it
        lacks one for. All or nothing; retried while the active versions move."""
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    versions = self.towers.registry.watch_active(pipe)
                    fills = self._missing_vectors(unchanged_ids, versions)
                    pipe.multi()
                    result = self._queue_writes(pipe, changed, fills, versions)
                    pipe.execute()
                    self.towers.retain(set(versions))
                    return result
                except redis.WatchError:
                    WRITE_RETRIES.inc()
                    log.info("model versions changed during an item write; writing again")

    def remove(self, deleted: list[str], unavailable: list[str]) -> None:
        """Take items out of the catalogue in one atomic write: out of ``items``, their vectors
        out of every version (rollback targets too), each announced on ``item-updates`` with
        ``removed`` = 1. ``deleted`` items (tombstones) lose their stored fields as well;
        ``unavailable`` ones keep them, so an event marking one available again brings it back
        without encoding it again. Retried while the active versions move, like :meth:`write`."""
        gone = deleted + unavailable
        if not gone:
            return
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    versions = self.towers.registry.watch_all(pipe)
                    pipe.multi()
                    pipe.srem(self.keys.items(), *gone)
                    if deleted:
                        pipe.delete(*(self.keys.item(i) for i in deleted))
                    for version in sorted(versions):
                        pipe.hdel(self.keys.vectors(version), *gone)
                    for item_id in gone:
                        pipe.xadd(self.keys.item_updates(), {"item_id": item_id, "removed": "1"},
                                  maxlen=self.updates_maxlen, approximate=True)
                    pipe.execute()
                    return
                except redis.WatchError:
                    WRITE_RETRIES.inc()
                    log.info("model versions changed during an item removal; removing again")

    def _missing_vectors(self, item_ids: list[str], versions: list[str]) -> dict[str, list[tuple[str, np.ndarray]]]:
        """Per version, the stored items lacking a vector there, with their content ``[D]``."""
        if not item_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for version in versions:
            pipe.hmget(self.keys.vectors(version), item_ids)
        lacking = {v: [i for i, vec in zip(item_ids, got, strict=True) if vec is None]
                   for v, got in zip(versions, pipe.execute(), strict=True)}
        needed = sorted({i for ids in lacking.values() for i in ids})
        if not needed:
            return {}
        for item_id in needed:
            pipe.hget(self.keys.item(item_id), "content")
        content = {i: np.frombuffer(c, np.float32) for i, c in zip(needed, pipe.execute(), strict=True)}
        return {v: [(i, content[i]) for i in ids] for v, ids in lacking.items() if ids}

    def _queue_writes(
        self,
        pipe: redis.client.Pipeline,
        changed: list[EncodedItem],
        fills: dict[str, list[tuple[str, np.ndarray]]],
        versions: list[str],
    ) -> WriteResult:
        result = WriteResult(versions=versions)
        for item in changed:
            key = self.keys.item(item.item_id)
            pipe.delete(key)  # fields absent from the new event must not linger
            pipe.hset(key, mapping={**item.fields, "content_hash": item.content_hash,
                                    "content": np.asarray(item.content, np.float32).tobytes()})
        stored = [item.item_id for item in changed] + [i for ids in fills.values() for i, _ in ids]
        if stored:  # a filled item is re-added too: after a partial wipe it may have left the set
            pipe.sadd(self.keys.items(), *stored)
        for version in versions:
            to_project = [(item.item_id, item.content) for item in changed] + fills.get(version, [])
            if not to_project:
                continue
            ids = [item_id for item_id, _ in to_project]
            vectors = self.towers.get(version).item_vectors(np.stack([c for _, c in to_project]), ids)
            pipe.hset(self.keys.vectors(version), mapping={i: v.tobytes() for i, v in zip(ids, vectors, strict=True)})
            for item_id in ids:
                pipe.xadd(self.keys.item_updates(), {"item_id": item_id, "version": version},
                          maxlen=self.updates_maxlen, approximate=True)
            result.announced[version] = len(ids)
        return result
