"""Test support for serving: a tiny real ONNX model version, items in Redis, a live server.

The tiny version's user tower is the masked mean of the history's content embeddings times
``weight`` ``[output_dim, content_dim]``, L2-normalised; its item tower is ``weight @ content``,
L2-normalised: with ``weight = I`` a user's vector points at the average of what they saw.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import redis
import torch
from torch import nn

from learnrec.shared.redis_keys import RedisKeys
from learnrec.testing.live_server import LiveServer, free_port, wait_until  # noqa: F401 (re-exported)


class _User(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.proj = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.proj.weight.data = weight

    def forward(self, content: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(content.dtype).unsqueeze(-1)  # [B, L, 1]
        mean = (content * m).sum(1) / m.sum(1).clamp(min=1.0)  # [B, D]
        return nn.functional.normalize(self.proj(mean), dim=-1)


class _Item(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.proj = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.proj.weight.data = weight

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.proj(content), dim=-1)


def export_tiny_version(
    model_dir: Path, version: str, weight: np.ndarray, max_history: int = 50
) -> Path:
    """Write ``{model_dir}/{version}/`` (both towers and meta.json) per CONTRACTS.md."""
    folder = Path(model_dir) / version
    folder.mkdir(parents=True)
    w = torch.tensor(weight, dtype=torch.float32)
    out_dim, content_dim = w.shape
    content = torch.randn(2, 3, content_dim)
    mask = torch.ones(2, 3, dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        _export_towers(folder, w, content, mask)
    meta = {"version": version, "encoder": "test", "content_dim": content_dim,
            "output_dim": out_dim, "max_history": max_history, "created_at": "now",
            "source": "test"}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def _export_towers(folder: Path, w: torch.Tensor, content: torch.Tensor, mask: torch.Tensor) -> None:
    torch.onnx.export(
        _User(w).eval(), (content, mask), str(folder / "user_tower.onnx"),
        input_names=["content", "mask"], output_names=["user_vector"],
        dynamic_axes={"content": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"},
                      "user_vector": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    torch.onnx.export(
        _Item(w).eval(), (content[:, 0],), str(folder / "item_tower.onnx"),
        input_names=["content"], output_names=["item_vector"],
        dynamic_axes={"content": {0: "batch"}, "item_vector": {0: "batch"}},
        opset_version=17, dynamo=False,
    )


def item_vectors(weight: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The tiny item tower in numpy: ``content`` [n, D] -> [n, out]."""
    v = content @ weight.T
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def put_items(
    client: redis.Redis,
    keys: RedisKeys,
    ids: list[str],
    content: np.ndarray,
    vectors: dict[str, np.ndarray],
    notify: bool = True,
) -> None:
    """Write items as the stream's item encoder does: content, then vectors, then notifications."""
    pipe = client.pipeline()
    for i, item_id in enumerate(ids):
        pipe.hset(keys.item(item_id), mapping={"title": item_id, "content": content[i].tobytes()})
        pipe.sadd(keys.items(), item_id)
    for version, matrix in vectors.items():
        pipe.hset(keys.vectors(version), mapping={i: matrix[n].tobytes() for n, i in enumerate(ids)})
    pipe.execute()
    if notify:
        for version in vectors:
            for item_id in ids:
                client.xadd(keys.item_updates(), {"item_id": item_id, "version": version})
