"""A wiped Redis is rebuilt from the Kafka logs without an operator step (shared/rebuild.py):
items, vectors, histories and popularity come back exactly once, the current model version
comes back from the registry's durable record, and serving answers 503 until then. Items
removed by a tombstone or marked unavailable stay out."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.popularity import popular_items
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.shared.topics import ITEMS as ITEMS_TOPIC
from learnrec.stream.workers import build_history_worker, build_item_worker
from learnrec.versions.bootstrap import export_content_projected
from learnrec.versions.registry import ModelRegistry
from tests.serving_support import LiveServer, wait_until
from tests.stream_helpers import HashEncoder, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DIM = 16
ITEMS = [ItemEvent(item_id=f"item-{n}", title=f"thing number {n}") for n in range(12)]
NOW = time.time()
CLICKS = [InteractionEvent(event_id=f"e{n}", user_id=f"u{n % 5}", item_id=f"item-{(n * 7) % 12}", timestamp=NOW + n)
          for n in range(60)]
# item-11 is deleted (a tombstone), item-10 is marked unavailable: neither may come back
REMOVALS = [ItemEvent(item_id="item-10", title="thing number 10", available=False)]
TOMBSTONES = [(ITEMS_TOPIC, b"item-11", None)]
SERVED = [f"item-{n}".encode() for n in range(10)]


class Workers:
    """The two stream workers in threads (stopped and joined on exit)."""

    def __init__(self, settings) -> None:
        self.workers = [build_item_worker(settings, HashEncoder(DIM)), build_history_worker(settings)]
        self.threads = [threading.Thread(target=w.run, daemon=True) for w in self.workers]

    def __enter__(self) -> Workers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers:
            worker.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=15)


def _state(redis_client, keys: RedisKeys, settings) -> dict:
    """What a rebuild must bring back: items, histories, popularity, the current version."""
    current = redis_client.get(keys.model_current())
    vectors = redis_client.hkeys(keys.vectors(current.decode())) if current else []
    return {
        "current": current,
        "items": sorted(redis_client.smembers(keys.items())),
        "vectors": sorted(vectors),
        "histories": {u: redis_client.lrange(keys.history(u), 0, -1) for u in (f"u{n}" for n in range(5))},
        "popular": popular_items(redis_client, settings, k=20, now=NOW),
    }


def _ready(url: str) -> int:
    return httpx.get(f"{url}/readyz").status_code


def _wipe(redis_client, keys: RedisKeys) -> None:
    redis_client.delete(*redis_client.scan_iter(match=keys.pattern_all(), count=1000))


def test_a_wiped_redis_is_rebuilt_from_the_logs(settings, redis_client):
    keys = RedisKeys.from_settings(settings)
    ensure_topics(settings)
    produce(settings, ITEMS + CLICKS + REMOVALS, raw=TOMBSTONES)
    with LiveServer(settings) as server:
        with Workers(settings):
            assert wait_until(lambda: _ready(server.url) == 200 and not redis_client.exists(keys.rebuilding())
                              and sum(redis_client.llen(keys.history(f"u{n}")) for n in range(5)) == 60
                              and redis_client.smembers(keys.items()) == set(SERVED), 60)
            # a trained version replaces the bootstrap one: the rebuild must bring *it* back
            registry = ModelRegistry.from_settings(settings, redis_client)
            folder = export_content_projected(settings.versions.model_dir / "trained", HashEncoder(DIM).model_id, DIM, 8,
                                              seed=7, max_history=settings.stream.history_length)
            registry.publish(registry.register(folder).version)
            before = _state(redis_client, keys, settings)
            assert before["current"] == b"trained" and before["vectors"] == before["items"] == sorted(SERVED)
        _wipe(redis_client, keys)  # Redis loses everything while no worker runs
        assert wait_until(lambda: _ready(server.url) == 503, 10)  # no wrong answers meanwhile
        assert httpx.get(f"{server.url}/v1/users/u1/recommendations").status_code == 503
        with Workers(settings):
            assert wait_until(lambda: _ready(server.url) == 200, 60)
            assert _state(redis_client, keys, settings) == before  # everything back, nothing twice
            _wipe(redis_client, keys)  # ... and again while the workers run
            assert wait_until(lambda: _state(redis_client, keys, settings) == before
                              and not redis_client.exists(keys.rebuilding()), 60)
            assert wait_until(lambda: _ready(server.url) == 200, 10)
            assert httpx.get(f"{server.url}/v1/users/u1/recommendations").status_code == 200
