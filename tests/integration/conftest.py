"""The clusters the cluster tests start once per module, on free ports (``start_or_skip``,
tests/cluster_helpers.py): three Kafka nodes, and a Redis Cluster of three masters with one
replica each. The single broker and Redis of the session stay the default (tests/conftest.py)."""

from __future__ import annotations

import socket

import pytest

from devtools.kafka_cluster import LocalKafkaCluster
from devtools.redis_cluster import NODES, LocalRedisCluster
from learnrec.shared.config import Settings
from learnrec.testing.live_server import free_port
from tests.cluster_helpers import start_or_skip


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory) -> LocalKafkaCluster:
    ports = [free_port() for _ in range(6)]
    nodes = LocalKafkaCluster(Settings(), tmp_path_factory.mktemp("kafka-cluster"), tuple(ports[:3]),
                              tuple(ports[3:]))
    start_or_skip(nodes, "the three-node Kafka cluster")
    yield nodes
    nodes.down()


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
    start_or_skip(cluster, "the Redis Cluster")
    yield cluster
    cluster.down()
