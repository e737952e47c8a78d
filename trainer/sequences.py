"""Per-user interaction sequences (bounded) and a replay sample of past sequences.

Both hold item ids only (strings); content embeddings are looked up when a training batch is
formed. Their state is plain Python (dicts, lists, ints) so that it goes into a checkpoint
loaded with ``weights_only=True``.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any


class UserSequences:
    """user_id -> the user's most recent ``max_len`` item ids, oldest first, for at most
    ``max_users`` users: past that the least recently active user is forgotten (memory and
    checkpoints stay bounded; a forgotten user who returns starts a new sequence)."""

    def __init__(self, max_len: int, max_users: int = 1_000_000) -> None:
        if max_len < 2:
            raise ValueError("max_len must be at least 2 (one history item and one target)")
        if max_users < 1:
            raise ValueError("max_users must be at least 1")
        self.max_len = max_len
        self.max_users = max_users
        self._seqs: dict[str, deque[str]] = {}  # least recently active first

    def __len__(self) -> int:
        return len(self._seqs)

    def get(self, user_id: str) -> list[str]:
        """The user's sequence (a copy; empty for an unknown user)."""
        return list(self._seqs.get(user_id, ()))

    def append(self, user_id: str, item_id: str) -> list[str]:
        """Add one interaction; returns the user's sequence after it (a copy)."""
        seq = self._seqs.pop(user_id, None)  # re-inserted last: the most recently active
        if seq is None:
            seq = deque(maxlen=self.max_len)
            while len(self._seqs) >= self.max_users:
                del self._seqs[next(iter(self._seqs))]
        self._seqs[user_id] = seq
        seq.append(item_id)
        return list(seq)

    def state(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "max_users": self.max_users,
                "seqs": {u: list(s) for u, s in self._seqs.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any], max_users: int | None = None) -> UserSequences:
        """``max_users``: the cap now (a setting may have changed since the checkpoint); the
        least recently active users beyond it are forgotten."""
        out = cls(int(state["max_len"]), max_users or int(state.get("max_users", 1_000_000)))
        seqs = list(state["seqs"].items())[-out.max_users :]
        out._seqs = {u: deque(s, maxlen=out.max_len) for u, s in seqs}
        return out


class ReplayBuffer:
    """A uniform reservoir sample (Vitter's algorithm R) of sequence snapshots.

    Every offered sequence (a user's sequence right after one of their interactions) has the
    same chance ``capacity / offered`` of being in the buffer, so old behaviour keeps being
    rehearsed in proportion to how common it was.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity = capacity
        self.offered = 0
        self._items: list[list[str]] = []
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, sequence: list[str]) -> None:
        """Consider one snapshot (sequences shorter than 2 can form no example and are ignored)."""
        if len(sequence) < 2 or self.capacity <= 0:
            return
        self.offered += 1
        if len(self._items) < self.capacity:
            self._items.append(list(sequence))
            return
        slot = self._rng.randrange(self.offered)
        if slot < self.capacity:
            self._items[slot] = list(sequence)

    def sample(self, n: int) -> list[list[str]]:
        """Up to ``n`` snapshots drawn without replacement."""
        n = min(n, len(self._items))
        return [self._items[i] for i in self._rng.sample(range(len(self._items)), n)]

    def state(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "offered": self.offered, "items": self._items}

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int = 0) -> ReplayBuffer:
        out = cls(int(state["capacity"]), seed=seed + int(state["offered"]))
        out.offered = int(state["offered"])
        out._items = [list(s) for s in state["items"]]
        return out
