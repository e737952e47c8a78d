"""How a new item climbs in the ranking of the users who click it, version after version.

Before each click on an item first published during the live stream, the demo asks the API
for that user's top ``MAX_K`` (the most the API returns) and records the item's rank and the
version answering. At the end, :func:`story` picks the new item with the most clicks and lines
each of its clicks up with what the answering version could know of it:

- ``after_click``: how many of the item's clicks were published before that version served;
- ``trained_clicks``: about how many of them it was trained on (from the trainer's consumer
  offsets when the version appeared, less the events held back for the publish gate: see
  :meth:`~learnrec.demo.metrics.DemoMetrics.live_trained`);
- ``id_row``: whether the version's ID table has a row for the item (the trainer gives one once
  ``id_min_count`` of its interactions are trained; before that the item is content only).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import redis

from learnrec.demo.metrics import DemoMetrics, NewItemClick, NewItemStory
from learnrec.demo.probes import ServingClient
from learnrec.serving.api import MAX_K
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent


class NewItemRanks:
    """Probes the rank of new items before each of their clicks."""

    def __init__(self, client: ServingClient, redis_client: redis.Redis, keys: RedisKeys, metrics: DemoMetrics,
                 announced: Mapping[str, float]) -> None:
        self._client = client
        self._announced = announced
        self._redis = redis_client
        self._keys = keys
        self._metrics = metrics
        self._new: set[str] = set()
        self._clicks: Counter[str] = Counter()
        self._id_items: dict[str, frozenset[str]] = {}  # version -> items with an ID row

    def arrived(self, item_id: str) -> None:
        self._new.add(item_id)

    def probe(self, event: InteractionEvent, position: int, history: list[str]) -> None:
        """Before ``event`` is published: if it clicks a new item, record the item's rank for
        the user (``history``: what the API reads, the seen items it excludes)."""
        if event.item_id not in self._new:
            return
        self._clicks[event.item_id] += 1
        answer = self._client.recommend(event.user_id, k=MAX_K, timed=False)
        if answer is None:
            return
        ranked = answer.item_ids
        version = answer.model_version
        self._metrics.add("new_item_clicks", NewItemClick(
            item_id=event.item_id, click=self._clicks[event.item_id], position=position, version=version,
            source=answer.source, id_row=event.item_id in self._items_with_id_row(version),
            servable=event.item_id in self._announced, seen=event.item_id in history,
            rank=ranked.index(event.item_id) + 1 if event.item_id in ranked else None, k=MAX_K))

    def _items_with_id_row(self, version: str) -> frozenset[str]:
        """Read once per version, while its folder exists (the trainer prunes old ones)."""
        if version not in self._id_items:
            path = self._redis.hget(self._keys.model_meta(version), "path")
            table = Path(path.decode()) / "id_items.json" if path else None
            self._id_items[version] = frozenset(json.loads(table.read_text())) if table and table.exists() else frozenset()
        return self._id_items[version]


def story(metrics: DemoMetrics, titles: dict[str, str]) -> NewItemStory | None:
    """The clicks of the most clicked new item (the earliest such item on a tie)."""
    clicks = metrics.new_item_clicks
    if not clicks:
        return None
    counts = Counter(c.item_id for c in clicks)
    item_id = max(counts, key=counts.__getitem__)
    own = [c for c in clicks if c.item_id == item_id]
    became_current: dict[str, int] = {}  # version -> interactions published when it was first seen serving
    for position, version in metrics.versions:
        became_current.setdefault(version, position)
    rows = []
    for c in own:
        since = became_current.get(c.version, c.position)
        trained = metrics.live_trained(c.version)
        rows.append(asdict(c) | {
            "after_click": sum(o.position < since for o in own),
            "trained_clicks": None if trained is None else sum(o.position < trained for o in own),
        })
    return NewItemStory(item_id, titles.get(item_id, item_id), own[0].position, rows)
