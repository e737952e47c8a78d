"""Prometheus metrics of the serving process, on a registry of its own (one per app)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from learnrec.serving.content_cache import ContentCache
from learnrec.serving.versions import VersionHolder

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class ServingMetrics:
    """Request counts and latencies, answers by source, version swaps, index and cache sizes."""

    def __init__(self, holder: VersionHolder, cache: ContentCache) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "learnrec_http_requests_total", "HTTP requests", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "learnrec_http_request_seconds", "HTTP request latency", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.answers = Counter(
            "learnrec_recommendations_total", "Answers by source", ["source"], registry=r
        )
        self.model_batch = Histogram(
            "learnrec_model_batch_size", "Requests per batch of the user tower (serving/model_step.py)",
            buckets=(1, 2, 4, 8, 16, 32), registry=r,
        )
        self.swaps = Counter("learnrec_model_swaps_total", "Model versions swapped in", registry=r)
        self.version = Gauge(
            "learnrec_model_version_info", "The model version serving (value 1)", ["version"],
            registry=r,
        )
        Gauge("learnrec_index_items", "Items in the serving index", registry=r).set_function(
            lambda: len(holder.current.index) if holder.current else 0
        )
        Gauge("learnrec_content_cache_items", "Cached content embeddings", registry=r).set_function(
            lambda: len(cache)
        )
        Gauge("learnrec_content_cache_hits", "Content cache hits so far", registry=r).set_function(
            lambda: cache.hits
        )
        Gauge("learnrec_content_cache_misses", "Content cache misses so far", registry=r).set_function(
            lambda: cache.misses
        )

    def version_swapped(self, version: str) -> None:
        self.swaps.inc()
        self.version.clear()
        self.version.labels(version).set(1)


class MetricsMiddleware:
    """ASGI middleware timing every HTTP request, labelled by route template and status."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(name, str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - started)
