"""The online trainer's checkpoint: model, optimizer, consumed offsets and stream state, together.

The checkpoint, not Kafka's committed offsets, is the trainer's source of truth. It is one file
in the layout of :mod:`shared.model.checkpoint` (``format``, ``config``, ``state_dict``,
``extra``), so :func:`shared.model.checkpoint.load` reads it too; ``extra`` holds

- ``optimizer``: the AdamW state dict;
- ``offsets``: ``{"topic:partition": next offset to consume}``;
- ``sequences`` / ``replay``: :class:`~trainer.sequences.UserSequences` and
  :class:`~trainer.sequences.ReplayBuffer` states;
- ``trained``: events trained so far; ``audit``: ``{event_id: times trained}`` when auditing;
- ``encoder``: the content encoder's id.

Writing is atomic and durable: ``torch.save`` to a temporary file in the same folder, fsync,
``os.replace``, fsync of the folder. A kill -9 at any moment leaves either the old or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from shared.model.checkpoint import FORMAT
from shared.model.towers import LearnConfig, LearnModel


def save(path: Path, model: LearnModel, extra: dict[str, Any]) -> None:
    """Write ``model`` (config + weights) and ``extra`` to ``path`` atomically and durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "extra": extra,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: Path) -> tuple[LearnModel, dict[str, Any]]:
    """The model (train mode is left to the caller) and ``extra`` of a checkpoint file."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {state.get('format')!r}")
    model = LearnModel(LearnConfig(**state["config"]))
    model.load_state_dict(state["state_dict"])
    return model, state.get("extra", {})


def offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def parse_offset_key(key: str) -> tuple[str, int]:
    topic, _, partition = key.rpartition(":")
    return topic, int(partition)
