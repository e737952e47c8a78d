"""API keys and the body cap in front of a tiny app (the guard alone, no Redis)."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Body, FastAPI
from fastapi.testclient import TestClient

from learnrec.serving.guard import RequestGuard, key_is_valid, parse_keys


def _client(keys: str = "k-old, k-new", metrics_open: bool = True, cap: int = 100) -> TestClient:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics() -> dict:
        return {}

    @app.get("/v1/things")
    def things() -> dict:
        return {"things": []}

    @app.post("/v1/echo")
    def echo(payload: Annotated[dict, Body()]) -> dict:
        return payload

    app.add_middleware(RequestGuard, keys=parse_keys(keys), max_body_bytes=cap, metrics_open=metrics_open)
    return TestClient(app)


def test_without_a_valid_key_the_api_answers_401_and_open_paths_stay_open():
    client = _client()
    assert client.get("/v1/things").status_code == 401
    assert client.get("/v1/things", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/v1/things", headers={"Authorization": "Basic k-old"}).status_code == 401
    denied = client.get("/v1/things", headers={"Authorization": "Bearer k-ol"})
    assert denied.status_code == 401 and "API key" in denied.json()["detail"]
    assert client.get("/v1/things", headers={"Authorization": "Bearer k-old"}).status_code == 200
    assert client.get("/v1/things", headers={"X-API-Key": "k-new"}).status_code == 200  # several keys
    assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200
    assert _client(metrics_open=False).get("/metrics").status_code == 401


def test_no_keys_configured_means_no_authentication():
    assert _client(keys="").get("/v1/things").status_code == 200
    assert parse_keys(" , ") == [] and not key_is_valid(b"", [])


def test_a_body_over_the_cap_gets_413_before_it_is_parsed():
    client = _client(keys="")
    assert client.post("/v1/echo", json={"a": 1}).json() == {"a": 1}
    big = client.post("/v1/echo", content=b'{"a": "' + b"x" * 200 + b'"}', headers={"content-type": "application/json"})
    assert big.status_code == 413 and "limit is 100" in big.json()["detail"]

    def chunks():  # no Content-Length: the cap applies while the body streams in
        for _ in range(10):
            yield b"x" * 30

    streamed = client.post("/v1/echo", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


@pytest.mark.parametrize("presented", [b"k-old", b"k-new"])
def test_every_configured_key_is_compared(presented):
    assert key_is_valid(presented, parse_keys("k-old,k-new"))
