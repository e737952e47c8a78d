"""Load shedding: past what the cores can serve in time, answer 503 at once instead of queueing.

An open-loop load above what the cores can serve otherwise grows the queue without bound: every
request waits behind all earlier ones and, past the client's timeout, all of them fail. A new
recommendation request (path under ``/v1/``) gets ``503`` with ``Retry-After: 1`` and a reason
when

- :data:`QUEUE_FLOOR` requests inside the app have been there longer than ``max_queue_ms``:
  the queue has not drained for that long, so the new one would wait at least as long (the
  bound adapts to what a request costs: fewer fit in the same time on a larger catalogue; one
  slow request, a widely filtered one say, does not count as a queue); or
- ``max_in_flight`` requests are inside the app (a hard cap for a burst).

A burst that arrives together (the requests queued in the socket while the process was
descheduled for a moment) is admitted up to the cap as long as the queue it joins is young; a
load past saturation keeps the queue old and is shed. Health, readiness and metrics are never
shed.

Where the server runs uvicorn with :class:`~learnrec.serving.http_protocol.SheddingHttpProtocol`
(``learnrec serve`` does), a refused request is answered in the turn of the event loop that
read it, not in the next one: the shedder puts itself in the lifespan state (:data:`STATE_KEY`)
for the protocol to ask (:meth:`LoadShedder.refuses`).
"""

from __future__ import annotations

import itertools
import time

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from learnrec.serving.guard import reply

QUEUE_FLOOR = 8  # requests waiting past max_queue_ms that make a queue
STATE_KEY = "learnrec.load_shedder"  # the lifespan state's entry holding the process's shedder


class LoadShedder:
    """ASGI middleware tracking when each ``/v1/`` request in flight came in (one event loop:
    no lock)."""

    def __init__(self, app: ASGIApp, max_in_flight: int, max_queue_ms: float,
                 registry: CollectorRegistry | None = None) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.max_queue_s = max_queue_ms / 1000
        self._admitted: dict[int, float] = {}  # request number -> admission time, oldest first
        self._numbers = itertools.count()
        self.shed = Counter("learnrec_serving_shed_total", "Requests answered 503 because the queue was too long",
                            registry=registry)

    @property
    def in_flight(self) -> int:
        return len(self._admitted)

    def _overloaded(self, now: float) -> str | None:
        """Why a new request would wait too long, or None."""
        if len(self._admitted) >= self.max_in_flight:
            return f"{len(self._admitted)} requests in flight"
        if len(self._admitted) >= QUEUE_FLOOR:
            waited = now - list(self._admitted.values())[QUEUE_FLOOR - 1]  # the QUEUE_FLOOR-th oldest
            if waited > self.max_queue_s:
                return (f"{QUEUE_FLOOR} of {len(self._admitted)} requests in flight have waited over "
                        f"{self.max_queue_s * 1000:.0f} ms")
        return None

    def refuses(self, scope: Scope) -> bool:
        """Whether a request of ``scope`` arriving now would be shed."""
        return _sheddable(scope) and self._overloaded(time.perf_counter()) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and "state" in scope:  # for SheddingHttpProtocol
            scope["state"][STATE_KEY] = self
        if not _sheddable(scope):
            await self.app(scope, receive, send)
            return
        now = time.perf_counter()
        reason = self._overloaded(now)
        if reason is not None:
            self.shed.inc()
            await reply(send, 503, f"overloaded: {reason}; retry shortly", [(b"retry-after", b"1")])
            return
        number = next(self._numbers)
        self._admitted[number] = now
        try:
            await self.app(scope, receive, send)
        finally:
            del self._admitted[number]


def _sheddable(scope: Scope) -> bool:
    """A recommendation request (health, readiness and metrics are never shed)."""
    return scope["type"] == "http" and scope["path"].startswith("/v1/")
