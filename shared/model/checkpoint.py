"""Model checkpoints: config + weights + caller's extra state, in one torch file.

``extra`` holds whatever the caller needs to resume (optimizer state, Kafka offsets, the
encoder id, metrics): tensors and plain Python values only, so that loading can use
``weights_only=True`` and never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from learnrec.shared.model.towers import LearnConfig, LearnModel

FORMAT = 1


def save(path: str | os.PathLike, model: LearnModel, extra: dict[str, Any] | None = None) -> Path:
    """Write atomically and durably (temp file, fsync, rename, fsync of the folder): a crash,
    kill -9 included, leaves the old or the new checkpoint, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "extra": extra or {},
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
    return path


def load(path: str | os.PathLike, map_location: str = "cpu") -> tuple[LearnModel, dict[str, Any]]:
    """The model (in eval mode) and the ``extra`` dict saved with it."""
    state = torch.load(Path(path), map_location=map_location, weights_only=True)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {state.get('format')!r}")
    model = LearnModel(LearnConfig(**state["config"]))
    model.load_state_dict(state["state_dict"])
    return model.eval(), state["extra"]
