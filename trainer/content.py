"""Content embeddings for the trainer: an in-memory table filled from Redis on demand.

The item encoder writes every item's content embedding (float32 ``[content_dim]`` bytes) to
``{p}:item:{item_id}`` field ``content``. The trainer needs them for every item of every batch,
so it keeps a dense table ``[n_items, content_dim]`` plus ``item_id -> row``, fetching misses
with one pipelined round trip per batch. A publish reads every item anyway and refreshes the
table (:meth:`ContentTable.update`), which also picks up items whose text changed, and then
marks the rows of items no longer in the catalogue (removed, unavailable) as out
(:meth:`ContentTable.keep_only`): they stay usable as history and targets, but
:meth:`ContentTable.catalogue_rows`, where negatives are drawn from, leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import redis

from learnrec.shared.redis_keys import RedisKeys


class ContentTable:
    """item_id -> content embedding float32 ``[content_dim]``."""

    def __init__(self, content_dim: int, client: redis.Redis | None = None, keys: RedisKeys | None = None) -> None:
        self.content_dim = content_dim
        self._redis = client
        self._keys = keys
        self._rows: dict[str, int] = {}
        self._ids: list[str] = []  # the item id of each row
        self._table = np.zeros((1024, content_dim), np.float32)
        self._in = np.ones(1024, bool)  # whether each row's item is in the catalogue

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._rows

    def update(self, item_ids: list[str], content: np.ndarray, in_catalogue: bool = True) -> None:
        """Insert or overwrite rows: ``content`` float32 ``[n, content_dim]``; the items are in
        the catalogue or, with ``in_catalogue=False``, out of it."""
        if content.ndim != 2 or (len(item_ids) and content.shape[1] != self.content_dim):
            raise ValueError(f"content must be [n, {self.content_dim}], got {content.shape}")
        for item_id, vector in zip(item_ids, content, strict=True):
            row = self._rows.get(item_id)
            if row is None:
                row = self._rows[item_id] = len(self._rows)
                self._ids.append(item_id)
                if row == len(self._table):
                    grown = np.zeros((2 * len(self._table), self.content_dim), np.float32)
                    grown[:row] = self._table
                    self._table = grown
                    self._in = np.concatenate([self._in, np.ones(len(self._in), bool)])
            self._table[row] = vector
            self._in[row] = in_catalogue

    def keep_only(self, item_ids: set[str]) -> None:
        """Mark every row whose item is not in ``item_ids`` (the whole catalogue) as out of it."""
        self._in[: len(self._ids)] = [item_id in item_ids for item_id in self._ids]

    def catalogue_rows(self) -> np.ndarray:
        """Row indices int64 ``[m]`` of the items in the catalogue (the negatives' pool)."""
        return np.flatnonzero(self._in[: len(self._ids)]).astype(np.int64)

    def fetch_missing(self, item_ids: Iterable[str]) -> None:
        """Read the content of every id not in the table from Redis (ids without one stay out),
        and whether each is in the catalogue (an unavailable item has content but is not)."""
        missing = sorted({i for i in item_ids if i not in self._rows})
        if not missing or self._redis is None or self._keys is None:
            return
        pipe = self._redis.pipeline(transaction=False)
        for item_id in missing:
            pipe.hget(self._keys.item(item_id), "content")
        pipe.smismember(self._keys.items(), missing)
        *blobs, member = pipe.execute()
        found = [(i, raw, bool(m)) for i, raw, m in zip(missing, blobs, member, strict=True) if raw]
        for in_catalogue in (True, False):
            some = [(i, raw) for i, raw, m in found if m == in_catalogue]
            if some:
                self.update([i for i, _ in some], np.stack([np.frombuffer(r, np.float32) for _, r in some]),
                            in_catalogue)

    def rows(self, item_ids: list[str]) -> np.ndarray:
        """Row indices int64 ``[n]`` of known ids (raises KeyError on an unknown one)."""
        return np.fromiter((self._rows[i] for i in item_ids), np.int64, len(item_ids))

    def item_ids(self, rows: np.ndarray) -> list[str]:
        """The item id of each row index (``rows`` int64 [n])."""
        return [self._ids[r] for r in rows.tolist()]

    def lookup(self, rows: np.ndarray) -> np.ndarray:
        """Content float32 ``[*rows.shape, content_dim]`` for row indices of any shape."""
        return self._table[rows]
