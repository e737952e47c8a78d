"""A frozen copy of one model version that ranks the catalogue as serving would, never updated.

The demo scores it beside the served (online) model on the same requests: it answers what the
system would have answered had the online trainer never published anything after the live
stream began. Items arriving later get vectors from its own item tower as they appear.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis

from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions.towers import LoadedVersion, VersionInfo


@dataclass(frozen=True)
class FrozenQuery:
    """One request: the history the API saw (oldest first), the item clicked next, and how many
    catalogue rows were known at that moment (later rows are out of reach)."""

    history: list[str]
    target: str
    known_items: int


class FrozenVersion:
    """A private copy of a version folder plus the item vectors of every item seen so far."""

    def __init__(self, info: VersionInfo, folder: Path, client: redis.Redis, keys: RedisKeys) -> None:
        copy = folder / info.version
        if not copy.exists():
            shutil.copytree(info.path, copy)  # the trainer prunes old version folders
        self.towers = LoadedVersion(dataclasses.replace(info, path=copy))
        self.info = self.towers.info
        self._redis = client
        self._keys = keys
        self._members = 0  # size of the Redis item set at the last sync
        self.row_of: dict[str, int] = {}
        self._content = np.zeros((0, info.content_dim), np.float32)  # [N, content_dim]
        self._vectors = np.zeros((0, info.output_dim), np.float32)   # [N, output_dim]

    def __len__(self) -> int:
        return len(self.row_of)

    def sync(self, members: int) -> int:
        """Add the items that got content since the last sync (``members``: the size of the
        Redis item set now, so an unchanged catalogue costs nothing). Returns the catalogue size."""
        if members == self._members:
            return len(self.row_of)
        ids = {raw.decode() for raw in self._redis.smembers(self._keys.items())}
        new = sorted(ids - self.row_of.keys())
        pipe = self._redis.pipeline(transaction=False)
        for item_id in new:
            pipe.hget(self._keys.item(item_id), "content")
        dim = self.info.content_dim
        found = [(i, raw) for i, raw in zip(new, pipe.execute(), strict=True) if raw and len(raw) == 4 * dim]
        if found:
            content = np.stack([np.frombuffer(raw, np.float32) for _, raw in found])
            vectors = self.towers.item_vectors(content, [i for i, _ in found])
            for item_id, _ in found:
                self.row_of[item_id] = len(self.row_of)
            self._content = np.concatenate([self._content, content])
            self._vectors = np.concatenate([self._vectors, vectors])
        self._members = len(ids) if len(found) == len(new) else -1  # retry items without content
        return len(self.row_of)

    def hits(self, queries: Sequence[FrozenQuery], k: int = 10) -> list[bool | None]:
        """Whether each query's target ranks in the top ``k`` of the catalogue known at its
        moment, history items excluded (the API's ``exclude_seen``); None for a query without a
        known history item (serving answers those from popularity, not from a model)."""
        histories = [[i for i in q.history if i in self.row_of][-self.info.max_history:] for q in queries]
        usable = [b for b, history in enumerate(histories) if history]
        out: list[bool | None] = [None] * len(queries)
        if not usable:
            return out
        width = max(len(histories[b]) for b in usable)
        rows = np.zeros((len(usable), width), np.int64)
        mask = np.zeros((len(usable), width), np.int64)
        for n, b in enumerate(usable):
            rows[n, : len(histories[b])] = [self.row_of[i] for i in histories[b]]
            mask[n, : len(histories[b])] = 1
        users = self.towers.user_vectors(self._content[rows], mask, [histories[b] for b in usable])
        scores = users @ self._vectors.T  # [len(usable), N]
        for n, b in enumerate(usable):
            query = queries[b]
            target = self.row_of.get(query.target)
            if target is None or target >= query.known_items or query.target in query.history:
                out[b] = False  # not servable yet, or excluded as already seen
                continue
            scores[n, rows[n, mask[n] == 1]] = -np.inf
            scores[n, query.known_items:] = -np.inf
            own = scores[n, target]
            out[b] = int((scores[n] > own).sum() + (scores[n] == own).sum() - 1) < k  # ties count against it
        return out
