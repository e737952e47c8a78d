"""The online trainer's checkpoint: model, optimizer, consumed offsets and stream state, together.

The checkpoint, not Kafka's committed offsets, is the trainer's source of truth. It is written
and read by :mod:`learnrec.shared.model.checkpoint` (``format``, ``config``, ``state_dict``,
``extra``), like an offline one; this module names what the online trainer keeps in ``extra``:

- ``optimizer``: the optimizer's state dict (:class:`~learnrec.trainer.lazy_adamw.LazyAdamW`, in AdamW's layout);
- ``offsets``: ``{"topic:partition": next offset to consume}``;
- ``sequences`` / ``replay``: :class:`~learnrec.trainer.sequences.UserSequences` and
  :class:`~learnrec.trainer.sequences.ReplayBuffer` states;
- ``trained``: events trained so far; ``audit``: ``{event_id: times trained}`` when auditing;
- ``encoder``: the content encoder's id.

Below: the keys of ``offsets``. Writing is atomic and durable (a kill -9 at any moment leaves
either the old or the new checkpoint, never a torn one).
"""

from __future__ import annotations


def offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def parse_offset_key(key: str) -> tuple[str, int]:
    topic, _, partition = key.rpartition(":")
    return topic, int(partition)
