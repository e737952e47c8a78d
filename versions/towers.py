"""A model version's files, loaded: its metadata and its ONNX towers with the ID table.

:class:`VersionInfo` is a version's metadata as registered in Redis (from its ``meta.json``);
:class:`LoadedVersion` runs its towers on CPU and looks item-ID rows up by item id, so callers
pass item ids, never rows (docs/CONTRACTS.md has the file layout).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OPTIONAL_META_FIELDS = {"id_dim": "0"}  # older and bootstrap versions take no item IDs


@dataclass(frozen=True)
class VersionInfo:
    """A version's metadata as registered in Redis (from its ``meta.json``)."""

    version: str
    path: Path
    encoder: str
    content_dim: int
    output_dim: int
    max_history: int
    created_at: str
    source: str
    id_dim: int = 0

    @classmethod
    def from_hash(cls, fields: dict[bytes, bytes]) -> VersionInfo:
        text = OPTIONAL_META_FIELDS | {k.decode(): v.decode() for k, v in fields.items()}
        return cls(
            version=text["version"],
            path=Path(text["path"]),
            encoder=text["encoder"],
            content_dim=int(text["content_dim"]),
            output_dim=int(text["output_dim"]),
            max_history=int(text["max_history"]),
            created_at=text["created_at"],
            source=text["source"],
            id_dim=int(text["id_dim"]),
        )


class LoadedVersion:
    """A version's ONNX towers (and ID table, for a model with item IDs), ready to run on CPU."""

    def __init__(self, info: VersionInfo, threads: int = 1) -> None:
        import onnxruntime as ort

        self.info = info
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.item_session = ort.InferenceSession(str(info.path / "item_tower.onnx"), options, providers=providers)
        self.user_session = ort.InferenceSession(str(info.path / "user_tower.onnx"), options, providers=providers)
        self.id_rows: dict[str, int] = {}
        self.id_table = np.zeros((1, info.id_dim), np.float32)  # row 0: zeros, for items without a row
        if info.id_dim:
            table = np.load(info.path / "id_table.npy")
            ids = json.loads((info.path / "id_items.json").read_text())
            self.id_table = np.concatenate([self.id_table, table.astype(np.float32)])
            self.id_rows = {item_id: row + 1 for row, item_id in enumerate(ids)}

    def id_embedding(self, item_ids: Sequence[str]) -> np.ndarray:
        """The ID rows of ``item_ids`` float32 ``[n, id_dim]`` (zeros for an item without one)."""
        return self.id_table[[self.id_rows.get(i, 0) for i in item_ids]]

    def item_vectors(self, content: np.ndarray, item_ids: Sequence[str] = ()) -> np.ndarray:
        """``content`` float32 ``[n, content_dim]`` of items ``item_ids`` (needed when the version
        uses item IDs) -> item vectors float32 ``[n, output_dim]``."""
        if len(content) == 0:
            return np.zeros((0, self.info.output_dim), np.float32)
        feeds = {"content": np.ascontiguousarray(content, np.float32)}
        if self.info.id_dim:
            feeds["id_embedding"] = self._ids(item_ids, content.shape[:1])
        (out,) = self.item_session.run(["item_vector"], feeds)
        return out

    def user_vectors(self, content: np.ndarray, mask: np.ndarray, item_ids: Sequence[Sequence[str]] = ()) -> np.ndarray:
        """``content`` float32 ``[b, seq, content_dim]``, ``mask`` int64 ``[b, seq]``, ``item_ids``
        the ``b`` histories (right padded with anything) -> ``[b, output_dim]``."""
        feeds = {"content": np.ascontiguousarray(content, np.float32), "mask": np.ascontiguousarray(mask, np.int64)}
        if self.info.id_dim:
            flat = [i for row in item_ids for i in list(row) + [""] * (content.shape[1] - len(row))]
            feeds["id_embedding"] = self._ids(flat, content.shape[:2])
        (out,) = self.user_session.run(["user_vector"], feeds)
        return out

    def _ids(self, item_ids: Sequence[str], shape: tuple[int, ...]) -> np.ndarray:
        if len(item_ids) != int(np.prod(shape)):
            raise ValueError(f"version {self.info.version} uses item IDs: {int(np.prod(shape))} item ids needed")
        return self.id_embedding(item_ids).reshape(*shape, self.info.id_dim)
