"""Benchmarks run under throw-away prefixes; this deletes what they leave behind."""

from __future__ import annotations

from kafka import KafkaAdminClient

from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import kafka_security
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys

BATCH = 5_000


def delete_scratch(settings: Settings, *, topics: bool) -> None:
    """UNLINK every Redis key under ``settings.connection.redis_prefix``; with ``topics``, also delete the
    topics under ``settings.connection.topic_prefix`` (never with an empty prefix: it names every topic)."""
    client = make_redis(settings)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=RedisKeys.from_settings(settings).pattern_all(), count=BATCH):
            batch.append(key)
            if len(batch) == BATCH:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    finally:
        client.close()
    if not topics or not settings.connection.topic_prefix:
        return
    admin = KafkaAdminClient(bootstrap_servers=settings.connection.kafka_bootstrap_servers, **kafka_security(settings))
    try:
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(settings.connection.topic_prefix)])
    finally:
        admin.close()
