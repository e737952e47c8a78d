"""A three-node Kafka cluster (devtools.kafka_cluster, real brokers, the session's real Redis):
learnrec's topics are replicated with ``min.insync.replicas`` 2, and a broker killed in the
middle of a stream loses no event the producers sent and applies none twice.

The cluster is started for this module on free ports under a temporary folder and stopped after
it; under ``CI=true`` a cluster that cannot start fails the tests, elsewhere they are skipped.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from devtools.kafka_cluster import LocalKafkaCluster
from devtools.local_services import ServiceError
from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import ensure_topics, make_producer
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent
from learnrec.shared.topics import INTERACTIONS, topic_name, topic_specs
from learnrec.stream.workers import build_history_worker
from learnrec.testing.live_server import free_port
from tests.stream_helpers import wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> LocalKafkaCluster:
    ports = [free_port() for _ in range(6)]
    nodes = LocalKafkaCluster(Settings(), tmp_path_factory.mktemp("kafka-cluster"), tuple(ports[:3]),
                              tuple(ports[3:]))
    try:
        nodes.up()
    except ServiceError as err:
        nodes.down()
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the three-node Kafka cluster did not start: {err}")
        pytest.skip(f"the three-node Kafka cluster did not start: {err}")
    yield nodes
    nodes.down()


@pytest.fixture
def cluster_settings(settings: Settings, cluster: LocalKafkaCluster) -> Settings:
    return settings.replace(KAFKA_BOOTSTRAP_SERVERS=cluster.bootstrap, replication_factor=3, partitions=4,
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


def test_a_broker_killed_mid_stream_loses_nothing_and_applies_nothing_twice(cluster, cluster_settings,
                                                                            redis_client):
    """The leader of an interactions partition is SIGKILLed while a producer sends and the
    history updater applies: every user's history is then exactly the items sent, in order."""
    settings = cluster_settings.replace(history_length=1000)
    keys = RedisKeys.from_settings(settings)
    ensure_topics(settings)
    users, events = 40, 2400
    sent = {f"u{n}": [] for n in range(users)}
    worker = build_history_worker(settings)
    runner = threading.Thread(target=worker.run, name="history-updater")
    runner.start()
    admin, victim = _admin(settings), None
    try:
        leaders: dict[int, int] = {}

        def led() -> bool:
            partitions = admin.describe_topics([topic_name(settings, INTERACTIONS)])[0]["partitions"]
            leaders.update({p["partition"]: p["leader"] for p in partitions})
            return 0 in leaders

        assert wait_until(led, 30)
        victim = leaders[0]
        producer = make_producer(settings)
        futures = []
        for n in range(events):
            user, item = f"u{n % users}", f"i{n}"
            event = InteractionEvent(event_id=f"e{n}", user_id=user, item_id=item)
            futures.append(producer.send(topic_name(settings, INTERACTIONS), key=event.key, value=event.to_bytes()))
            sent[user].append(item)
            if n == events // 3:
                producer.flush()
                cluster.kill(victim)  # mid-stream: a third sent and (partly) applied
            time.sleep(0.002)
        producer.flush()
        for future in futures:
            future.get(timeout=60)  # every send acknowledged by the cluster (acks=all)
        producer.close()

        def applied() -> bool:
            return sum(redis_client.llen(keys.history(user)) for user in sent) >= events

        assert wait_until(applied, 120), "the history updater did not apply every event"
        for user, items in sent.items():
            assert [i.decode() for i in redis_client.lrange(keys.history(user), 0, -1)] == items, user
    finally:
        worker.stop_event.set()
        runner.join(timeout=60)
        admin.close()
        if victim is not None:
            cluster.up()  # the killed node starts again: three nodes for whatever runs next
