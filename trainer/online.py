"""Online trainer: learns from every interaction, checkpoints, and publishes versions.

:class:`OnlineTrainer` is the state and the math, free of Kafka: ``add`` takes interactions in
stream order, keeps per-user sequences, and every ``batch_size`` events runs one AdamW step on
the dense all-action loss over the new examples plus a replay sample of past sequences. The
Kafka shell and the publish cadence are in :mod:`trainer.worker`.

Exactly-once training: an event counts as trained once its step ran; the checkpoint is only
written with no event pending, and holds the model, the optimizer, the sequences and the next
offset of every partition together. After a crash the trainer restarts from it, so events
consumed after it are consumed again and trained exactly once (their earlier effect was lost
with the process). Kafka's committed offsets of the trainer's group are informational (lag).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from shared.config import Settings
from shared.model.loss import dense_all_action_loss
from shared.model.towers import LearnConfig, LearnModel
from shared.schemas import InteractionEvent
from trainer import checkpointing
from trainer.content import ContentTable
from trainer.examples import Batch, collate, examples_from_events, examples_from_snapshots
from trainer.sequences import ReplayBuffer, UserSequences

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """The trainer's hyperparameters (see the ``trainer_*`` settings)."""

    batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    temperature: float = 0.05
    sequence_len: int = 50
    history_len: int = 20
    history_positions: int = 10
    max_targets: int = 10
    replay_fraction: float = 1.0
    replay_capacity: int = 20_000
    negatives: int = 1024
    item_tower: str = "shared"
    seed: int = 0
    audit: bool = False

    @classmethod
    def from_settings(cls, s: Settings) -> TrainConfig:
        return cls(
            batch_size=s.trainer_batch_size, lr=s.trainer_lr, warmup_steps=s.trainer_warmup_steps, weight_decay=s.trainer_weight_decay,
            temperature=s.trainer_temperature, sequence_len=s.trainer_sequence_len,
            history_len=s.trainer_history_len, history_positions=s.trainer_history_positions,
            max_targets=s.trainer_max_targets, replay_fraction=s.trainer_replay_fraction,
            replay_capacity=s.trainer_replay_capacity, negatives=s.trainer_negatives,
            item_tower=s.trainer_item_tower, seed=s.trainer_seed, audit=s.trainer_audit,
        )


@dataclass
class _Pending:
    """Events added since the last step: per user, the sequence before them and their items."""

    prior: dict[str, list[str]] = field(default_factory=dict)
    new: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    event_ids: list[str] = field(default_factory=list)


