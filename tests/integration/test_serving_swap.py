"""Model versions swapped under concurrent load: no failed request, no mixed-version answer.

Version B's towers are version A's negated (user tower ``-I``, item vectors ``-v``), so both
rank items identically; an answer mixing A's user vector with B's item vectors (or the reverse)
would rank the *least* similar items first, which the assertions would catch.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import numpy as np
import pytest

from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions.registry import ModelRegistry
from tests.serving_support import (
    LiveServer,
    export_tiny_version,
    item_vectors,
    put_items,
    unit,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DIM = 8
A, B = "v20260101000000-aaaaaa", "v20260102000000-bbbbbb"


def _load(url: str, stop: threading.Event, outcomes: Counter, bad: list) -> None:
    with httpx.Client(base_url=url, timeout=5.0) as client:
        while not stop.is_set():
            for method, path, body in (
                ("GET", "/v1/users/u1/recommendations?k=5", None),
                ("POST", "/v1/recommendations", {"item_ids": ["c2-0", "c2-1"], "k": 5}),
            ):
                try:
                    response = client.request(method, path, json=body)
                except httpx.HTTPError as err:
                    outcomes["error"] += 1
                    bad.append(repr(err))
                    continue
                outcomes[response.status_code] += 1
                if response.status_code != 200:
                    bad.append(response.text)
                    continue
                answer = response.json()
                outcomes[answer["model_version"]] += 1
                if not all(i["item_id"].startswith("c2-") for i in answer["items"]):
                    bad.append(answer)


def test_no_request_fails_during_version_swaps(settings, redis_client) -> None:
    keys = RedisKeys.from_settings(settings)
    registry = ModelRegistry.from_settings(settings, redis_client)
    rng = np.random.default_rng(0)
    ids = [f"c{c}-{n}" for c in range(4) for n in range(10)]
    content = unit(np.array([np.eye(DIM)[c] * 3 + rng.standard_normal(DIM) * 0.3
                             for c in range(4) for _ in range(10)]))
    weight = np.eye(DIM, dtype=np.float32)
    put_items(redis_client, keys, ids, content,
              {A: item_vectors(weight, content), B: item_vectors(-weight, content)}, notify=False)
    for version, w in ((A, weight), (B, -weight)):
        registry.register(export_tiny_version(settings.versions.model_dir, version, w))
    redis_client.rpush(keys.history("u1"), "c2-0", "c2-1", "c2-2")
    redis_client.set(keys.model_current(), A)

    with LiveServer(settings) as server:
        ready = lambda: httpx.get(f"{server.url}/readyz").json().get("model_version")  # noqa: E731
        wait_until(lambda: ready() == A)
        stop, outcomes, bad = threading.Event(), Counter(), []
        threads = [threading.Thread(target=_load, args=(server.url, stop, outcomes, bad))
                   for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for version in (B, A, B):
                time.sleep(0.7)
                redis_client.set(keys.model_current(), version)
                wait_until(lambda v=version: ready() == v)
            time.sleep(0.7)
        finally:
            stop.set()
            for t in threads:
                t.join()
        holder = server.app.state.service.holder
        assert holder.current.version == B and holder.current.in_flight == 0

    assert not bad, bad[:5]
    assert outcomes[200] > 100 and outcomes[A] > 0 and outcomes[B] > 0, outcomes
    assert set(outcomes) == {200, A, B}, outcomes
