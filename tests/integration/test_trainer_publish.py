"""The trainer's published versions are picked up by the stream and by serving without a
restart, and ``rollback`` returns to an earlier one.

Real broker, real Redis, real stream workers and a real HTTP server (threads); the content
encoder is a seeded stand-in. The trainer runs in-process until it has been idle for a while.
"""

from __future__ import annotations

import threading

import httpx
import pytest
import torch

from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.stream.workers import build_history_worker, build_item_worker
from learnrec.trainer.worker import run
from learnrec.versions.registry import ModelRegistry
from tests.serving_support import LiveServer, wait_until
from tests.stream_helpers import HashEncoder, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_ITEMS = 40


def _trainer_settings(settings, tmp_path, **extra):
    return settings.replace(
        trainer_checkpoint=tmp_path / "trainer" / "online.ckpt",
        trainer_batch_size=32,
        trainer_publish_every_events=150,
        trainer_threads=1,
        trainer_keep_versions=2,
        trainer_gate_events=0,  # no gate here: every candidate is published
        **extra,
    )


def _clicks(n: int, start: int = 0) -> list[InteractionEvent]:
    return [InteractionEvent(event_id=f"e{k}", user_id=f"u{k % 23}", item_id=f"i{(k * 3) % N_ITEMS}")
            for k in range(start, start + n)]


@pytest.fixture
def stream(settings, redis_client):
    """Item encoder + history updater in threads, with every item encoded."""
    ensure_topics(settings)
    workers = [build_item_worker(settings, HashEncoder(16)), build_history_worker(settings)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    produce(settings, [ItemEvent(item_id=f"i{n}", title=f"item {n}") for n in range(N_ITEMS)])
    keys = RedisKeys.from_settings(settings)
    wait_until(lambda: redis_client.scard(keys.items()) == N_ITEMS, timeout=60, every=0.05)
    try:
        yield
    finally:
        for worker in workers:
            worker.stop_event.set()
        for thread in threads:
            thread.join(timeout=15)


def test_published_version_is_picked_up_by_stream_and_serving(stream, settings, redis_client, tmp_path):
    torch.set_num_threads(1)
    registry = ModelRegistry.from_settings(settings, redis_client)
    keys = RedisKeys.from_settings(settings)
    bootstrap = registry.current()
    with LiveServer(settings) as server:
        wait_until(lambda: httpx.get(f"{server.url}/readyz").json().get("items") == N_ITEMS, timeout=30)
        produce(settings, _clicks(300))
        loop = run(_trainer_settings(settings, tmp_path), max_idle_s=2.0)
        assert loop.trainer.trained == 300 and loop.published
        latest = loop.published[-1]
        assert registry.current() == latest != bootstrap
        assert redis_client.hlen(keys.vectors(latest)) == N_ITEMS

        # serving swaps to the new version on its own
        ready = wait_until(lambda: (r := httpx.get(f"{server.url}/readyz").json()).get("model_version") == latest and r, timeout=10)
        assert ready["items"] == N_ITEMS
        answer = httpx.get(f"{server.url}/v1/users/u1/recommendations", params={"k": 5}).json()
        assert answer["model_version"] == latest and len(answer["items"]) == 5

        # the running item encoder projects a new item with the new version's tower
        produce(settings, [ItemEvent(item_id="fresh", title="a brand new item")])
        wait_until(lambda: redis_client.hexists(keys.vectors(latest), "fresh"), timeout=30)
        wait_until(lambda: httpx.get(f"{server.url}/readyz").json().get("items") == N_ITEMS + 1, timeout=10)


def test_rollback_returns_to_the_earlier_version_and_prune_keeps_the_newest(stream, settings, redis_client, tmp_path):
    torch.set_num_threads(1)
    registry = ModelRegistry.from_settings(settings, redis_client)
    keys = RedisKeys.from_settings(settings)
    published = []
    for round_ in range(3):  # each run resumes from the previous run's checkpoint
        produce(settings, _clicks(150, start=150 * round_))
        loop = run(_trainer_settings(settings, tmp_path), max_idle_s=1.5)
        published += loop.published
    assert loop.trainer.trained == 450
    first, second, third = published
    # keep=2: the oldest trainer version is gone (vectors, metadata, folder); the bootstrap too
    assert registry.versions() == [second, third]
    assert not redis_client.exists(keys.vectors(first)) and not (settings.versions.model_dir / first).exists()

    produce(settings, [ItemEvent(item_id="late", title="arrived after the second version")])
    wait_until(lambda: redis_client.hexists(keys.vectors(third), "late"), timeout=30)
    assert registry.rollback() == second
    assert registry.current() == second
    # rolling back re-projects: the item that arrived later has a vector under it too
    assert redis_client.hlen(keys.vectors(second)) == N_ITEMS + 1


def test_a_new_items_first_clicks_move_its_served_vector(stream, settings, redis_client, tmp_path):
    """A new item is servable at once with its content alone; once the trainer has trained on
    its first clicks (through Kafka), the next version gives it an ID row and its served vector
    is no longer the content-only one."""
    import numpy as np

    torch.set_num_threads(1)
    registry = ModelRegistry.from_settings(settings, redis_client)
    keys = RedisKeys.from_settings(settings)
    trainer_settings = _trainer_settings(settings, tmp_path, trainer_warmup_steps=0)  # a trainer past its warm-up
    produce(settings, _clicks(150))
    first = run(trainer_settings, max_idle_s=1.5).published[-1]

    produce(settings, [ItemEvent(item_id="fresh", title="a brand new item")])
    wait_until(lambda: redis_client.hexists(keys.vectors(first), "fresh"), timeout=30)
    before = np.frombuffer(redis_client.hget(keys.vectors(first), "fresh"), np.float32)
    content = np.frombuffer(redis_client.hget(keys.item("fresh"), "content"), np.float32)[None]
    assert np.allclose(before, registry.load_version(first).item_vectors(content, [""])[0], atol=1e-5)

    produce(settings, [InteractionEvent(event_id=f"f{k}", user_id=f"u{k % 7}", item_id="fresh") for k in range(20)]
            + _clicks(130, start=150))
    loop = run(trainer_settings, max_idle_s=1.5)
    assert "fresh" in loop.trainer.ids
    later = loop.published[-1]
    served = registry.load_version(later)
    assert "fresh" in served.id_rows
    after = np.frombuffer(redis_client.hget(keys.vectors(later), "fresh"), np.float32)
    content_only = served.item_vectors(content, [""])[0]
    assert np.allclose(after, served.item_vectors(content, ["fresh"])[0], atol=1e-5)
    assert np.abs(after - content_only).max() > 1e-3  # its ID row moved it
