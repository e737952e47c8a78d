"""Request filters: leave given items out, keep only items of a category or with attributes.

The item index knows vectors only; an item's ``category`` and ``attributes`` live in its Redis
hash (written by the item encoder). A filtered answer therefore searches for more candidates
than asked, reads the candidates' facts in one pipelined round trip, keeps the matching ones,
and searches again for four times as many while fewer than ``k`` match and the index has more:
an answer comes back short only when fewer than ``k`` items match at all among the first
:data:`MAX_CANDIDATES` candidates.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from learnrec.shared.redis_keys import RedisKeys

MAX_CANDIDATES = 20_000
GROWTH = 4

Scored = list[tuple[str, float]]


@dataclass(frozen=True)
class ItemFacts:
    """What filters read of an item: its category and attributes (empty when it has none)."""

    category: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemFilter:
    """``exclude``: item ids never returned; ``category``: exact match; ``attributes``: every
    (name, value) pair must match."""

    exclude: frozenset[str] = frozenset()
    category: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def reads_facts(self) -> bool:
        return self.category is not None or bool(self.attributes)

    def matches(self, facts: ItemFacts) -> bool:
        if self.category is not None and facts.category != self.category:
            return False
        return all(facts.attributes.get(name) == value for name, value in self.attributes)


NO_FILTER = ItemFilter()


def parse_attributes(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    """``["colour=red", ...]`` -> ``(("colour", "red"), ...)``; raises ValueError naming the bad one."""
    parsed = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"attribute filters are name=value, got {pair!r}")
        parsed.append((name, value))
    return tuple(parsed)


class FactsReader:
    """Reads items' facts from their Redis hashes (one pipelined round trip per call)."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys

    async def __call__(self, item_ids: list[str]) -> dict[str, ItemFacts]:
        pipe = self._redis.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.hmget(self._keys.item(item_id), ["category", "attributes"])
        facts = {}
        for item_id, (category, attributes) in zip(item_ids, await pipe.execute(), strict=True):
            facts[item_id] = ItemFacts(category.decode() if category else None,
                                       json.loads(attributes) if attributes else {})
        return facts


async def filtered(
    search: Callable[[int], Scored],
    k: int,
    item_filter: ItemFilter,
    read_facts: Callable[[list[str]], Awaitable[dict[str, ItemFacts]]],
) -> Scored:
    """The best ``k`` matching items. ``search(n)`` gives the best ``n`` candidates, best first,
    already without ``item_filter.exclude``; fewer than ``n`` means there are no more."""
    if not item_filter.reads_facts:
        return search(k)
    known: dict[str, ItemFacts] = {}
    wanted = min(k * GROWTH, MAX_CANDIDATES)
    while True:
        candidates = search(wanted)
        new = [item_id for item_id, _ in candidates if item_id not in known]
        if new:
            known.update(await read_facts(new))
        kept = [(item_id, score) for item_id, score in candidates if item_filter.matches(known[item_id])]
        if len(kept) >= k or len(candidates) < wanted or wanted >= MAX_CANDIDATES:
            return kept[:k]
        wanted = min(wanted * GROWTH, MAX_CANDIDATES)
