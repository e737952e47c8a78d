"""In-process LRU cache of content embeddings (item id -> float32 ``[content_dim]``).

Content embeddings come from the frozen encoder and do not depend on the model version, so one
cache serves every version. An item update invalidates its entry; a generation counter keeps a
read that raced with the invalidation from putting the old embedding back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np


class ContentCache:
    """Bounded LRU map item id -> content embedding; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, item_ids: Iterable[str], dim: int) -> tuple[dict[str, np.ndarray], list[str]]:
        """(cached embeddings of width ``dim``, ids not cached at that width)."""
        found: dict[str, np.ndarray] = {}
        missing: list[str] = []
        with self._lock:
            for item_id in item_ids:
                vector = self._entries.get(item_id)
                if vector is not None and vector.shape[0] == dim:
                    self._entries.move_to_end(item_id)
                    found[item_id] = vector
                elif item_id not in found:
                    missing.append(item_id)
            self.hits += len(found)
            self.misses += len(missing)
        return found, missing

    def put_many(self, vectors: dict[str, np.ndarray], generation: int) -> None:
        """Store ``vectors`` read from Redis when :attr:`generation` was ``generation``."""
        with self._lock:
            if generation != self.generation or self.capacity == 0:
                return
            for item_id, vector in vectors.items():
                self._entries[item_id] = vector
                self._entries.move_to_end(item_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def invalidate(self, item_ids: Iterable[str]) -> None:
        with self._lock:
            self.generation += 1
            for item_id in item_ids:
                self._entries.pop(item_id, None)
