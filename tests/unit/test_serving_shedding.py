"""LoadShedder: past max_in_flight, or behind a queue that has not drained for max_queue_ms,
/v1/ requests get a fast 503 with a reason; others pass."""

import asyncio
import json

from prometheus_client import CollectorRegistry

from learnrec.serving import shedding
from learnrec.serving.shedding import QUEUE_FLOOR, LoadShedder


def test_requests_past_the_bound_are_shed_and_the_rest_served():
    release = asyncio.Event()
    served: list[str] = []

    async def app(scope, receive, send):
        if scope["path"].startswith("/v1/"):
            await release.wait()
        served.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(shedder, path):
        sent = []

        async def send(message):
            sent.append(message)

        await shedder({"type": "http", "path": path, "method": "GET"}, None, send)
        return sent

    async def scenario():
        shedder = LoadShedder(app, max_in_flight=2, max_queue_ms=1e6, registry=CollectorRegistry())
        held = [asyncio.create_task(call(shedder, "/v1/users/u/recommendations")) for _ in range(2)]
        await asyncio.sleep(0)
        shed = await call(shedder, "/v1/users/u/recommendations")
        health = await call(shedder, "/readyz")  # never shed
        release.set()
        done = await asyncio.gather(*held)
        after = await call(shedder, "/v1/items/i/similar")  # the slots are free again
        return shedder, shed, health, done, after

    shedder, shed, health, done, after = asyncio.run(scenario())
    assert shed[0]["status"] == 503 and (b"retry-after", b"1") in shed[0]["headers"]
    assert "overloaded" in json.loads(shed[1]["body"])["detail"]
    assert health[0]["status"] == 200 and all(d[0]["status"] == 200 for d in done) and after[0]["status"] == 200
    assert shedder.in_flight == 0 and shedder.shed._value.get() == 1


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_queue_that_has_not_drained_for_max_queue_ms_sheds(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(shedding.time, "perf_counter", clock)
    release = asyncio.Event()

    async def app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def call(shedder):
        sent = []

        async def send(message):
            sent.append(message)

        await shedder({"type": "http", "path": "/v1/users/u/recommendations", "method": "GET"}, None, send)
        return sent[0]["status"]

    async def scenario():
        shedder = LoadShedder(app, max_in_flight=100, max_queue_ms=10, registry=CollectorRegistry())
        slow = asyncio.create_task(call(shedder))  # one slow request alone is no queue
        await asyncio.sleep(0)
        clock.now += 1.0
        burst = [asyncio.create_task(call(shedder)) for _ in range(QUEUE_FLOOR + 5)]  # a young burst: admitted
        await asyncio.sleep(0)
        admitted_burst = shedder.in_flight
        clock.now += 0.005  # not yet 10 ms
        young = asyncio.create_task(call(shedder))
        await asyncio.sleep(0)
        clock.now += 0.006  # now QUEUE_FLOOR of them have waited 11 ms
        refused = await call(shedder)
        release.set()
        statuses = await asyncio.gather(slow, *burst, young)
        return admitted_burst, refused, statuses, shedder

    admitted_burst, refused, statuses, shedder = asyncio.run(scenario())
    assert admitted_burst == QUEUE_FLOOR + 6
    assert refused == 503 and set(statuses) == {200}
    assert shedder.in_flight == 0 and shedder.shed._value.get() == 1
