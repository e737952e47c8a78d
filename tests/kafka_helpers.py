"""Test helpers: read a topic from the beginning until enough records arrived."""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, TopicPartition

from learnrec.shared.config import Settings


def read_topic(settings: Settings, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    """All records of ``topic`` (every partition, from offset 0) once ``expected`` have arrived."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.connection.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        client_id=f"test-reader-{uuid.uuid4().hex[:6]}",
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while time.monotonic() < deadline and not partitions:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.2)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list = []
        while time.monotonic() < deadline and len(records) < expected:
            for part in consumer.poll(timeout_ms=200).values():
                records.extend(part)
        return records
    finally:
        consumer.close()
