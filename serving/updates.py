"""Keeps loaded indexes current: tails the ``{p}:item-updates`` Redis Stream.

The stream has one entry per new or changed item vector (fields ``item_id``, ``version``),
written after the vector itself, and one per removed item (``item_id``, ``removed``), written
after its vectors were deleted from every version. A background thread reads it with ``XREAD
BLOCK`` from the stream's last id at construction time (taken before any version starts loading,
so nothing written during a load is missed) and brings the named items of each version that is
current or loading in line with Redis (one HMGET per version per batch): a vector there is
upserted, a missing one (the item was removed) is taken out of the index. Every entry also drops
the item from the content-embedding cache, since its text (and so its content embedding) may
have changed.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable

import redis

from learnrec.serving.index_store import stream_end
from learnrec.serving.versions import VersionHolder, refresh
from learnrec.shared.config import Settings
from learnrec.shared.redis_keys import RedisKeys

log = logging.getLogger(__name__)

READ_COUNT = 1000
BLOCK_MS = 1000
RETRY_S = 1.0


class UpdateTailer:
    """Background reader of ``{p}:item-updates`` feeding the live versions' indexes."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        holder: VersionHolder,
        on_items: Callable[[list[str]], None] = lambda item_ids: None,
    ) -> None:
        self._redis = client
        self._keys = RedisKeys.from_settings(settings)
        self._holder = holder
        self._on_items = on_items
        self._stop = threading.Event()
        self.last_id = stream_end(client, self._keys)
        self.applied = 0
        self._thread = threading.Thread(target=self._run, name="item-updates", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=BLOCK_MS / 1000 + 5)

    def _run(self) -> None:
        key = self._keys.item_updates()
        while not self._stop.is_set():
            try:
                reply = self._redis.xread({key: self.last_id}, count=READ_COUNT, block=BLOCK_MS)
                if reply:
                    entries = reply[0][1]
                    self.apply(entries)
                    self.last_id = entries[-1][0].decode()
            except Exception:  # Redis restarting: retry from the same id
                log.exception("reading item updates failed")
                self._stop.wait(RETRY_S)

    def apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Bring the items named by stream ``entries`` in line with Redis in the live versions'
        indexes: upsert the vectors there, remove the items without one."""
        by_version: dict[str, list[str]] = defaultdict(list)
        removed: list[str] = []
        for _, fields in entries:
            item_id, version = fields.get(b"item_id"), fields.get(b"version")
            if item_id and version:
                by_version[version.decode()].append(item_id.decode())
            elif item_id and fields.get(b"removed"):
                removed.append(item_id.decode())
        for version_id in self._holder.live_ids() if removed else ():
            by_version[version_id] += removed
        for version_id, named in by_version.items():
            item_ids = list(dict.fromkeys(named))
            self._on_items(item_ids)
            with self._holder.pin_live(version_id) as version:
                if version is not None:
                    self.applied += refresh(self._redis, self._keys, version, item_ids)
