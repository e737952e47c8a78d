"""Recommendation logic: history -> content embeddings -> user vector -> nearest items.

Every answer pins one model version (:meth:`VersionHolder.pin_current`) for its whole life: the
user tower that makes the user vector and the index searched are that version's. The request
path costs one Redis round trip when the content cache is warm (``LRANGE`` of the history) and a
second, pipelined one for the embeddings it misses (``HGET {p}:item:{id} content`` each). The
user tower and the index search of concurrent requests run in batches, one per turn of the event
loop (:mod:`learnrec.serving.model_step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import redis.asyncio as aioredis

from learnrec.serving.content_cache import ContentCache
from learnrec.serving.filters import NO_FILTER, FactsReader, ItemFilter, filtered
from learnrec.serving.model_step import ModelStep
from learnrec.serving.popular import PopularItems
from learnrec.serving.versions import ServingVersion, VersionHolder
from learnrec.shared.redis_keys import RedisKeys

Source = Literal["personal", "popular", "similar"]


class UnknownItems(LookupError):
    """None of the given item ids is known."""


@dataclass(frozen=True)
class Answer:
    """One recommendation list, all from ``version``."""

    version: str
    source: Source
    items: list[tuple[str, float]]
    unknown: list[str] = field(default_factory=list)


class Recommender:
    """Answers for a stored user, a posted history, or an item."""

    def __init__(
        self,
        keys: RedisKeys,
        client: aioredis.Redis,
        holder: VersionHolder,
        cache: ContentCache,
        popular: PopularItems,
        model_step: ModelStep,
    ) -> None:
        self._keys = keys
        self._redis = client
        self._holder = holder
        self._cache = cache
        self._popular = popular
        self._model_step = model_step
        self._facts = FactsReader(client, keys)

    async def for_user(self, user_id: str, k: int, exclude_seen: bool = True,
                       item_filter: ItemFilter = NO_FILTER) -> Answer:
        """From the user's stored history (newest ``max_history`` items); popular without one."""
        with self._holder.pin_current() as version:
            raw = await self._redis.lrange(self._keys.history(user_id), -version.max_history, -1)
            history = [item_id.decode() for item_id in raw]
            contents = await self.contents(history, version.content_dim)
            return await self._answer(version, history, contents, k, exclude_seen, item_filter)

    async def for_items(self, item_ids: Sequence[str], k: int, exclude_seen: bool = True,
                        item_filter: ItemFilter = NO_FILTER) -> Answer:
        """From a posted history (oldest first); unknown ids are skipped and reported.

        Raises :class:`UnknownItems` when no id is known.
        """
        with self._holder.pin_current() as version:
            contents = await self.contents(item_ids, version.content_dim)
            if not contents:
                raise UnknownItems("none of the item ids is known")
            answer = await self._answer(version, item_ids, contents, k, exclude_seen, item_filter)
            unknown = list(dict.fromkeys(i for i in item_ids if i not in contents))
            return Answer(answer.version, answer.source, answer.items, unknown)

    async def similar(self, item_id: str, k: int, item_filter: ItemFilter = NO_FILTER) -> Answer:
        """The items nearest to ``item_id`` in the current version (inner product of the served
        item vectors: with a content blend, the towers' cosine plus the content cosine); raises
        :class:`UnknownItems`."""
        with self._holder.pin_current() as version:
            vector = version.index.vector(item_id)
            if vector is None:
                raise UnknownItems(f"item {item_id!r} has no vector in model version {version.version}")
            skip = item_filter.exclude | {item_id}
            items = await filtered(lambda n: version.index.search(vector, n, skip), k, item_filter, self._facts)
            return Answer(version.version, "similar", items)

    async def contents(self, item_ids: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """Content embeddings ``[dim]`` of the ids that have one: cache first, then Redis."""
        found, missing = self._cache.get_many(item_ids, dim)
        if missing:
            generation = self._cache.generation
            pipe = self._redis.pipeline(transaction=False)
            for item_id in missing:
                pipe.hget(self._keys.item(item_id), "content")
            fetched = {
                item_id: np.frombuffer(blob, dtype=np.float32)
                for item_id, blob in zip(missing, await pipe.execute(), strict=True)
                if blob is not None and len(blob) == 4 * dim
            }
            self._cache.put_many(fetched, generation)
            found.update(fetched)
        return found

    async def _answer(
        self,
        version: ServingVersion,
        history: Sequence[str],
        contents: dict[str, np.ndarray],
        k: int,
        exclude_seen: bool,
        item_filter: ItemFilter,
    ) -> Answer:
        skip = (set(history) if exclude_seen else set()) | item_filter.exclude
        known = [i for i in history if i in contents][-version.max_history :]
        if not known:
            items = await filtered(lambda n: self._popular.top(n, skip, version.index), k, item_filter, self._facts)
            return Answer(version.version, "popular", items)
        content = np.stack([contents[i] for i in known])  # [L, content_dim]
        if not item_filter.reads_facts:
            items = await self._model_step.search(version, known, content, k, skip)
            return Answer(version.version, "personal", items)
        user = await self._model_step.user_vector(version, known, content)  # [vector_dim]
        items = await filtered(lambda n: version.index.search(user, n, skip), k, item_filter, self._facts)
        return Answer(version.version, "personal", items)
