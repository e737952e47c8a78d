"""A three-node Kafka cluster (devtools.kafka_cluster, real brokers, the session's real Redis):
learnrec's topics are replicated with ``min.insync.replicas`` 2, the whole stack (item encoder,
history updater, trainer, serving) answers on it, and a broker killed in the middle of a stream
loses no event the producers sent and applies none twice.

Started once for the module (tests/integration/conftest.py).
"""

from __future__ import annotations

import threading

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from devtools.kafka_cluster import LocalKafkaCluster
from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.topics import topic_specs
from learnrec.stream.workers import build_history_worker
from learnrec.testing.stack import LearnrecStack
from tests.cluster_helpers import (
    assert_histories_are,
    partition_leader,
    recommends_a_lens_after_a_lens,
    stream_through_a_kill,
)
from tests.stream_helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster_settings(settings: Settings, kafka_cluster: LocalKafkaCluster) -> Settings:
    return settings.replace(KAFKA_BOOTSTRAP_SERVERS=kafka_cluster.bootstrap, replication_factor=3, partitions=4,
                            kafka_session_timeout_ms=6000)


def _admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=settings.connection.kafka_bootstrap_servers, client_id="test-admin")


def test_topics_have_three_replicas_and_two_in_sync(cluster_settings):
    ensure_topics(cluster_settings)
    names = [spec.name for spec in topic_specs(cluster_settings)]
    admin = _admin(cluster_settings)
    try:
        described: list = []

        def known() -> bool:  # a topic's partitions appear in the metadata a moment after it is created
            described[:] = admin.describe_topics(names)
            return all(len(topic["partitions"]) == 4 for topic in described)

        assert wait_until(known, 30), described
        for topic in described:
            assert all(sorted(p["replicas"]) == [1, 2, 3] for p in topic["partitions"]), topic
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        for response in admin.describe_configs(resources):
            for _, _, _, _, entries in response.resources:
                values = {entry[0]: entry[1] for entry in entries}
                assert values["min.insync.replicas"] == "2", values
    finally:
        admin.close()


def test_the_stack_answers_on_the_kafka_cluster(cluster_settings):
    with LearnrecStack(cluster_settings) as stack:
        recommends_a_lens_after_a_lens(stack)


def test_a_broker_killed_mid_stream_loses_nothing_and_applies_nothing_twice(kafka_cluster, cluster_settings,
                                                                            redis_client):
    """The leader of an interactions partition is SIGKILLed while a producer sends and the
    history updater applies: every user's history is then exactly the items sent."""
    settings = cluster_settings.replace(history_length=1000)
    keys = RedisKeys.from_settings(settings)
    ensure_topics(settings)
    worker = build_history_worker(settings)
    runner = threading.Thread(target=worker.run, name="history-updater")
    runner.start()
    victim = None
    try:
        victim = partition_leader(settings)
        sent = stream_through_a_kill(settings, lambda: redis_client.exists(keys.history("u0")),
                                     lambda: kafka_cluster.kill(victim))
        assert_histories_are(redis_client, keys, sent)
    finally:
        worker.stop_event.set()
        runner.join(timeout=60)
        if victim is not None:
            kafka_cluster.up()  # the killed node starts again: three nodes for whatever runs next
