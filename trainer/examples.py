"""Training examples the LEARN way: a sequence split in time into history and target.

An example is a pair of item-id lists (history, targets), both non-empty, history older than
targets. Two sources:

- new events (:func:`examples_from_events`): per user in a mini-batch, the items that arrived
  in it are the targets (in chunks, one step per round of chunks) and the user's earlier
  sequence is the history;
- replay snapshots (:func:`examples_from_snapshots`): a past sequence cut at a random point.

:func:`collate` turns examples into right-padded row-index tensors over a
:class:`~trainer.content.ContentTable`, keeping the most recent ``history_len`` history items
and the first ``max_targets`` targets.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from trainer.content import ContentTable

Example = tuple[list[str], list[str]]


def examples_from_events(
    prior: dict[str, list[str]], new: dict[str, list[str]], max_targets: int
) -> list[list[Example]]:
    """``prior[user]``: the user's sequence before the batch; ``new[user]``: items in the batch,
    in order. A user's new items are cut into chunks of ``max_targets``; each chunk is the
    targets of one example whose history is everything before it (a user with no prior items
    keeps the first one as history). Every new item is a target exactly once.

    Returns rounds: round ``r`` holds every user's ``r``-th chunk, so a step over one round has
    at most one example per user (another example of the same user would be a false negative).
    """
    rounds: list[list[Example]] = []
    for user, items in new.items():
        seq = prior.get(user, []) + items
        start = max(len(seq) - len(items), 1)
        for r, cut in enumerate(range(start, len(seq), max_targets)):
            if r == len(rounds):
                rounds.append([])
            rounds[r].append((seq[:cut], seq[cut : cut + max_targets]))
    return rounds


def examples_from_snapshots(snapshots: Sequence[list[str]], rng: random.Random) -> list[Example]:
    """Each snapshot (length >= 2) cut at a uniform point: ``(seq[:c], seq[c:])``, 1 <= c < len."""
    out: list[Example] = []
    for seq in snapshots:
        cut = rng.randrange(1, len(seq))
        out.append((seq[:cut], seq[cut:]))
    return out


@dataclass
class Batch:
    """Row indices into a :class:`ContentTable`, right padded (padding rows are 0, masked out).

    ``history`` int64 [B, H], ``history_mask`` bool [B, H]; ``targets`` int64 [B, T],
    ``target_mask`` bool [B, T]. A row index identifies an item, so it doubles as the item id
    for masking identical items among the negatives.
    """

    history: torch.Tensor
    history_mask: torch.Tensor
    targets: torch.Tensor
    target_mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.history.shape[0])

    def content(self, table: ContentTable) -> tuple[torch.Tensor, torch.Tensor]:
        """Content float32 ``[B, H, D]`` and ``[B, T, D]`` (padding rows hold item 0's content)."""
        hist = torch.from_numpy(table.lookup(self.history.numpy()))
        tgt = torch.from_numpy(table.lookup(self.targets.numpy()))
        return hist, tgt


def _pad(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros((len(rows), width), bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = True
    return torch.from_numpy(ids), torch.from_numpy(mask)


def collate(
    examples: Sequence[Example], table: ContentTable, history_len: int, max_targets: int
) -> Batch | None:
    """Examples -> :class:`Batch`; items without content are dropped, and an example left with
    no history or no target is skipped. ``None`` when nothing remains."""
    hist_rows: list[np.ndarray] = []
    tgt_rows: list[np.ndarray] = []
    for history, targets in examples:
        h = [i for i in history if i in table][-history_len:]
        t = [i for i in targets if i in table][:max_targets]
        if h and t:
            hist_rows.append(table.rows(h))
            tgt_rows.append(table.rows(t))
    if not hist_rows:
        return None
    history, history_mask = _pad(hist_rows)
    targets, target_mask = _pad(tgt_rows)
    return Batch(history, history_mask, targets, target_mask)
