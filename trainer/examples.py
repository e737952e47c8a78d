"""Online training examples: a user's history and the item that came next.

An example is ``(history, target)``: item ids, oldest first, and the next item. Two sources:

- each new interaction: the user's sequence before it, and the item (the trainer builds these
  as events arrive);
- replay snapshots (:func:`examples_from_snapshots`): a past sequence cut at a random point.

:func:`collate` turns examples into right-padded tensors: rows of a
:class:`~learnrec.trainer.content.ContentTable` and of an :class:`~learnrec.trainer.id_index.IdIndex`, keeping
the most recent ``history_len`` history items (the model's ``max_len``: what serving feeds the
user tower).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from learnrec.trainer.content import ContentTable
from learnrec.trainer.id_index import IdIndex

Example = tuple[list[str], str]


def examples_from_snapshots(snapshots: Sequence[list[str]], rng: random.Random) -> list[Example]:
    """Each snapshot (length >= 2) cut at a uniform point ``c``: ``(seq[:c], seq[c])``."""
    out: list[Example] = []
    for seq in snapshots:
        cut = rng.randrange(1, len(seq))
        out.append((seq[:cut], seq[cut]))
    return out


@dataclass
class Batch:
    """Right-padded rows (padding rows are 0 and masked out).

    ``history`` int64 [B, L] content-table rows, ``history_ids`` int64 [B, L] ID rows (-1: none),
    ``history_mask`` bool [B, L]; ``target`` int64 [B] content-table row of the next item,
    ``target_ids`` int64 [B] its ID row. A content-table row identifies an item, so it doubles as
    the item id when masking the user's own items among the negatives.
    """

    history: torch.Tensor
    history_ids: torch.Tensor
    history_mask: torch.Tensor
    target: torch.Tensor
    target_ids: torch.Tensor

    def __len__(self) -> int:
        return int(self.history.shape[0])


def collate(examples: Sequence[Example], table: ContentTable, ids: IdIndex, history_len: int) -> Batch | None:
    """Examples -> :class:`Batch`; items without content are dropped, and an example left with
    no history or no target is skipped. ``None`` when nothing remains."""
    kept: list[tuple[list[str], str]] = []
    for history, target in examples:
        h = [i for i in history if i in table][-history_len:]
        if h and target in table:
            kept.append((h, target))
    if not kept:
        return None
    width = max(len(h) for h, _ in kept)
    rows = np.zeros((len(kept), width), np.int64)
    id_rows = np.full((len(kept), width), -1, np.int64)
    mask = np.zeros((len(kept), width), bool)
    for b, (h, _) in enumerate(kept):
        rows[b, : len(h)] = table.rows(h)
        id_rows[b, : len(h)] = ids.rows(h)
        mask[b, : len(h)] = True
    targets = [t for _, t in kept]
    return Batch(torch.from_numpy(rows), torch.from_numpy(id_rows), torch.from_numpy(mask),
                 torch.from_numpy(table.rows(targets)), torch.from_numpy(ids.rows(targets)))
