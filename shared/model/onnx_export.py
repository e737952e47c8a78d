"""Export a model version: ``user_tower.onnx``, ``item_tower.onnx`` and ``meta.json``.

The folder is written under a temporary name and renamed into place, so a reader that sees
``{out_dir}`` sees a complete version. Shapes (all dynamic in batch and sequence):

- user tower: ``content`` float32 [batch, seq, content_dim], ``mask`` int64 [batch, seq]
  (1 real, 0 padding, right padded) -> ``user_vector`` float32 [batch, output_dim];
- item tower: ``content`` float32 [batch, content_dim] -> ``item_vector`` [batch, output_dim].
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shared.model.towers import LearnModel

OPSET = 17


def new_version_id(now: datetime | None = None) -> str:
    """``v{UTC yyyymmddHHMMSS}-{6 hex}``: ids sort by creation time."""
    now = now or datetime.now(UTC)
    return f"v{now.astimezone(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


class _UserTower(nn.Module):
    def __init__(self, model: LearnModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, content: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.user_tower(content, mask)


class _ItemTower(nn.Module):
    def __init__(self, model: LearnModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return self.model.item_tower(content)


def _export(module: nn.Module, args: tuple, path: Path, inputs: dict, output: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(inputs),
            output_names=[output],
            dynamic_axes={**inputs, output: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def export_version(
    model: LearnModel, out_dir: str | os.PathLike, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write the version folder ``out_dir`` (must not exist yet) and return the full meta.

    ``meta`` must name the ``encoder`` (a :class:`~shared.model.encoder.ContentEncoder`
    ``model_id``); ``version`` defaults to the folder name, ``source`` to ``"offline"``,
    ``created_at`` to now; dims and ``max_history`` come from the model's config.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"model version folder {out_dir} already exists")
    if "encoder" not in meta:
        raise ValueError("meta must name the content encoder ('encoder')")
    cfg = model.config
    full = {
        "version": out_dir.name,
        "source": "offline",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **meta,
        "content_dim": cfg.content_dim,
        "output_dim": cfg.output_dim,
        "max_history": cfg.max_len,
    }
    # Export a CPU fp32 copy in eval mode, leaving the caller's (maybe training) model alone.
    frozen = copy.deepcopy(model).float().cpu().eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        seq = min(3, cfg.max_len)
        content = torch.randn(2, seq, cfg.content_dim)
        mask = torch.ones(2, seq, dtype=torch.int64)
        with torch.no_grad():
            _export(
                _UserTower(frozen),
                (content, mask),
                tmp / "user_tower.onnx",
                {"content": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}},
                "user_vector",
            )
            _export(
                _ItemTower(frozen),
                (content[:, 0],),
                tmp / "item_tower.onnx",
                {"content": {0: "batch"}},
                "item_vector",
            )
        (tmp / "meta.json").write_text(json.dumps(full, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return full
