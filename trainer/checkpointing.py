"""The online trainer's checkpoint: model, optimizer, consumed offsets and stream state, together.

The checkpoint, not Kafka's committed offsets, is the trainer's source of truth. It is one file
in the layout of :mod:`learnrec.shared.model.checkpoint` (``format``, ``config``, ``state_dict``,
``extra``), so :func:`learnrec.shared.model.checkpoint.load` reads it too; ``extra`` holds

- ``optimizer``: the AdamW state dict;
- ``offsets``: ``{"topic:partition": next offset to consume}``;
- ``sequences`` / ``replay``: :class:`~learnrec.trainer.sequences.UserSequences` and
  :class:`~learnrec.trainer.sequences.ReplayBuffer` states;
- ``trained``: events trained so far; ``audit``: ``{event_id: times trained}`` when auditing;
- ``encoder``: the content encoder's id.

Writing is atomic and durable: ``torch.save`` to a temporary file in the same folder, fsync,
``os.replace``, fsync of the folder. A kill -9 at any moment leaves either the old or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learnrec.shared.model import checkpoint
from learnrec.shared.model.towers import LearnModel


def save(path: Path, model: LearnModel, extra: dict[str, Any]) -> None:
    """Write ``model`` (config + weights) and ``extra`` to ``path`` atomically and durably."""
    checkpoint.save(path, model, extra)


def load(path: Path) -> tuple[LearnModel, dict[str, Any]]:
    """The model (eval mode; the trainer switches it to train) and ``extra`` of a checkpoint."""
    return checkpoint.load(path)


def offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def parse_offset_key(key: str) -> tuple[str, int]:
    topic, _, partition = key.rpartition(":")
    return topic, int(partition)
