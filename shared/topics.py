"""The one place that owns Kafka topic names and their layout.

- ``items``: item events, key = item_id, log-compacted (the latest text of every item is kept
  forever, so an empty Redis can be rebuilt by replaying it).
- ``interactions``: interaction events, key = user_id (one user's events stay in order).
- ``dead-letter``: events that failed validation or processing; value = the original bytes,
  headers = reason and source coordinates (see :mod:`learnrec.shared.dead_letter`).

None of them may lose an acknowledged event: each is created with ``LEARNREC_REPLICATION_FACTOR``
replicas and ``min.insync.replicas`` one less (at least 1; 2 of 3 on a three-broker cluster), so
an ``acks=all`` write is on two brokers before it is acknowledged and writes go on while one
broker is down.
"""

from __future__ import annotations

from dataclasses import dataclass

from learnrec.shared.config import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    configs: dict[str, str]


ITEMS = "items"
INTERACTIONS = "interactions"
DEAD_LETTER = "dead-letter"

# Consumer groups, one per component: each sees every event of its topics.
GROUP_ITEM_ENCODER = "learnrec-item-encoder"
GROUP_HISTORY_UPDATER = "learnrec-history-updater"
GROUP_TRAINER = "learnrec-trainer"


def topic_name(settings: Settings, base: str) -> str:
    """The full topic name for ``base`` under the configured prefix."""
    return f"{settings.connection.topic_prefix}{base}"


def group_name(settings: Settings, base: str) -> str:
    """Consumer-group names carry the topic prefix too, so prefixed deployments never share offsets."""
    return f"{settings.connection.topic_prefix}{base}"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the system uses, with its per-topic configuration."""
    durable = {"min.insync.replicas": str(max(1, settings.connection.replication_factor - 1))}
    return [
        TopicSpec(
            topic_name(settings, ITEMS),
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000", **durable},
        ),
        TopicSpec(topic_name(settings, INTERACTIONS), {"cleanup.policy": "delete", **durable}),
        # Dead letters are kept for two weeks: long enough for someone to look and replay.
        TopicSpec(
            topic_name(settings, DEAD_LETTER),
            {"cleanup.policy": "delete", "retention.ms": str(14 * 24 * 3600 * 1000), **durable},
        ),
    ]
