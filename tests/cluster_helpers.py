"""Helpers of the cluster tests (a three-node Kafka cluster, a Redis Cluster): start one or skip,
publish a small catalogue and check the answer, stream interactions through a kill and check
every history."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient

from devtools.local_services import ServiceError
from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import make_producer
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent
from learnrec.shared.topics import INTERACTIONS, topic_name
from tests.stream_helpers import wait_until


def start_or_skip(cluster, what: str) -> None:
    """``cluster.up()``; when it cannot start, a failure under ``CI=true``, else a skip."""
    try:
        cluster.up()
    except ServiceError as err:
        cluster.down()
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{what} did not start: {err}")
        pytest.skip(f"{what} did not start: {err}")


def recommends_a_lens_after_a_lens(stack) -> None:
    """Three items and one click through a running stack (``LearnrecStack``): the user who
    clicked one camera lens gets the other."""
    stack.producer.publish_item({"item_id": "lens-a", "title": "camera lens alpha"})
    stack.producer.publish_item({"item_id": "lens-b", "title": "camera lens beta"})
    stack.producer.publish_item({"item_id": "hose", "title": "garden hose"})
    stack.producer.publish_interaction({"user_id": "u1", "item_id": "lens-a"})
    assert stack.producer.flush() == 4
    stack.wait_until_servable("lens-b")
    stack.wait_until_reflected("u1", "lens-a")
    answer = stack.client.for_user("u1", k=1)
    assert answer.source == "personal" and answer.item_ids == ["lens-b"]


def partition_leader(settings: Settings, partition: int = 0) -> int:
    """The broker leading ``partition`` of the interactions topic (once one is elected)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.connection.kafka_bootstrap_servers, client_id="test-admin")
    try:
        leaders: dict[int, int] = {}

        def led() -> bool:
            partitions = admin.describe_topics([topic_name(settings, INTERACTIONS)])[0]["partitions"]
            leaders.update({p["partition"]: p["leader"] for p in partitions if p["leader"] >= 0})
            return partition in leaders

        assert wait_until(led, 30)
        return leaders[partition]
    finally:
        admin.close()


def stream_through_a_kill(settings: Settings, applying: Callable[[], bool], kill: Callable[[], None],
                          users: int = 40, events: int = 2400,
                          item_of: Callable[[int], str] = lambda n: f"i{n}") -> dict[str, list[str]]:
    """Send ``events`` interactions (2 ms apart) over ``users``, event ``n`` on item
    ``item_of(n)``; once a third is sent and ``applying()`` holds, ``kill()``. Returns each
    user's items in the order sent, once the cluster acknowledged every send."""
    sent: dict[str, list[str]] = {f"u{n}": [] for n in range(users)}
    producer = make_producer(settings)
    try:
        futures = []
        for n in range(events):
            event = InteractionEvent(event_id=f"e{n}", user_id=f"u{n % users}", item_id=item_of(n))
            futures.append(producer.send(topic_name(settings, INTERACTIONS), key=event.key, value=event.to_bytes()))
            sent[event.user_id].append(event.item_id)
            if n == events // 3:
                producer.flush()
                assert wait_until(applying, 30), "the history updater applied nothing"
                kill()
            time.sleep(0.002)
        producer.flush()
        for future in futures:
            future.get(timeout=60)  # acks=all: on the in-sync replicas
    finally:
        producer.close()
    return sent


def assert_histories_are(client, keys: RedisKeys, sent: dict[str, list[str]], timeout_s: float = 120) -> None:
    """Wait until the histories hold as many items as were sent, then each user's must be exactly
    the items sent to it, in order (nothing lost, nothing applied twice)."""
    total = sum(len(items) for items in sent.values())

    def applied() -> bool:
        try:
            return sum(client.llen(keys.history(user)) for user in sent) >= total
        except Exception:  # a Redis client still following a failover
            return False

    assert wait_until(applied, timeout_s), "the history updater did not apply every event"
    for user, items in sent.items():
        assert [i.decode() for i in client.lrange(keys.history(user), 0, -1)] == items, user
