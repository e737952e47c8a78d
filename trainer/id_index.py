"""Item id -> row of the model's ID table, for the trainers.

Rows are handed out in order of first interaction, so the table grows as items appear; an item
without a row (no interaction trained yet) is represented by its content alone. The model's
table is kept at least as long as the index (:func:`grow_model`), doubling so that growth is
rare; the optimizer's state for the table grows with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from learnrec.shared.model.towers import LearnModel


class IdIndex:
    """item_id -> ID-table row (0, 1, 2, ... in order of first appearance)."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        self.items: list[str] = []
        self._rows: dict[str, int] = {}
        self.add(items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._rows

    def add(self, item_ids: Iterable[str]) -> None:
        """Give every id not seen before the next row."""
        for item_id in item_ids:
            if item_id not in self._rows:
                self._rows[item_id] = len(self.items)
                self.items.append(item_id)

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """int64 [n]: the row of each id, -1 for an id without one."""
        return np.fromiter((self._rows.get(i, -1) for i in item_ids), np.int64, len(item_ids))


def grow_model(model: LearnModel, optimizer: torch.optim.Optimizer, rows: int) -> None:
    """Make ``model``'s ID table hold at least ``rows`` rows (doubling), carrying the Adam state
    of the existing rows over to the new, larger parameter (new rows start with zero state)."""
    if not model.config.uses_ids or rows <= model.config.id_rows:
        return
    old = model.grow_ids(max(rows, 2 * model.config.id_rows, 1024))
    if old is None:
        return
    new = model.id_table
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state:
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == old.shape:
                grown = torch.zeros_like(new)
                grown[: len(value)] = value
                state[key] = grown
        optimizer.state[new] = state
