"""LoadShedder: past max_in_flight, /v1/ requests get a fast 503 with a reason; others pass."""

import asyncio
import json

from prometheus_client import CollectorRegistry

from learnrec.serving.shedding import LoadShedder


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
        shedder = LoadShedder(app, max_in_flight=2, registry=CollectorRegistry())
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
