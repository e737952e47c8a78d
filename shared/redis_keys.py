"""The one place that owns Redis key names.

All keys live under the configured prefix (``LEARNREC_REDIS_PREFIX``, default ``learnrec``) so
several deployments, or tests, can share a server; on a Redis Cluster (``LEARNREC_REDIS_CLUSTER``)
the prefix is a hash tag, ``{learnrec}``, and ``{p}`` below stands for that. Layout:

==================================  =========  ===================================================
key                                 type       holds
==================================  =========  ===================================================
``{p}:item:{item_id}``              hash       text fields, ``text``, ``content_hash``,
                                               ``content`` (float32 bytes, LLM dim), ``updated_at``
``{p}:items``                       set        every item id with a content embedding
``{p}:vectors:{version}``           hash       item_id -> item vector (float32 bytes, output dim)
``{p}:item-updates``                stream     one entry per new/changed item vector
                                               (fields ``item_id``, ``version``)
``{p}:model:current``               string     the model version serving and the stream use
``{p}:model:preparing``             set        versions being published (vectors being written)
``{p}:model:versions``              zset       published versions, scored by publish time
``{p}:model:meta:{version}``        hash       a version's metadata (paths, dims, created_at, file manifest)
``{p}:model:files:{version}``       hash       a version's files, ``{name}#{chunk}`` -> bytes
``{p}:history:{user_id}``           list       the user's recent item ids, oldest first, bounded
``{p}:history-events:{user_id}``    list       the user's last event ids (a producer's
                                               duplicates), expiring with the history
``{p}:history-users``               zset       user_id -> time of the last event (the cap)
``{p}:history-applied``             hash       ``{topic}:{partition}`` -> highest offset applied
``{p}:popular:{bucket}``            zset       item_id -> interaction count in one time bucket
``{p}:popular-clock``               zset       member ``latest``: the newest bucket counted
``{p}:model:lock:{version}``        string     held by the process publishing ``version``
``{p}:model:lease:{version}``       string     alive while a publisher works on ``version``
                                               (expires: a preparing version without it
                                               was abandoned)
``{p}:model:gate``                  list       publish-gate decisions (JSON), newest first
``{p}:epoch``                       string     this Redis's lifetime (missing: new or wiped)
``{p}:rebuilding``                  hash       ``{group}|{topic}|{partition}`` -> offset a
                                               partition must reach (-1: not rewound yet)
``{p}:replayed:{group}``            hash       ``{group}|{topic}|{partition}`` -> the epoch
                                               it was replayed under
``{p}:model:force-publish``         string     set by an operator: the trainer's next version
                                               is published whatever the gate says
``{p}:replicated``                  string     a counter the replication barrier increments
                                               (on a Redis Cluster: shared/redis_client.py)
``{p}:trainer:members``             zset       trainer-group member id -> when its heartbeat expires
``{p}:trainer:waiting``             set        members waiting for a new world
``{p}:trainer:world``               string     the group's world (JSON: generation, members, store)
``{p}:trainer:checkpoint``          string     the group checkpoint's manifest (JSON: id, parts)
``{p}:trainer:checkpoint:{id}:{n}`` string     one part of checkpoint ``id`` (a torch file;
                                               ``shared``: the model and optimizer)
==================================  =========  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from learnrec.shared.config import Settings


@dataclass(frozen=True)
class RedisKeys:
    """Builds key names under one prefix."""

    prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisKeys:
        """On a Redis Cluster the prefix is a hash tag (``{learnrec}``): every key of the
        deployment is in one slot, so each script and transaction, which touch several keys,
        runs on one master."""
        prefix = settings.connection.redis_prefix
        return cls(f"{{{prefix}}}" if settings.connection.redis_cluster else prefix)

    def item(self, item_id: str) -> str:
        return f"{self.prefix}:item:{item_id}"

    def items(self) -> str:
        return f"{self.prefix}:items"

    def vectors(self, version: str) -> str:
        return f"{self.prefix}:vectors:{version}"

    def item_updates(self) -> str:
        return f"{self.prefix}:item-updates"

    def model_current(self) -> str:
        return f"{self.prefix}:model:current"

    def model_preparing(self) -> str:
        return f"{self.prefix}:model:preparing"

    def model_versions(self) -> str:
        return f"{self.prefix}:model:versions"

    def model_meta(self, version: str) -> str:
        return f"{self.prefix}:model:meta:{version}"

    def model_files(self, version: str) -> str:
        return f"{self.prefix}:model:files:{version}"

    def history(self, user_id: str) -> str:
        return f"{self.prefix}:history:{user_id}"

    def history_events(self, user_id: str) -> str:
        return f"{self.prefix}:history-events:{user_id}"

    def history_users(self) -> str:
        return f"{self.prefix}:history-users"

    def history_applied(self) -> str:
        return f"{self.prefix}:history-applied"

    def popular(self, bucket: int) -> str:
        return f"{self.prefix}:popular:{bucket}"

    def popular_clock(self) -> str:
        return f"{self.prefix}:popular-clock"

    def model_lock(self, version: str) -> str:
        return f"{self.prefix}:model:lock:{version}"

    def model_lease(self, version: str) -> str:
        return f"{self.prefix}:model:lease:{version}"

    def epoch(self) -> str:
        return f"{self.prefix}:epoch"

    def rebuilding(self) -> str:
        return f"{self.prefix}:rebuilding"

    def replayed(self, group: str) -> str:
        return f"{self.prefix}:replayed:{group}"

    def model_gate(self) -> str:
        return f"{self.prefix}:model:gate"

    def model_force_publish(self) -> str:
        return f"{self.prefix}:model:force-publish"

    def replicated(self) -> str:
        return f"{self.prefix}:replicated"

    def trainer_members(self) -> str:
        return f"{self.prefix}:trainer:members"

    def trainer_waiting(self) -> str:
        return f"{self.prefix}:trainer:waiting"

    def trainer_world(self) -> str:
        return f"{self.prefix}:trainer:world"

    def trainer_checkpoint(self) -> str:
        return f"{self.prefix}:trainer:checkpoint"

    def trainer_checkpoint_part(self, checkpoint_id: str, part: str) -> str:
        return f"{self.prefix}:trainer:checkpoint:{checkpoint_id}:{part}"

    def pattern_all(self) -> str:
        """A SCAN pattern matching every key of this prefix."""
        return f"{self.prefix}:*"
