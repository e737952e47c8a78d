"""Kafka producer and consumer factories, and topic creation.

The timeouts below are chosen for a system whose workers do heavy batches (LLM encoding,
training steps) between polls:

- ``max_poll_interval_ms`` 300 s: a worker that does not poll for that long is presumed dead and
  its partitions move; a training or encoding batch must finish well inside it.
- ``session_timeout_ms`` (``LEARNREC_KAFKA_SESSION_TIMEOUT_MS``, 10 s), heartbeats every third of
  it: heartbeats run on a background thread, so a short session still lets a killed worker's
  partitions move quickly.
- producers use ``acks=all`` and idempotence (set explicitly: kafka-python 2.x does not default
  to them), so a retried send never writes a duplicate; ``linger_ms`` 5 trades a few ms of
  latency for batching. A send is retried until ``delivery_timeout_ms`` (120 s) has passed, not
  a number of times: a broker that dies takes the cluster some seconds to replace as its
  partitions' leader (tests/integration/test_kafka_cluster.py), and no send may fail meanwhile.
- a consumer subscribes only once the broker reports every partition of its topics
  (:func:`wait_for_partitions`): a member that joins its group before a new topic's metadata is
  known is assigned nothing and waits for a metadata refresh before it rebalances.

The client is kafka-python 2.3 (pinned below 3 in pyproject.toml): 3.0.12's new network layer
loses a wake-up now and then when two consumers start in one process, and the consumer then
never receives its assignment (no heartbeat, nothing fetched) until it is killed; that was the
"random" CI failure of the serving end-to-end tests (1 run in 3-5 there; 0 in 12 with 2.3.3).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from learnrec.shared.config import Settings
from learnrec.shared.topics import topic_specs

log = logging.getLogger(__name__)

# Closing a consumer leaves its group: a request kafka-python otherwise waits on without limit
# (and it joins the heartbeat thread without one), so a busy or unreachable broker can hold a
# stopping worker forever. Leaving is best effort: past this, the group notices the member gone
# after its session timeout.
CLOSE_TIMEOUT_MS = 5_000


def kafka_security(settings: Settings) -> dict[str, object]:
    """Client options for SASL (PLAIN, SCRAM) and SSL from ``settings``; none for PLAINTEXT."""
    protocol = settings.connection.kafka_security_protocol
    options: dict[str, object] = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        if not settings.connection.kafka_sasl_username:
            raise ValueError(f"{protocol} needs LEARNREC_KAFKA_SASL_USERNAME and LEARNREC_KAFKA_SASL_PASSWORD")
        options |= {"sasl_mechanism": settings.connection.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.connection.kafka_sasl_username,
                    "sasl_plain_password": settings.connection.kafka_sasl_password.get_secret_value()}
    if protocol.endswith("SSL"):
        files = {"ssl_cafile": settings.connection.kafka_ssl_cafile, "ssl_certfile": settings.connection.kafka_ssl_certfile,
                 "ssl_keyfile": settings.connection.kafka_ssl_keyfile}
        options |= {name: path for name, path in files.items() if path}
    return options


def make_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    """A durable producer (acks=all, idempotent) sending raw bytes."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.connection.kafka_bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "delivery_timeout_ms": 120_000,
        "request_timeout_ms": 30_000,
        "client_id": "learnrec-producer",
        **kafka_security(settings),
    }
    options.update(overrides)
    return KafkaProducer(**options)


# kafka-python 2.3 asks for up to 50 MiB per fetch but refuses a response over 1 MB
# (InvalidReceiveError, then a reconnect) on every first fetch of a backlog: every consumer that
# reads a backlog takes both limits, the receive limit above the fetch limit with room for framing.
FETCH_LIMITS = {"fetch_max_bytes": 16 * 1024 * 1024, "receive_message_max_bytes": 17 * 1024 * 1024}


def make_consumer(
    settings: Settings,
    group_id: str,
    topics: Iterable[str],
    listener: ConsumerRebalanceListener | None = None,
    **overrides: object,
) -> KafkaConsumer:
    """A consumer in ``group_id`` that never auto-commits: the worker commits after its sinks.

    It subscribes once its topics' partitions are known (:func:`wait_for_partitions`), so its
    first assignment is already complete; ``listener`` hears every rebalance."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.connection.kafka_bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 500,
        "max_poll_interval_ms": 300_000,
        **FETCH_LIMITS,
        "session_timeout_ms": settings.connection.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.connection.kafka_session_timeout_ms // 3,
        # kafka-python's default, 305 s, is how long a blocking call (end_offsets for the lag
        # report, a commit) can wait on a request sent to a broker that died: a worker stalled
        # for minutes after a broker failover (a trainer group stalls with it)
        "request_timeout_ms": max(30_000, settings.connection.kafka_session_timeout_ms + 5_000),
        "client_id": f"learnrec-{group_id}",
        **kafka_security(settings),
    }
    options.update(overrides)
    topics = list(topics)
    consumer = KafkaConsumer(**options)
    try:
        wait_for_partitions(consumer, topics, settings.connection.kafka_metadata_wait_s)
    except BaseException:
        consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
        raise
    consumer.subscribe(topics, listener=listener)
    return consumer


class TopicsNotReady(RuntimeError):
    """A topic's partitions were not known to the broker in time (not created, or still being
    created)."""


def wait_for_partitions(consumer: KafkaConsumer, topics: Iterable[str], timeout_s: float) -> dict[str, int]:
    """Block until the broker's metadata lists partitions for every topic in ``topics``.

    Returns ``{topic: partition count}``; raises :class:`TopicsNotReady` after ``timeout_s``.
    ``partitions_for_topic`` fetches fresh metadata whenever the topic is still unknown, so
    this costs one round trip when the topics exist already.
    """
    deadline = time.monotonic() + timeout_s
    pending = list(topics)
    counts: dict[str, int] = {}
    delay = 0.05
    while True:
        for topic in list(pending):
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                counts[topic] = len(partitions)
                pending.remove(topic)
        if not pending:
            return counts
        if time.monotonic() >= deadline:
            raise TopicsNotReady(
                f"no partition metadata for {pending} after {timeout_s:.0f} s: create the topics "
                "first (learnrec topics)"
            )
        log.info("waiting for partition metadata of %s", pending)
        time.sleep(delay)
        delay = min(1.0, delay * 2)


def ensure_topics(settings: Settings, partitions: int | None = None) -> list[str]:
    """Create every topic of :func:`learnrec.shared.topics.topic_specs` that does not exist yet.

    Returns the names created. Existing topics are left as they are (their partition count is
    not changed: re-partitioning a keyed topic would reorder a key's events).
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.connection.kafka_bootstrap_servers, client_id="learnrec-admin",
                             **kafka_security(settings))
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=spec.name,
                num_partitions=partitions or settings.connection.partitions,
                replication_factor=settings.connection.replication_factor,
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


def kafka_answers(bootstrap: str) -> bool:
    """True when the broker at ``bootstrap`` accepts a connection and returns its metadata."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            pass
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, client_id="learnrec-probe")
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True
    except Exception:
        return False