class OnlineTrainer:
    """Model + AdamW + per-user sequences + replay buffer + consumed offsets."""

    def __init__(self, model: LearnModel, content: ContentTable, cfg: TrainConfig, encoder: str) -> None:
        self.model = model.train()
        self.content = content
        self.cfg = cfg
        self.encoder = encoder
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sequences = UserSequences(cfg.sequence_len)
        self.replay = ReplayBuffer(cfg.replay_capacity, seed=cfg.seed)
        self.offsets: dict[str, int] = {}
        self.trained = 0
        self.steps = 0
        self.audit: dict[str, int] = {}
        self.last_loss = float("nan")
        self._rng = random.Random(cfg.seed)
        self._pending = _Pending()

    # -- construction and checkpoints ------------------------------------------------------------

    @classmethod
    def restore(
        cls, model: LearnModel, extra: dict[str, Any], content: ContentTable, cfg: TrainConfig, encoder: str
    ) -> OnlineTrainer:
        """From a loaded checkpoint: an online one resumes everything; an offline one (no
        ``sequences`` in its extra) gives the weights, and the rest starts empty."""
        trainer = cls(model, content, cfg, extra.get("encoder", encoder))
        if "sequences" in extra:
            trainer.optimizer.load_state_dict(extra["optimizer"])
            trainer.sequences = UserSequences.from_state(extra["sequences"])
            trainer.replay = ReplayBuffer.from_state(extra["replay"], seed=cfg.seed)
            trainer.offsets = dict(extra["offsets"])
            trainer.trained = int(extra["trained"])
            trainer.steps = int(extra["steps"])
            trainer.audit = dict(extra.get("audit", {}))
        return trainer

    @classmethod
    def from_scratch(cls, content: ContentTable, cfg: TrainConfig, encoder: str) -> OnlineTrainer:
        torch.manual_seed(cfg.seed)
        model = LearnModel(
            LearnConfig(content_dim=content.content_dim, max_len=cfg.history_len, item_tower=cfg.item_tower)  # type: ignore[arg-type]
        )
        return cls(model, content, cfg, encoder)

    def save(self, path: Path) -> None:
        """Write the checkpoint (trains any pending events first, so none is half-applied)."""
        self.flush()
        extra: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "sequences": self.sequences.state(),
            "replay": self.replay.state(),
            "offsets": dict(self.offsets),
            "trained": self.trained,
            "steps": self.steps,
            "encoder": self.encoder,
        }
        if self.cfg.audit:
            extra["audit"] = dict(self.audit)
        checkpointing.save(path, self.model, extra)

    # -- consuming -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending.event_ids)

    def add(self, events: list[InteractionEvent], offsets: dict[str, int] | None = None) -> None:
        """Take events in stream order (``offsets``: the next offset per ``topic:partition``
        once these are consumed); steps whenever ``batch_size`` events are pending. Items
        without a content embedding yet are left out of sequences (the event still counts)."""
        self.content.fetch_missing(e.item_id for e in events)
        for event in events:
            pend = self._pending
            if event.item_id in self.content:
                if event.user_id not in pend.prior:
                    pend.prior[event.user_id] = self.sequences.get(event.user_id)
                pend.new[event.user_id].append(event.item_id)
                self.replay.offer(self.sequences.append(event.user_id, event.item_id))
            pend.event_ids.append(event.event_id)
            if len(pend.event_ids) >= self.cfg.batch_size:
                self.flush()
        self.offsets.update(offsets or {})

    def flush(self) -> None:
        """Train on every pending event now: one step per round of examples (see
        :func:`~trainer.examples.examples_from_events`), each with its replay sample."""
        pend, self._pending = self._pending, _Pending()
        if not pend.event_ids:
            return
        for examples in examples_from_events(pend.prior, pend.new, self.cfg.max_targets):
            n_replay = max(2, round(self.cfg.replay_fraction * len(examples))) if self.cfg.replay_fraction else 0
            examples += examples_from_snapshots(self.replay.sample(n_replay), self._rng)
            batch = collate(examples, self.content, self.cfg.history_len, self.cfg.max_targets)
            if batch is not None and len(batch) >= 2:  # one example alone has no negatives
                self.last_loss = self.step(batch)
        self.trained += len(pend.event_ids)
        if self.cfg.audit:
            for event_id in pend.event_ids:
                self.audit[event_id] = self.audit.get(event_id, 0) + 1

    def step(self, batch: Batch) -> float:
        """One AdamW step on the dense all-action loss; returns the loss.

        Negatives: ``negatives`` items drawn uniformly from every known item (uniform, so the
        softmax is not biased against popular items the way in-batch negatives are), or the
        other examples' targets when 0. A user's own history items are never its negatives.
        """
        hist, tgt = batch.content(self.content)  # [B, H, D], [B, T, D]
        lengths = batch.history_mask.sum(dim=1)  # [B]
        out = self.model.encode_by_length(hist, lengths)  # [B, H, out]
        # Pair only the last ``history_positions`` real history positions with the targets.
        n = min(self.cfg.history_positions, hist.shape[1])
        position = lengths[:, None] - n + torch.arange(n)[None, :]  # [B, n]
        user_valid = position >= 0
        index = position.clamp(min=0)[..., None].expand(-1, -1, out.shape[-1])
        user = F.normalize(out.gather(1, index), dim=-1)  # [B, n, out]
        target = self.model.item_sequence_tower(tgt, batch.target_mask.sum(dim=1))  # [B, T, out]
        target_items = batch.targets.masked_fill(~batch.target_mask, -1)
        negatives = negative_items = None
        if self.cfg.negatives:
            rows = self._rng.sample(range(len(self.content)), min(self.cfg.negatives, len(self.content)))
            negative_items = torch.tensor(rows, dtype=torch.long)  # [M]
            negatives = self.model.item_tower(torch.from_numpy(self.content.lookup(negative_items.numpy())))  # [M, out]
        loss = dense_all_action_loss(
            user, user_valid, target, target_items, self.cfg.temperature,
            negatives=negatives, negative_items=negative_items,
            masked_items=batch.history.masked_fill(~batch.history_mask, -1),
        )
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * min(1.0, (self.steps + 1) / max(1, self.cfg.warmup_steps))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.steps += 1
        return float(loss.detach())

