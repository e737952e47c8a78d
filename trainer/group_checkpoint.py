"""The trainer group's checkpoint in Redis: one consistent cut of every member's state.

A group has no shared folder, so its checkpoint is in Redis, in parts:

- ``shared`` (written by rank 0; every member holds the same): the model's config and weights,
  the optimizer, the ID rows and their counts, the step count, the encoder;
- one part per member: its users' sequences, its replay sample, its held-back events (each
  with its ``topic:partition``), the next offset of each partition it owns, the events it
  trained and (auditing) which.

Every member writes its part at the same round, when none holds a released event not yet
trained; after a barrier rank 0 points the manifest (``{p}:trainer:checkpoint``) at the new
parts and deletes the old ones. A member killed before the flip leaves the previous checkpoint
whole. A world restores from the manifest, each member taking the state of the partitions it
owns now (:func:`member_state`): the group rolls back to the cut, so an event trained after it
is trained again only because the model that had trained it was dropped.

A single trainer's file checkpoint (``trainer_checkpoint``) reads as a shared part and one
member part (:func:`from_file`), so a group can start where one trainer stopped.
"""

from __future__ import annotations

import io
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import torch
import torch.distributed as dist

from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.shared.redis_keys import RedisKeys
from learnrec.trainer.online import OnlineTrainer, holdback_state

SHARED_FIELDS = ("optimizer", "id_items", "id_counts", "steps", "encoder")
MEMBER_FIELDS = ("sequences", "replay", "holdback", "offsets", "trained", "audit")


@dataclass
class GroupState:
    """A checkpoint as read: the shared part and every member's part."""

    shared: dict[str, Any]
    parts: list[dict[str, Any]]

    def model(self) -> LearnModel:
        model = LearnModel(LearnConfig(**self.shared["config"]))
        model.load_state_dict(self.shared["state_dict"])
        return model


def _dumps(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _loads(raw: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)


def write(trainer: OnlineTrainer, client: redis.Redis, keys: RedisKeys) -> str:
    """Collective: every member writes its part, then rank 0 flips the manifest. Call it only
    with no released event pending (the round trains them first). Returns the checkpoint id."""
    if trainer.released:
        raise RuntimeError("a group checkpoint needs every released event trained first")
    rank, size = dist.get_rank(), dist.get_world_size()
    ids: list[str | None] = [uuid.uuid4().hex[:12] if rank == 0 else None]
    dist.broadcast_object_list(ids, src=0)
    checkpoint_id = str(ids[0])
    part = {"offsets": dict(trainer.offsets), "sequences": trainer.sequences.state(),
            "replay": trainer.replay.state(), "holdback": holdback_state(trainer.holdback),
            "trained": trainer.trained, "audit": dict(trainer.audit)}
    client.set(keys.trainer_checkpoint_part(checkpoint_id, str(rank)), _dumps(part))
    if rank == 0:
        shared = {"config": trainer.model.config.to_dict(), "state_dict": trainer.model.state_dict(),
                  "optimizer": trainer.optimizer.state_dict(), "id_items": list(trainer.ids.items),
                  "id_counts": dict(trainer.id_counts), "steps": trainer.steps, "encoder": trainer.encoder}
        client.set(keys.trainer_checkpoint_part(checkpoint_id, "shared"), _dumps(shared))
    dist.barrier()
    if rank == 0:
        old = client.get(keys.trainer_checkpoint())
        client.set(keys.trainer_checkpoint(), json.dumps({"id": checkpoint_id, "parts": size}))
        if old is not None:
            manifest = json.loads(old)
            client.delete(*_part_keys(keys, manifest["id"], manifest["parts"]))
    return checkpoint_id


def _part_keys(keys: RedisKeys, checkpoint_id: str, parts: int) -> list[str]:
    return [keys.trainer_checkpoint_part(checkpoint_id, name) for name in ["shared", *map(str, range(parts))]]


def read(client: redis.Redis, keys: RedisKeys) -> GroupState | None:
    """The checkpoint the manifest names, or None when the group has none. A checkpoint written
    while this reads flips the manifest and deletes the parts being read: then the new one is
    read (parts missing under an unchanged manifest are an error)."""
    raw = client.get(keys.trainer_checkpoint())
    while raw is not None:
        manifest = json.loads(raw)
        shared, *parts = client.mget(_part_keys(keys, manifest["id"], manifest["parts"]))  # one slot
        if shared is not None and all(p is not None for p in parts):
            return GroupState(_loads(shared), [_loads(p) for p in parts])
        now = client.get(keys.trainer_checkpoint())
        if now == raw:
            raise RuntimeError(f"trainer checkpoint {manifest['id']} is incomplete in Redis")
        raw = now
    return None


def from_file(path: Path) -> GroupState:
    """A single trainer's checkpoint file as a group checkpoint of one member."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    extra = state["extra"]
    shared = {"config": state["config"], "state_dict": state["state_dict"]} | {k: extra[k] for k in SHARED_FIELDS}
    return GroupState(shared, [{k: extra.get(k, {}) for k in MEMBER_FIELDS}])


def member_state(state: GroupState, owned: set[str], partition_of: Callable[[str], str],
                 rank: int, size: int, seed: int) -> dict[str, Any]:
    """The ``extra`` of :meth:`OnlineTrainer.restore` for the member of ``rank`` owning the
    partitions ``owned`` (``"topic:partition"``; ``partition_of(user_id)`` names a user's):
    their users' sequences, held-back events and offsets; a ``1/size`` share of the pooled
    replay sample (shuffled by ``seed``, the same on every member, so the shares are disjoint);
    the trained count and audit go to rank 0 (they are summed over parts)."""
    seqs = {u: s for part in state.parts for u, s in part["sequences"]["seqs"].items() if partition_of(u) in owned}
    first = state.parts[0]
    def mine(entry: tuple) -> bool:  # a held-back event from before partitions were kept: rank 0's
        return entry[3] in owned if len(entry) > 3 and entry[3] is not None else rank == 0

    holdback = [entry for part in state.parts for entry in part["holdback"] if mine(entry)]
    pooled = [s for part in state.parts for s in part["replay"]["items"]]
    random.Random(seed).shuffle(pooled)
    audit: dict[str, int] = {}
    if rank == 0:
        for part in state.parts:
            for event_id, times in part["audit"].items():
                audit[event_id] = audit.get(event_id, 0) + times
    return {k: state.shared[k] for k in SHARED_FIELDS} | {
        "sequences": {"max_len": first["sequences"]["max_len"], "max_users": first["sequences"]["max_users"],
                      "seqs": seqs},
        "replay": {"capacity": first["replay"]["capacity"], "items": pooled[rank::size],
                   "offered": sum(p["replay"]["offered"] for p in state.parts) // size},
        "holdback": holdback,
        "offsets": {k: v for part in state.parts for k, v in part["offsets"].items() if k in owned},
        "trained": sum(p["trained"] for p in state.parts) if rank == 0 else 0,
        "audit": audit,
    }
