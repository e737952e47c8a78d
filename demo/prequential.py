"""Prequential Recall@10 of three methods on the same requests, before each click is published.

For every replayed interaction the demo reads the user's history as the API reads it (the most
recent ``max_history`` items the history updater keeps), asks the API for the user's top 10,
and checks the clicked item against:

- served: the API's answer (the version serving at that moment);
- frozen: a copy of the version that served when the live stream began
  (:class:`~learnrec.demo.frozen.FrozenVersion`), over the catalogue known at that moment;
- popularity: interaction counts so far.

All three exclude the same history items, as the API's ``exclude_seen`` does. A user without a
usable history gets popular items from the API whatever version serves, so frozen counts the
served answer there. Frozen requests are scored in batches; rows reach the metrics in order.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass

import redis

from learnrec.demo.frozen import FrozenQuery, FrozenVersion
from learnrec.demo.metrics import DemoMetrics, Scored
from learnrec.demo.probes import ServingClient
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent

K = 10


@dataclass(frozen=True)
class _Pending:
    position: int
    version: str
    served: bool
    popularity: bool
    query: FrozenQuery


class PrequentialScorer:
    """Scores each interaction with every method; call :meth:`clicked` once it is published."""

    def __init__(self, client: ServingClient, redis_client: redis.Redis, keys: RedisKeys,
                 metrics: DemoMetrics, frozen: FrozenVersion, past_clicks: list[str], batch: int = 64) -> None:
        self._client = client
        self._redis = redis_client
        self._keys = keys
        self._metrics = metrics
        self.frozen = frozen
        self._counts: Counter[str] = Counter(past_clicks)
        self._batch = batch
        self._pending: list[_Pending] = []

    def score(self, event: InteractionEvent, position: int) -> list[str] | None:
        """Score ``event`` before it is published; returns the history the API saw (oldest
        first), or None when the API did not answer."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.scard(self._keys.items())
        pipe.lrange(self._keys.history(event.user_id), -self.frozen.info.max_history, -1)
        members, raw = pipe.execute()
        known_items = self.frozen.sync(members)
        history = [item_id.decode() for item_id in raw]
        answer = self._client.recommend(event.user_id, k=K)
        if answer is None:
            return None
        served = event.item_id in answer.item_ids
        self._pending.append(_Pending(position, answer.model_version, served,
                                      self._popular_hit(event.item_id, set(history)),
                                      FrozenQuery(history, event.item_id, known_items)))
        if len(self._pending) >= self._batch:
            self.flush()
        return history

    def clicked(self, item_id: str) -> None:
        """Count a published click for popularity."""
        self._counts[item_id] += 1

    def flush(self) -> None:
        """Score the pending frozen requests in one batch and record every pending row."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        frozen = self.frozen.hits([p.query for p in pending], K)
        for p, hit in zip(pending, frozen, strict=True):
            self._metrics.add("prequential", Scored(p.position, p.version, p.served,
                                                    p.served if hit is None else hit, p.popularity))

    def _popular_hit(self, item_id: str, seen: set[str]) -> bool:
        top = heapq.nlargest(K + len(seen), self._counts, key=self._counts.__getitem__)
        return item_id in [i for i in top if i not in seen][:K]
