"""Export a model version: ``user_tower.onnx``, ``item_tower.onnx``, ``meta.json`` and, for a
model with item IDs, its ID table (``id_table.npy`` float32 [rows, id_dim] and ``id_items.json``,
the item id of each row).

The folder is written under a temporary name and renamed into place, so a reader that sees
``{out_dir}`` sees a complete version. Shapes (all dynamic in batch and sequence):

- user tower: ``content`` float32 [batch, seq, content_dim], (``id_embedding`` float32
  [batch, seq, id_dim]: each item's ID row, zeros for an item without one), ``mask`` int64
  [batch, seq] (1 real, 0 padding, right padded) -> ``user_vector`` float32 [batch, output_dim];
- item tower: ``content`` float32 [batch, content_dim] (, ``id_embedding`` [batch, id_dim]) ->
  ``item_vector`` [batch, output_dim].

The towers are the model's served vectors (:meth:`LearnModel.served_user`, ``served_item``), so
``output_dim`` is the model's ``vector_dim`` (its content blend included). ``meta.json``
records ``id_dim`` (0: the towers take no ``id_embedding``), ``id_rows`` and ``content_blend``.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from learnrec.shared.model.towers import LearnModel

OPSET = 17


def new_version_id(now: datetime | None = None) -> str:
    """``v{UTC yyyymmddHHMMSS}-{6 hex}``: ids sort by creation time."""
    now = now or datetime.now(UTC)
    return f"v{now.astimezone(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


class _UserTower(nn.Module):
    def __init__(self, model: LearnModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, content: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        id_vecs, mask = rest if len(rest) == 2 else (None, rest[0])
        return self.model.served_user(content, mask, id_vecs)


class _ItemTower(nn.Module):
    def __init__(self, model: LearnModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, content: torch.Tensor, id_vecs: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.served_item(content, id_vecs)


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
    model: LearnModel, out_dir: str | os.PathLike, meta: dict[str, Any], id_items: Sequence[str] = ()
) -> dict[str, Any]:
    """Write the version folder ``out_dir`` (must not exist yet) and return the full meta.

    ``meta`` must name the ``encoder`` (a :class:`~learnrec.shared.model.encoder.ContentEncoder`
    ``model_id``); ``version`` defaults to the folder name, ``source`` to ``"offline"``,
    ``created_at`` to now; dims and ``max_history`` come from the model's config.
    ``id_items``: the item id of each ID-table row (row ``r`` is ``id_items[r]``), for a model
    with item IDs; rows beyond it are not exported.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"model version folder {out_dir} already exists")
    if "encoder" not in meta:
        raise ValueError("meta must name the content encoder ('encoder')")
    cfg = model.config
    if len(id_items) > cfg.id_rows:
        raise ValueError(f"{len(id_items)} item ids for an ID table of {cfg.id_rows} rows")
    id_dim = cfg.model_dim if cfg.uses_ids else 0
    full = {
        "version": out_dir.name,
        "source": "offline",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **meta,
        "content_dim": cfg.content_dim,
        "output_dim": model.vector_dim,
        "max_history": cfg.max_len,
        "content_blend": cfg.content_blend,
        "id_dim": id_dim,
        "id_rows": len(id_items) if id_dim else 0,
    }
    # Export a CPU fp32 copy in eval mode, leaving the caller's (maybe training) model alone.
    frozen = copy.deepcopy(model).float().cpu().eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        seq = min(3, cfg.max_len)
        content = torch.randn(2, seq, cfg.content_dim)
        mask = torch.ones(2, seq, dtype=torch.int64)
        user_args: tuple = (content, mask)
        user_inputs = {"content": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}}
        item_args: tuple = (content[:, 0],)
        item_inputs = {"content": {0: "batch"}}
        if id_dim:
            ids = torch.randn(2, seq, id_dim)
            user_args = (content, ids, mask)
            user_inputs = {"content": {0: "batch", 1: "seq"}, "id_embedding": {0: "batch", 1: "seq"},
                           "mask": {0: "batch", 1: "seq"}}
            item_args = (content[:, 0], ids[:, 0])
            item_inputs = {"content": {0: "batch"}, "id_embedding": {0: "batch"}}
            table = (frozen.id_table.detach()[: len(id_items)] * cfg.id_scale).numpy()  # what id_vectors gives
            np.save(tmp / "id_table.npy", np.ascontiguousarray(table, np.float32))
            (tmp / "id_items.json").write_text(json.dumps(list(id_items)))
        with torch.no_grad():
            _export(_UserTower(frozen), user_args, tmp / "user_tower.onnx", user_inputs, "user_vector")
            _export(_ItemTower(frozen), item_args, tmp / "item_tower.onnx", item_inputs, "item_vector")
        (tmp / "meta.json").write_text(json.dumps(full, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return full
