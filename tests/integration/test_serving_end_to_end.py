"""End to end on the real broker, the real stream workers and a real server.

Events go to Kafka; the item encoder and history updater workers (run in threads, with the
bootstrap model version they publish) write Redis; the API answers over HTTP. The content
encoder is a bag-of-words stand-in (titles sharing words get similar embeddings), so the
expected answers are known; everything after the encoder is the production code.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.shared.topics import ITEMS
from learnrec.stream.workers import build_history_worker, build_item_worker
from learnrec.testing import BagOfWordsEncoder
from tests.serving_support import LiveServer, wait_until
from tests.stream_helpers import produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LENSES = ["alpha", "beta", "gamma", "delta"]
BAGS = ["red", "blue", "green"]
HOSES = ["one", "two", "three", "four", "five", "six"]


def _items() -> list[ItemEvent]:
    return (
        [ItemEvent(item_id=f"lens-{w}", title=f"camera lens {w}") for w in LENSES[:3]]
        + [ItemEvent(item_id=f"bag-{w}", title=f"camera bag {w}") for w in BAGS]
        + [ItemEvent(item_id=f"hose-{w}", title=f"garden hose {w}") for w in HOSES]
    )


def _click(user: str, item: str) -> InteractionEvent:
    return InteractionEvent(event_id=f"{user}-{item}-{time.time_ns()}", user_id=user, item_id=item)


@pytest.fixture
def running(settings, redis_client):
    """Workers in threads and a live server; yields the server's URL once it serves the items."""
    ensure_topics(settings)
    workers = [build_item_worker(settings, BagOfWordsEncoder()), build_history_worker(settings)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    produce(settings, _items())
    try:
        with LiveServer(settings) as server:
            wait_until(
                lambda: httpx.get(f"{server.url}/readyz").json().get("items") == len(_items()),
                timeout=60, every=0.1,
            )
            yield server.url
    finally:
        for worker in workers:
            worker.stop_event.set()
        for thread in threads:
            thread.join(timeout=15)


def _answer(url: str, user: str, k: int = 5) -> list[str]:
    body = httpx.get(f"{url}/v1/users/{user}/recommendations", params={"k": k}).json()
    return [item["item_id"] for item in body["items"]]


def _history_length(redis_client, keys: RedisKeys, user: str) -> int:
    return redis_client.llen(keys.history(user))


def test_new_item_is_recommended_within_two_seconds(running, settings, redis_client) -> None:
    keys = RedisKeys.from_settings(settings)
    produce(settings, [_click("u1", f"lens-{w}") for w in LENSES[:3]])
    wait_until(lambda: _history_length(redis_client, keys, "u1") == 3, timeout=30, every=0.05)
    assert "lens-delta" not in _answer(running, "u1")

    produce(settings, [ItemEvent(item_id="lens-delta", title="camera lens delta")])
    published = time.monotonic()
    wait_until(lambda: "lens-delta" in _answer(running, "u1", k=3), timeout=10, every=0.02)
    elapsed = time.monotonic() - published
    assert elapsed < 2.0, f"the new item was recommended after {elapsed:.2f} s"
    assert _answer(running, "u1", k=1) == ["lens-delta"]


def test_a_click_changes_the_next_answer(running, settings, redis_client) -> None:
    keys = RedisKeys.from_settings(settings)
    produce(settings, [_click("u2", f"lens-{w}") for w in LENSES[:3]])
    wait_until(lambda: _history_length(redis_client, keys, "u2") == 3, timeout=30, every=0.05)
    before = _answer(running, "u2", k=10)

    produce(settings, [_click("u2", "hose-one")])
    wait_until(lambda: _history_length(redis_client, keys, "u2") == 4, timeout=10, every=0.01)
    after = _answer(running, "u2", k=10)

    assert after != before and "hose-one" not in after
    first_hose = lambda answer: min(answer.index(i) for i in answer if i.startswith("hose-"))  # noqa: E731
    assert first_hose(after) < first_hose(before), (before, after)


def _similar(url: str, item: str, k: int = 12) -> list[str] | None:
    """The similar items, or None when the item is unknown (404)."""
    reply = httpx.get(f"{url}/v1/items/{item}/similar", params={"k": k})
    return None if reply.status_code == 404 else [i["item_id"] for i in reply.json()["items"]]


def _served_anywhere(urls: list[str], item: str) -> bool:
    """Whether any endpoint of any server still returns ``item``: a user's, a new user's
    (popular items), the similar items of a neighbour, its own similar items."""
    for url in urls:
        if item in _answer(url, "u5", k=12) or item in _answer(url, "nobody-yet", k=12):
            return True
        if item in (_similar(url, "lens-alpha") or []) or _similar(url, item) is not None:
            return True
    return False


def test_a_tombstone_takes_an_item_out_of_every_server_within_a_second(running, settings, redis_client) -> None:
    keys = RedisKeys.from_settings(settings)
    produce(settings, [_click("u5", "lens-alpha"), _click("u5", "lens-beta")]
            + [_click(f"fan{n}", "lens-gamma") for n in range(3)])
    wait_until(lambda: _history_length(redis_client, keys, "u5") == 2, timeout=30, every=0.05)
    with LiveServer(settings) as second:
        urls = [running, second.url]
        wait_until(lambda: httpx.get(f"{second.url}/readyz").json().get("items") == len(_items()), timeout=60)
        # recommended everywhere: to u5, among the popular items, next to its sibling, and itself
        wait_until(lambda: all(_answer(u, "nobody-yet", k=1) == ["lens-gamma"] for u in urls), timeout=30)
        assert all("lens-gamma" in _answer(u, "u5", k=2) and "lens-gamma" in _similar(u, "lens-alpha", k=2)
                   for u in urls)

        produce(settings, [], raw=[(ITEMS, b"lens-gamma", None)])
        removed = time.monotonic()
        wait_until(lambda: not _served_anywhere(urls, "lens-gamma"), timeout=10, every=0.01)
        elapsed = time.monotonic() - removed
        assert elapsed < 1.0, f"the removed item was still served {elapsed:.2f} s after its tombstone"
        assert not redis_client.exists(keys.item("lens-gamma"))
        assert not redis_client.sismember(keys.items(), "lens-gamma")

        # unavailable for a while: kept in Redis, served nowhere, back when available again
        produce(settings, [ItemEvent(item_id="lens-beta", title="camera lens beta", available=False)])
        wait_until(lambda: not _served_anywhere(urls, "lens-beta"), timeout=10, every=0.01)
        assert redis_client.hget(keys.item("lens-beta"), "title") == b"camera lens beta"
        produce(settings, [ItemEvent(item_id="lens-beta", title="camera lens beta")])
        wait_until(lambda: all("lens-beta" in (_similar(u, "lens-alpha", k=2) or []) for u in urls), timeout=10)
