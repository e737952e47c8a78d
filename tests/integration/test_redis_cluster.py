"""learnrec on a Redis Cluster (devtools.redis_cluster: three masters, one replica each, real
redis-server processes) and the session's real Kafka: the whole stack (item encoder, history
updater, trainer, serving) answers from it, every key of a deployment shares one slot, so its
scripts and transactions run on one master, and when that master is killed mid-stream its
replica takes over with every applied event (the workers wait for a replica before they commit).

Started once for the module (tests/integration/conftest.py).
"""

from __future__ import annotations

import threading

import pytest
import redis

from devtools.redis_cluster import LocalRedisCluster
from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.redis_client import ReplicasBehind, make_redis, wait_for_replicas
from learnrec.shared.redis_keys import RedisKeys
from learnrec.stream.workers import build_history_worker
from learnrec.testing.stack import LearnrecStack
from tests.cluster_helpers import (
    assert_histories_are,
    recommends_a_lens_after_a_lens,
    stream_through_a_kill,
)
from tests.stream_helpers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster_settings(settings: Settings, redis_cluster: LocalRedisCluster) -> Settings:
    return settings.replace(REDIS_URL=redis_cluster.url, redis_cluster=True, redis_cluster_nodes=redis_cluster.nodes)


def test_the_stack_answers_from_a_redis_cluster_with_every_key_in_one_slot(cluster_settings):
    with LearnrecStack(cluster_settings) as stack:
        recommends_a_lens_after_a_lens(stack)
        assert stack.client.similar("lens-a", k=1).item_ids == ["lens-b"]

    client, keys = make_redis(cluster_settings), RedisKeys.from_settings(cluster_settings)
    names = list(client.scan_iter(match=keys.pattern_all(), count=1000))
    assert keys.prefix == "{" + cluster_settings.connection.redis_prefix + "}"
    assert {keys.history("u1").encode(), keys.model_current().encode(), keys.item("lens-b").encode()} <= set(names)
    assert len({client.keyslot(name) for name in names}) == 1
    client.delete(*names)
    client.close()


def _nothing_durable(settings: Settings) -> bool:
    """Whether a new client finds the slot's master and the barrier there reports no replica."""
    client = make_redis(settings)
    try:
        wait_for_replicas(client, RedisKeys.from_settings(settings).replicated(), 1, 200)
        return False
    except ReplicasBehind:
        return True
    except redis.ConnectionError:  # a node that still names the dead master for the slot
        return False
    finally:
        client.close()


def test_a_master_killed_mid_stream_loses_nothing_and_applies_nothing_twice(redis_cluster, cluster_settings):
    """The master of the deployment's slot is SIGKILLed while the history updater applies a
    stream; its replica is promoted (with no replica of its own, a batch is not durable there and
    the updater waits), the killed node comes back as its replica, and every user's history is
    then exactly the items sent."""
    settings = cluster_settings.replace(history_length=1000, kafka_session_timeout_ms=6000)
    keys, client = RedisKeys.from_settings(settings), make_redis(settings)
    ensure_topics(settings)
    victim = client.get_node_from_key(keys.history_applied()).port
    worker = build_history_worker(settings)
    runner = threading.Thread(target=worker.run, name="history-updater")
    runner.start()
    try:
        sent = stream_through_a_kill(settings, lambda: client.exists(keys.history("u0")),
                                     lambda: redis_cluster.kill(victim))
        # the replica takes over the killed master's slots; the killed node then returns as its replica
        assert wait_until(lambda: len(redis_cluster.masters()) == 3, 60), "no replica was promoted"
        assert victim not in redis_cluster.masters()
        # the promoted master has no replica yet: nothing is durable there. A client started now,
        # whose REDIS_URL names the dead node, finds the cluster through the others (once the
        # nodes it asks have heard of the promotion)
        assert wait_until(lambda: _nothing_durable(settings.replace(REDIS_URL=f"redis://127.0.0.1:{victim}/0")), 30)
        redis_cluster.start(victim)
        assert wait_until(redis_cluster.healthy, 60)
        assert_histories_are(client, keys, sent)
    finally:
        worker.stop_event.set()
        runner.join(timeout=60)
        client.close()
