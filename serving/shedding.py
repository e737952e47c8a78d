"""Load shedding: past a bound on requests in flight, answer 503 at once instead of queueing.

An open-loop load above what the cores can serve otherwise grows the queue without bound: every
request waits behind all earlier ones and, past the client's timeout, all of them fail. With at
most ``max_in_flight`` recommendation requests (paths under ``/v1/``) inside the app, the
accepted ones keep their latency and the rest get ``503`` with ``Retry-After: 1`` and a reason,
in well under a millisecond. Health, readiness and metrics are never shed.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from learnrec.serving.guard import reply


class LoadShedder:
    """ASGI middleware counting the ``/v1/`` requests in flight (one event loop: no lock)."""

    def __init__(self, app: ASGIApp, max_in_flight: int, registry: CollectorRegistry | None = None) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.shed = Counter("learnrec_serving_shed_total", "Requests answered 503 because too many were in flight",
                            registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.shed.inc()
            await reply(send, 503, f"overloaded: {self.in_flight} requests in flight; retry shortly",
                        [(b"retry-after", b"1")])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
