"""The replication barrier of shared/redis_client.py: it waits on a Redis Cluster only (the wait
itself runs against real replicas in tests/integration/test_redis_cluster.py)."""


def test_the_replication_barrier_waits_on_a_cluster_only():
    from learnrec.shared.config import Settings
    from learnrec.shared.redis_client import ReplicationBarrier

    single = ReplicationBarrier(object(), Settings())  # type: ignore[arg-type]
    single()  # no replicas to wait for: never touches the client
    assert single.replicas == 0
    assert ReplicationBarrier(object(), Settings().replace(redis_cluster=True)).replicas == 1  # type: ignore[arg-type]
    assert ReplicationBarrier(object(), Settings().replace(redis_cluster=True, redis_wait_replicas=0)).replicas == 0  # type: ignore[arg-type]
