"""Prequential (test-then-train) scoring of the online trainer against a frozen model and
popularity, event by event, in stream order.

For every ``score_every``-th interaction, each method first ranks all items for the user's
history so far (items the user saw already are excluded); a hit is the true item in the top
``K``. Then the online trainer learns from the event.

- online: the model of :class:`~learnrec.trainer.online.OnlineTrainer`; it serves the snapshot taken at
  its last publish, every ``publish_every`` events (the live system's version cadence, in
  stream events instead of seconds), with the ID rows it had then;
- frozen: the model the online one started from, never updated;
- popularity: interaction counts so far.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from learnrec.shared.model.towers import LearnModel
from learnrec.shared.schemas import InteractionEvent
from learnrec.trainer.id_index import IdIndex
from learnrec.trainer.online import OnlineTrainer
from learnrec.trainer.windows import pad

K = 10


class ServedModel:
    """A model snapshot with the ID rows it knew, and its served item vectors ``[n_items, vector_dim]``."""

    def __init__(self, model: LearnModel, ids: IdIndex, content: torch.Tensor, item_ids: list[str]) -> None:
        self.model = copy.deepcopy(model).eval()
        self.rows = torch.from_numpy(ids.rows(item_ids))  # [n_items] ID row of each item, -1: none
        self.content = content
        with torch.no_grad():
            self.items = torch.cat([
                self.model.served_item(c, self.model.id_vectors(r))
                for c, r in zip(content.split(4096), self.rows.split(4096), strict=True)
            ])

    @torch.no_grad()
    def scores(self, histories: list[list[int]]) -> torch.Tensor:
        """Item-index histories (oldest first) -> scores ``[B, n_items]``."""
        ids, mask = pad([np.asarray(h[-self.model.config.max_len :]) for h in histories])
        user = self.model.served_user(self.content[ids], mask, self.model.id_vectors(self.rows[ids]))
        return user @ self.items.T


@dataclass
class Tally:
    """Hits per method over the scored events, in order."""

    hits: dict[str, list[bool]] = field(default_factory=lambda: {"online": [], "frozen": [], "popularity": []})

    def recall(self, method: str, start: int = 0, end: int | None = None) -> float:
        window = self.hits[method][start:end]
        return float(np.mean(window)) if window else float("nan")


class Prequential:
    """Scores each (sampled) event with every method before the online trainer learns it."""

    def __init__(self, trainer: OnlineTrainer, frozen: ServedModel, content: torch.Tensor,
                 item_ids: list[str], publish_every: int, score_every: int) -> None:
        self.trainer = trainer
        self.frozen = frozen
        self.content = content  # [n_items, D]
        self.item_ids = item_ids
        self.index = {item: i for i, item in enumerate(item_ids)}
        self.online = ServedModel(trainer.model, trainer.ids, content, item_ids)
        self.publish_every = publish_every
        self.score_every = score_every
        self.popularity = np.zeros(len(item_ids), np.float64)
        self.seen: dict[str, list[int]] = {}
        self.tally = Tally()
        self.consumed = 0
        self.since_publish = 0
        self.publishes: list[int] = []  # scored events before each publish

    def warm(self, user: str, item: int) -> None:
        """Count an event from before the scored stream (popularity, the user's history)."""
        self.popularity[item] += 1
        self.seen.setdefault(user, []).append(item)
        self.consumed += 1

    def process(self, events: list[InteractionEvent]) -> None:
        """Score the batch's sampled events (each against its history so far), then train."""
        queries: list[tuple[list[int], int]] = []
        for event in events:
            item = self.index[event.item_id]
            history = self.seen.setdefault(event.user_id, [])
            if self.consumed % self.score_every == 0 and history:
                queries.append((list(history), item))
                self._score_popularity(history, item)
            history.append(item)
            self.popularity[item] += 1
            self.consumed += 1
        if queries:
            self._score_models(queries)
        self.trainer.add(events)
        self.since_publish += len(events)
        if self.since_publish >= self.publish_every:
            self.trainer.flush()
            self.online = ServedModel(self.trainer.model, self.trainer.ids, self.content, self.item_ids)
            self.publishes.append(len(self.tally.hits["online"]))
            self.since_publish = 0

    def _score_popularity(self, history: list[int], item: int) -> None:
        scores = self.popularity.copy()
        scores[history] = -1
        top = np.argpartition(-scores, K)[:K]
        self.tally.hits["popularity"].append(bool(item in top and scores[item] > 0))

    def _score_models(self, queries: list[tuple[list[int], int]]) -> None:
        targets = torch.tensor([t for _, t in queries])
        for name, served in (("online", self.online), ("frozen", self.frozen)):
            scores = served.scores([q for q, _ in queries])
            for i, (seen, _) in enumerate(queries):
                scores[i, seen] = -torch.inf
            top = scores.topk(K, dim=1).indices
            self.tally.hits[name].extend((top == targets[:, None]).any(dim=1).tolist())


def curve(tally: Tally, points: int = 40) -> list[dict]:
    """Recall@10 per method in ``points`` consecutive windows of the scored events."""
    n = len(tally.hits["online"])
    edges = np.linspace(0, n, points + 1).astype(int)
    return [
        {"scored_from": int(a), "scored_to": int(b)} | {m: round(tally.recall(m, a, b), 5) for m in tally.hits}
        for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a
    ]
