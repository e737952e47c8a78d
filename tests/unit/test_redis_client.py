"""shared/redis_client.py without a server: the replication barrier waits on a Redis Cluster
only (the wait itself runs against real replicas in tests/integration/test_redis_cluster.py),
and the cluster's further nodes are read as host:port pairs."""


def test_the_replication_barrier_waits_on_a_cluster_only():
    from learnrec.shared.config import Settings
    from learnrec.shared.redis_client import ReplicationBarrier

    single = ReplicationBarrier(object(), Settings())  # type: ignore[arg-type]
    single()  # no replicas to wait for: never touches the client
    assert single.replicas == 0
    assert ReplicationBarrier(object(), Settings().replace(redis_cluster=True)).replicas == 1  # type: ignore[arg-type]
    assert ReplicationBarrier(object(), Settings().replace(redis_cluster=True, redis_wait_replicas=0)).replicas == 0  # type: ignore[arg-type]


def test_more_cluster_nodes_are_host_port_pairs():
    import pytest

    from learnrec.shared.config import Settings
    from learnrec.shared.redis_client import cluster_nodes

    assert cluster_nodes(Settings()) == []
    assert cluster_nodes(Settings().replace(redis_cluster_nodes="10.0.0.1:7000, redis-2:7001,")) == [
        ("10.0.0.1", 7000), ("redis-2", 7001)]
    with pytest.raises(ValueError, match="host:port"):
        cluster_nodes(Settings().replace(redis_cluster_nodes="redis-2"))
