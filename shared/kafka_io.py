"""Kafka producer and consumer factories, and topic creation.

The timeouts below are chosen for a system whose workers do heavy batches (LLM encoding,
training steps) between polls:

- ``max_poll_interval_ms`` 300 s: a worker that does not poll for that long is presumed dead and
  its partitions move; a training or encoding batch must finish well inside it.
- ``session_timeout_ms`` (``LEARNREC_KAFKA_SESSION_TIMEOUT_MS``, 10 s), heartbeats every third of
  it: heartbeats run on a background thread, so a short session still lets a killed worker's
  partitions move quickly.
- producers keep kafka-python's defaults of ``acks=all`` and idempotence, so a retried send never
  writes a duplicate; ``linger_ms`` 5 trades a few ms of latency for batching.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from shared.config import Settings
from shared.topics import topic_specs

log = logging.getLogger(__name__)


def make_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    """A durable producer (acks=all, idempotent) sending raw bytes."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "linger_ms": 5,
        "retries": 5,
        "request_timeout_ms": 30_000,
        "client_id": "learnrec-producer",
    }
    options.update(overrides)
    return KafkaProducer(**options)


def make_consumer(
    settings: Settings, group_id: str, topics: Iterable[str], **overrides: object
) -> KafkaConsumer:
    """A consumer in ``group_id`` that never auto-commits: the worker commits after its sinks."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 500,
        "max_poll_interval_ms": 300_000,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_session_timeout_ms // 3,
        "client_id": f"learnrec-{group_id}",
    }
    options.update(overrides)
    consumer = KafkaConsumer(**options)
    consumer.subscribe(list(topics))
    return consumer


def ensure_topics(settings: Settings, partitions: int | None = None) -> list[str]:
    """Create every topic of :func:`shared.topics.topic_specs` that does not exist yet.

    Returns the names created. Existing topics are left as they are (their partition count is
    not changed: re-partitioning a keyed topic would reorder a key's events).
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="learnrec-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=spec.name,
                num_partitions=partitions or settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=spec.configs,
            )
            for spec in topic_specs(settings)
            if spec.name not in existing
        ]
        created: list[str] = []
        for topic in wanted:
            try:
                admin.create_topics([topic], timeout_ms=30_000)
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # another process won the race; that is fine
        if created:
            log.info("created topics %s", created)
        return created
    finally:
        admin.close()
