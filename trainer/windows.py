"""Training windows over whole sequences, and shuffled batches of them.

A user's training sequence of any length is cut, from its end, into windows of at most
``max_len + 1`` items that overlap by one item: every item after the first is a next-item
target exactly once per pass, and a long sequence gives several windows (not only its last
``max_len`` items). A window's inputs are its items but the last, its targets the items but
the first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


def cut_windows(seqs: Sequence[np.ndarray], max_len: int) -> list[np.ndarray]:
    """Every sequence of length >= 2 cut into windows of <= ``max_len + 1`` items (int64)."""
    out: list[np.ndarray] = []
    for seq in seqs:
        end = len(seq)
        while end >= 2:
            out.append(seq[max(0, end - max_len - 1) : end])
            end -= max_len
    return out


def pad(seqs: Sequence[np.ndarray], fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad int sequences. -> (ids int64 [B, L], mask bool [B, L])."""
    width = max(1, max(len(s) for s in seqs))
    ids = np.full((len(seqs), width), fill, dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
    lengths = torch.as_tensor([len(s) for s in seqs])
    return torch.from_numpy(ids), torch.arange(width)[None, :] < lengths[:, None]


def length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                   pool: int = 16) -> list[np.ndarray]:
    """Shuffled batches of indices, each drawn from a pool of ``pool`` batches sorted by
    length, so a batch pads to about its own length. -> index arrays, in random order."""
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = order[start : start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def window_batches(
    windows: Sequence[np.ndarray], batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless shuffled passes over ``windows``. Yields ``(inputs int64 [B, L], mask bool
    [B, L], targets int64 [B, L])``: ``targets[b, i]`` is the item after ``inputs[b, i]``,
    -1 on padding."""
    if not windows:
        raise ValueError("no training window (every sequence is shorter than 2)")
    while True:
        for rows in length_batches([len(w) for w in windows], batch_size, rng):
            batch = [windows[r] for r in rows]
            inputs, mask = pad([w[:-1] for w in batch])
            targets, _ = pad([w[1:] for w in batch], fill=-1)
            yield inputs, mask, targets
