"""Observers the demo runs beside the system: freshness, model versions, serving calls."""

from __future__ import annotations

import threading
import time

import httpx
import redis

from demo.metrics import DemoMetrics
from shared.redis_keys import RedisKeys


class AnnouncementWatcher(threading.Thread):
    """Tails the item-updates Redis Stream; the first announcement of a published item gives
    its freshness (publish -> vector readable and announced). Also tracks the current version."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, metrics: DemoMetrics) -> None:
        super().__init__(name="announcement-watcher", daemon=True)
        self._redis = client
        self._keys = keys
        self._metrics = metrics
        self._published: dict[str, float] = {}
        self.announced: dict[str, float] = {}  # item_id -> wall time of its first announcement
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.current_version: str | None = None

    def expect(self, item_id: str, published_at: float) -> None:
        with self._lock:
            self._published[item_id] = published_at

    def run(self) -> None:
        last_id = b"0-0"
        next_version_check = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_version_check:
                self._check_version()
                next_version_check = now + 0.5
            reply = self._redis.xread({self._keys.item_updates(): last_id}, count=1000, block=200)
            seen_at = time.time()
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    item_id = fields.get(b"item_id", b"").decode()
                    with self._lock:
                        published = self._published.pop(item_id, None)
                        if item_id not in self.announced:
                            self.announced[item_id] = seen_at
                    if published is not None:
                        self._metrics.add("freshness_ms", (seen_at - published) * 1000.0)

    def _check_version(self) -> None:
        raw = self._redis.get(self._keys.model_current())
        version = raw.decode() if raw else None
        if version and version != self.current_version:
            self.current_version = version
            self._metrics.add("versions", (self._metrics.interactions_published, version))

    def stop(self) -> None:
        self._stop.set()


class ServingClient:
    """Calls the recommendation API and records latency and errors."""

    def __init__(self, base_url: str, metrics: DemoMetrics) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=5.0)
        self._metrics = metrics

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def recommend(self, user_id: str, k: int = 10) -> dict | None:
        started = time.perf_counter()
        try:
            response = self._http.get(f"/v1/users/{user_id}/recommendations", params={"k": k})
        except httpx.HTTPError:
            self._metrics.request_errors += 1
            return None
        self._metrics.add("latency_ms", (time.perf_counter() - started) * 1000.0)
        if response.status_code != 200:
            self._metrics.request_errors += 1
            return None
        return response.json()

    def similar(self, item_id: str, k: int = 10) -> list[str]:
        response = self._http.get(f"/v1/items/{item_id}/similar", params={"k": k})
        return [i["item_id"] for i in response.json()["items"]] if response.status_code == 200 else []

    def close(self) -> None:
        self._http.close()
