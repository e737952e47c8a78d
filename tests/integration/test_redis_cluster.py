"""learnrec on a Redis Cluster (devtools.redis_cluster: three masters, one replica each, real
redis-server processes) and the session's real Kafka: the whole stack (item encoder, history
updater, trainer, serving) answers from it, and every key of a deployment shares one slot, so
its scripts and transactions run on one master.

The cluster is started for this module on free ports under a temporary folder and stopped after
it; under ``CI=true`` a cluster that cannot start fails the tests, elsewhere they are skipped.
"""

from __future__ import annotations

import os
import socket

import pytest

from devtools.local_services import ServiceError
from devtools.redis_cluster import NODES, LocalRedisCluster
from learnrec.shared.config import Settings
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.testing.stack import LearnrecStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports() -> tuple[int, ...]:
    """Six consecutive free ports whose cluster-bus ports (port + 10000) are free too."""
    for base in range(21000, 29000, 50):
        ports = tuple(range(base, base + NODES))
        if all(_free(port) and _free(port + 10000) for port in ports):
            return ports
    raise RuntimeError("no six free ports for a Redis Cluster")


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory) -> LocalRedisCluster:
    cluster = LocalRedisCluster(Settings(), tmp_path_factory.mktemp("redis-cluster"), _cluster_ports())
    try:
        cluster.up()
    except ServiceError as err:
        cluster.down()
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the Redis Cluster did not start: {err}")
        pytest.skip(f"the Redis Cluster did not start: {err}")
    yield cluster
    cluster.down()


@pytest.fixture
def cluster_settings(settings: Settings, redis_cluster: LocalRedisCluster) -> Settings:
    return settings.replace(REDIS_URL=redis_cluster.url, redis_cluster=True)


def test_the_stack_answers_from_a_redis_cluster_with_every_key_in_one_slot(cluster_settings):
    with LearnrecStack(cluster_settings) as stack:
        stack.producer.publish_item({"item_id": "lens-a", "title": "camera lens alpha"})
        stack.producer.publish_item({"item_id": "lens-b", "title": "camera lens beta"})
        stack.producer.publish_item({"item_id": "hose", "title": "garden hose"})
        stack.producer.publish_interaction({"user_id": "u1", "item_id": "lens-a"})
        assert stack.producer.flush() == 4
        stack.wait_until_servable("lens-b")
        stack.wait_until_reflected("u1", "lens-a")
        answer = stack.client.for_user("u1", k=1)
        assert answer.source == "personal" and answer.item_ids == ["lens-b"]
        assert stack.client.similar("lens-a", k=1).item_ids == ["lens-b"]

    client, keys = make_redis(cluster_settings), RedisKeys.from_settings(cluster_settings)
    names = list(client.scan_iter(match=keys.pattern_all(), count=1000))
    assert keys.prefix == "{" + cluster_settings.connection.redis_prefix + "}"
    assert {keys.history("u1").encode(), keys.model_current().encode(), keys.item("lens-b").encode()} <= set(names)
    assert len({client.keyslot(name) for name in names}) == 1
    client.delete(*names)
    client.close()
