"""Online trainer: learns from every interaction, checkpoints, and publishes versions.

:class:`OnlineTrainer` is the state and the math, free of Kafka. It trains the model offline
training trains (:mod:`learnrec.trainer.offline`), with the same objective: a user's history (the
model's ``max_len`` most recent items, exactly what serving feeds the user tower) predicts the
next item, scored against the negatives of :class:`~learnrec.trainer.config.TrainConfig` (from
the settings: ``negatives`` drawn uniformly from every known item with the logQ correction); the
positive and the negatives are encoded alone by the item tower, as serving encodes them. Each
new interaction is one example; a replay sample of past sequences is mixed into every step
(against forgetting). An item gets a row in the ID table once ``id_min_count``
of its interactions are trained (:class:`~learnrec.trainer.id_index.IdIndex`): a new item moves from
content-only to hybrid as it collects interactions, as offline training does.

The most recent ``gate_events`` events are held back from training: the publish gate scores a
candidate version on them (:mod:`learnrec.trainer.gate`) before they are trained. The Kafka shell and
the publish cadence are in :mod:`learnrec.trainer.worker`.

Exactly-once training: an event counts as trained once its step ran; the checkpoint holds the
model, the optimizer, the sequences, the held-back events and the next offset of every
partition together, written with no event half-applied. After a crash the trainer restarts
from it, so events consumed after it are consumed again and trained exactly once.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from learnrec.shared.model import checkpoint
from learnrec.shared.model.loss import sampled_softmax_loss
from learnrec.shared.model.towers import ItemIds, LearnConfig, LearnModel
from learnrec.shared.schemas import InteractionEvent
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content import ContentTable
from learnrec.trainer.examples import Batch, Example, collate, examples_from_snapshots
from learnrec.trainer.id_index import IdIndex, grow_model
from learnrec.trainer.lazy_adamw import LazyAdamW
from learnrec.trainer.sequences import ReplayBuffer, UserSequences

log = logging.getLogger(__name__)


@dataclass
class Released:
    """Events released from the hold-back and not trained yet, and the examples of those that
    form one (an event whose item has no content yet, or a user's first, forms none)."""

    entries: list[tuple[str, Example | None]] = field(default_factory=list)  # (event id, example)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def examples(self) -> list[Example]:
        return [x for _, x in self.entries if x is not None]


class OnlineTrainer:
    """Model + AdamW (lazy on the ID table: :mod:`learnrec.trainer.lazy_adamw`) + sequences + replay
    buffer + ID rows + held-back events + offsets.
    ``cfg``: an online config (:meth:`TrainConfig.from_settings`)."""

    def __init__(self, model: LearnModel, content: ContentTable, cfg: TrainConfig, encoder: str,
                 ids: IdIndex | None = None) -> None:
        self.stream = cfg.require_online()
        self.model = model.train()
        self.content = content
        self.cfg = cfg
        self.encoder = encoder
        self.ids = ids or IdIndex()
        self.id_counts: dict[str, int] = {}  # trained interactions of items without an ID row yet
        model.sparse_id_grads = True  # a step updates the ID rows it used, not the whole table
        self.optimizer = LazyAdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sequences = UserSequences(self.history_len + 1, self.stream.max_users)
        self.replay = ReplayBuffer(self.stream.replay_capacity, seed=cfg.seed)
        # (event id, example, "topic:partition" or None), oldest first
        self.holdback: deque[tuple[str, Example | None, str | None]] = deque()
        self.offsets: dict[str, int] = {}
        self.trained = 0
        self.steps = 0
        self.audit: dict[str, int] = {}
        self.last_loss = float("nan")
        self._rng = random.Random(cfg.seed)
        self._pending = Released()
        self.auto_step = True  # False in a trainer group: the group steps together (trainer/group_step.py)

    @property
    def history_len(self) -> int:
        """History items per example: the model's, which is what serving feeds the user tower."""
        return self.model.config.max_len

    # -- construction and checkpoints ------------------------------------------------------------

    @classmethod
    def restore(
        cls, model: LearnModel, extra: dict[str, Any], content: ContentTable, cfg: TrainConfig, encoder: str
    ) -> OnlineTrainer:
        """From a loaded checkpoint: an online one resumes everything; an offline one (no
        ``sequences`` in its extra) gives the weights and ID rows, and the rest starts empty."""
        trainer = cls(model, content, cfg, extra.get("encoder", encoder), IdIndex(extra.get("id_items", ())))
        if "sequences" in extra:
            trainer.optimizer.load_state_dict(extra["optimizer"])
            trainer.sequences = UserSequences.from_state(extra["sequences"], trainer.stream.max_users)
            trainer.replay = ReplayBuffer.from_state(extra["replay"], seed=cfg.seed)
            trainer.holdback = deque(holdback_entries(extra["holdback"]))
            trainer.id_counts = dict(extra["id_counts"])
            trainer.offsets = dict(extra["offsets"])
            trainer.trained = int(extra["trained"])
            trainer.steps = int(extra["steps"])
            trainer.audit = dict(extra.get("audit", {}))
        return trainer

    @classmethod
    def from_scratch(cls, content: ContentTable, cfg: TrainConfig, encoder: str,
                     item_ids: ItemIds = "hybrid") -> OnlineTrainer:
        """A new model (``item_ids``: its item representation, the ``trainer_item_ids`` setting)."""
        torch.manual_seed(cfg.seed)
        return cls(LearnModel(LearnConfig(content_dim=content.content_dim, item_ids=item_ids)), content, cfg, encoder)

    def save(self, path: Path) -> None:
        """Write the checkpoint (trains the released events first, so none is half-applied;
        held-back events are saved as they are)."""
        self.flush()
        extra: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "sequences": self.sequences.state(),
            "replay": self.replay.state(),
            "holdback": holdback_state(self.holdback),
            "id_items": list(self.ids.items),
            "id_counts": dict(self.id_counts),
            "offsets": dict(self.offsets),
            "trained": self.trained,
            "steps": self.steps,
            "encoder": self.encoder,
        }
        if self.stream.audit:
            extra["audit"] = dict(self.audit)
        checkpoint.save(path, self.model, extra)

    # -- consuming -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events consumed and not trained yet (held back or released)."""
        return len(self.holdback) + len(self._pending)

    @property
    def released(self) -> int:
        """Events released from the hold-back and not trained yet."""
        return len(self._pending)

    def held_back(self) -> list[Example]:
        """The examples of the held-back events, oldest first (what the publish gate scores)."""
        return [x for _, x, _ in self.holdback if x is not None]

    def add(self, events: list[InteractionEvent], offsets: dict[str, int] | None = None,
            partitions: list[str] | None = None) -> None:
        """Take events in stream order (``offsets``: the next offset per ``topic:partition``
        once these are consumed; ``partitions``: each event's ``topic:partition``, kept with a
        held-back event). Each joins the hold-back; the oldest leave it for training, a step
        whenever ``batch_size`` have. Items without a content embedding yet are left out of
        sequences (the event still counts)."""
        self.content.fetch_missing(e.item_id for e in events)
        for n, event in enumerate(events):
            example = None
            if event.item_id in self.content:
                prior = self.sequences.get(event.user_id)
                self.replay.offer(self.sequences.append(event.user_id, event.item_id))
                example = (prior, event.item_id) if prior else None
            self.holdback.append((event.event_id, example, partitions[n] if partitions else None))
            while len(self.holdback) > self.stream.gate_events:
                self._release(*self.holdback.popleft()[:2])
        self.offsets.update(offsets or {})

    def release_all(self) -> None:
        """Train on every held-back event too (end of a replay, tests)."""
        while self.holdback:
            self._release(*self.holdback.popleft()[:2])
        self.flush()

    def _release(self, event_id: str, example: Example | None) -> None:
        self._pending.entries.append((event_id, example))
        if self.auto_step and len(self._pending) >= self.cfg.batch_size:
            self.flush()

    def take_released(self, n: int | None = None) -> Released:
        """The oldest ``n`` (default: all) released events, removed from the pending ones."""
        entries = self._pending.entries
        n = len(entries) if n is None else n
        self._pending = Released(entries[n:])
        return Released(entries[:n])

    def flush(self) -> None:
        """Train on every released event now: one step with its replay sample."""
        released = self.take_released()
        if not released:
            return
        batch = self.batch(released, [target for _, target in released.examples])
        if batch is not None:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(batch)
            loss.backward()
            self.apply_gradients()
            self.last_loss = float(loss.detach())
        self.count_trained(released)

    def batch(self, released: Released, trained_targets) -> Batch | None:
        """The step's batch: ``released``'s examples and the replay sample mixed in with them
        (None: no example), after counting ``trained_targets`` towards ID rows (a trainer
        group counts every member's targets, so the ID rows grow alike on all)."""
        self._count_ids(trained_targets)
        examples = released.examples
        if not examples:
            return None
        if self.stream.replay_fraction:
            n_replay = max(1, round(self.stream.replay_fraction * len(examples)))
            examples += examples_from_snapshots(self.replay.sample(n_replay), self._rng)
        return collate(examples, self.content, self.ids, self.history_len)

    def count_trained(self, released: Released) -> None:
        self.trained += len(released)
        if self.stream.audit:
            for event_id, _ in released.entries:
                self.audit[event_id] = self.audit.get(event_id, 0) + 1

    def _count_ids(self, items) -> None:
        """Count trained interactions; an item reaching ``id_min_count`` gets an ID row."""
        ready = []
        for item in items:
            if item not in self.ids:
                n = self.id_counts[item] = self.id_counts.get(item, 0) + 1
                if n >= self.cfg.id_min_count:
                    ready.append(item)
                    del self.id_counts[item]
        self.ids.add(ready)
        grow_model(self.model, self.optimizer, len(self.ids))

    # -- the math --------------------------------------------------------------------------------

    def vectors(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """User vectors of the histories and item vectors of the targets, each ``[B, out]``,
        computed exactly as serving computes them (the towers of an exported version)."""
        model = self.model
        history = torch.from_numpy(self.content.lookup(batch.history.numpy()))  # [B, L, D]
        user = model.user_tower(history, batch.history_mask, model.id_vectors(batch.history_ids))
        target = torch.from_numpy(self.content.lookup(batch.target.numpy()))  # [B, D]
        return user, model.item_tower(target, model.id_vectors(batch.target_ids))

    def loss(self, batch: Batch) -> torch.Tensor:
        """The batch's sampled-softmax loss (a scalar, the mean over the batch). Negatives: ``negatives``
        items drawn uniformly from every item with content (all of them when the full softmax
        applies); a target is never its own negative, nor, with ``mask_history``, its user's
        history items."""
        user, positive = self.vectors(batch)
        pool = self.content.catalogue_rows()  # removed and unavailable items are never negatives
        n = len(pool)
        k = n if self.cfg.full_softmax(n) else min(self.cfg.negatives, n)
        rows = torch.from_numpy(pool[self._rng.sample(range(n), k)])  # [K], in random order either way
        neg_content = torch.from_numpy(self.content.lookup(rows.numpy()))
        neg_ids = torch.from_numpy(self.ids.rows(self.content.item_ids(rows.numpy())))
        negatives = self.model.item_tower(neg_content, self.model.id_vectors(neg_ids))  # [K, out]
        excluded = batch.target[:, None] == rows[None, :]  # [B, K]
        if self.cfg.mask_history:
            own = (batch.history[:, :, None] == rows[None, None, :]) & batch.history_mask[..., None]
            excluded |= own.any(1)
        return sampled_softmax_loss(user, positive, negatives, self.cfg.temperature, math.log(k / n), excluded)

    def apply_gradients(self) -> None:
        """One AdamW step on the gradients the parameters hold (warm-up, clipping; the ID table's
        rows without a gradient are left alone)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * min(1.0, (self.steps + 1) / max(1, self.cfg.warmup_steps))
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.optimizer.step()
        self.steps += 1


def holdback_state(holdback) -> list[tuple]:
    """Held-back entries as checkpoint state: ``(event id, history or None, target or None,
    "topic:partition" or None)``."""
    return [(e, None, None, p) if x is None else (e, x[0], x[1], p) for e, x, p in holdback]


def holdback_entries(state) -> list[tuple[str, Example | None, str | None]]:
    """The inverse of :func:`holdback_state` (a checkpoint from before partitions were kept has
    three fields an entry)."""
    return [(e, None if h is None else (list(h), t), rest[0] if rest else None) for e, h, t, *rest in state]
