"""The serving API against a real Redis and a real (tiny) ONNX model version."""

from __future__ import annotations

import json
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient

from learnrec.serving.api import create_app
from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions.registry import ModelRegistry
from tests.serving_support import export_tiny_version, item_vectors, put_items, unit, wait_until

pytestmark = pytest.mark.integration

DIM = 8
VERSION = "v20260101000000-aaaaaa"


@pytest.fixture
def catalogue(settings, redis_client):
    """40 items in 4 clusters along the first 4 axes; item ``c{c}-{n}`` is in cluster c."""
    rng = np.random.default_rng(0)
    ids, rows = [], []
    for c in range(4):
        for n in range(10):
            ids.append(f"c{c}-{n}")
            rows.append(np.eye(DIM)[c] * 3 + rng.standard_normal(DIM) * 0.3)
    content = unit(np.array(rows))
    weight = np.eye(DIM, dtype=np.float32)
    keys = RedisKeys.from_settings(settings)
    put_items(redis_client, keys, ids, content, {VERSION: item_vectors(weight, content)}, notify=False)
    ModelRegistry.from_settings(settings, redis_client).register(
        export_tiny_version(settings.versions.model_dir, VERSION, weight)
    )
    return keys, ids, content


@pytest.fixture
def client(settings, catalogue, redis_client):
    keys = catalogue[0]
    with TestClient(create_app(settings)) as test_client:
        assert test_client.get("/readyz").status_code == 503
        redis_client.set(keys.model_current(), VERSION)
        wait_until(lambda: test_client.get("/readyz").status_code == 200)
        yield test_client


def test_not_ready_until_a_version_is_loaded(settings, redis_client) -> None:
    with TestClient(create_app(settings)) as test_client:
        assert test_client.get("/healthz").json() == {"status": "ok"}
        response = test_client.get("/v1/users/u1/recommendations")
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "no model version" in response.json()["detail"]
        assert test_client.get("/readyz").json()["ready"] is False


def test_readyz_reports_the_version(client) -> None:
    body = client.get("/readyz").json()
    assert body == {"ready": True, "model_version": VERSION, "items": 40}


def test_user_recommendations_follow_the_history(client, catalogue, redis_client) -> None:
    keys = catalogue[0]
    redis_client.rpush(keys.history("u1"), "c2-0", "c2-1", "c2-2")
    body = client.get("/v1/users/u1/recommendations", params={"k": 5}).json()
    assert body["source"] == "personal" and body["model_version"] == VERSION
    got = [item["item_id"] for item in body["items"]]
    assert len(got) == 5 and all(i.startswith("c2-") for i in got)
    assert not {"c2-0", "c2-1", "c2-2"} & set(got)
    with_seen = client.get("/v1/users/u1/recommendations?k=10&exclude_seen=false").json()
    assert {"c2-0", "c2-1", "c2-2"} <= {item["item_id"] for item in with_seen["items"]}
    scores = [item["score"] for item in with_seen["items"]]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 1.0 + 1e-5


def test_a_click_changes_the_next_answer(client, catalogue, redis_client) -> None:
    keys = catalogue[0]
    redis_client.rpush(keys.history("u2"), "c1-0")
    first = client.get("/v1/users/u2/recommendations?k=3").json()["items"]
    redis_client.rpush(keys.history("u2"), "c3-0", "c3-1", "c3-2", "c3-3")
    second = client.get("/v1/users/u2/recommendations?k=3").json()["items"]
    assert all(i["item_id"].startswith("c1-") for i in first)
    assert all(i["item_id"].startswith("c3-") for i in second)


def test_users_without_history_get_popular_items(client, catalogue, redis_client, settings) -> None:
    keys = catalogue[0]
    service = client.app.state.service
    bucket = int(__import__("time").time() // settings.stream.popularity_bucket_s)
    redis_client.zadd(keys.popular(bucket), {"c0-3": 5, "c1-4": 9})
    redis_client.zadd(keys.popular(bucket - 1), {"c0-3": 7})
    service.popular.refresh()
    body = client.get("/v1/users/nobody/recommendations").json()
    assert body["source"] == "popular"
    assert [(i["item_id"], i["score"]) for i in body["items"]] == [("c0-3", 12.0), ("c1-4", 9.0)]


def test_session_recommendations_report_unknown_ids(client) -> None:
    body = client.post(
        "/v1/recommendations", json={"item_ids": ["c0-1", "nope", "c0-2", "nope"], "k": 4}
    ).json()
    assert body["unknown_item_ids"] == ["nope"] and body["source"] == "personal"
    assert [i["item_id"][:3] for i in body["items"]] == ["c0-"] * 4
    assert not {"c0-1", "c0-2"} & {i["item_id"] for i in body["items"]}


def test_session_with_only_unknown_ids_is_422(client) -> None:
    response = client.post("/v1/recommendations", json={"item_ids": ["x", "y"]})
    assert response.status_code == 422
    assert "none of the item ids is known" in response.json()["detail"]


def test_similar_items(client) -> None:
    body = client.get("/v1/items/c3-5/similar?k=5").json()
    got = [i["item_id"] for i in body["items"]]
    assert len(got) == 5 and "c3-5" not in got and all(i.startswith("c3-") for i in got)
    response = client.get("/v1/items/missing/similar")
    assert response.status_code == 404 and "missing" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "url", "body", "where"),
    [
        ("get", "/v1/users/u1/recommendations?k=0", None, "query.k"),
        ("get", "/v1/users/u1/recommendations?k=1001", None, "query.k"),
        ("get", "/v1/users/u1/recommendations?k=ten", None, "query.k"),
        ("get", "/v1/users/" + "u" * 129 + "/recommendations", None, "path.user_id"),
        ("get", "/v1/items/c0-1/similar?k=5000", None, "query.k"),
        ("post", "/v1/recommendations", {"item_ids": []}, "body.item_ids"),
        ("post", "/v1/recommendations", {"item_ids": ["a"] * 501}, "body.item_ids"),
        ("post", "/v1/recommendations", {"item_ids": ["a b"]}, "body.item_ids.0"),
        ("post", "/v1/recommendations", {"item_ids": ["a"], "k": 1001}, "body.k"),
        ("post", "/v1/recommendations", {"items": ["a"]}, "body.item_ids"),
    ],
)
def test_input_limits_are_422_saying_what_is_wrong(client, method, url, body, where) -> None:
    response = client.request(method, url, json=body)
    assert response.status_code == 422
    payload = response.json()
    assert where in [p["where"] for p in payload["problems"]]
    assert where in payload["detail"]


def test_new_items_from_the_stream_are_searchable(client, catalogue, redis_client, settings) -> None:
    keys = catalogue[0]
    content = unit(np.eye(DIM)[5][None] + 0.01)
    put_items(redis_client, keys, ["fresh"], content, {VERSION: content})
    wait_until(lambda: client.get("/readyz").json()["items"] == 41, timeout=3)
    body = client.post("/v1/recommendations", json={"item_ids": ["fresh"], "exclude_seen": False})
    assert body.json()["items"][0]["item_id"] == "fresh"


def test_ids_with_slashes_and_url_characters_route(client, catalogue, redis_client, settings) -> None:
    keys = catalogue[0]
    odd = ["a/b", "c?d#e", "50%/x"]
    content = unit(np.eye(DIM)[0][None].repeat(3, 0) * 3 + np.arange(3)[:, None] * 0.01)
    put_items(redis_client, keys, odd, content, {VERSION: content})
    wait_until(lambda: client.get("/readyz").json()["items"] == 43, timeout=3)
    for item_id in odd:
        quoted = quote(item_id, safe="")
        assert client.get(f"/v1/items/{quoted}/similar", params={"k": 3}).status_code == 200
        redis_client.rpush(keys.history("user/1"), item_id)
    answer = client.get(f"/v1/users/{quote('user/1', safe='')}/recommendations", params={"k": 5})
    assert answer.status_code == 200 and answer.json()["source"] == "personal"
    assert not set(odd) & set(_ids(answer))  # seen items are excluded: the history was read


def test_metrics_and_docs(client) -> None:
    client.get("/v1/items/c0-1/similar")
    text = client.get("/metrics").text
    assert 'learnrec_http_requests_total{route="/v1/items/{item_id:path}/similar",status="200"}' in text
    assert "learnrec_index_items 40.0" in text
    assert f'learnrec_model_version_info{{version="{VERSION}"}} 1.0' in text
    assert "/v1/recommendations" in client.get("/openapi.json").json()["paths"]


def _with_facts(redis_client, keys: RedisKeys, ids: list[str]) -> None:
    """Item ``c{c}-{n}``: category even/odd by n; attribute colour red for n < 3, else blue."""
    for item_id in ids:
        n = int(item_id.split("-")[1])
        redis_client.hset(keys.item(item_id), mapping={
            "category": "even" if n % 2 == 0 else "odd",
            "attributes": json.dumps({"colour": "red" if n < 3 else "blue", "size": str(n)}),
        })


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def test_filters_on_every_endpoint(client, catalogue, redis_client) -> None:
    keys, ids, _ = catalogue
    _with_facts(redis_client, keys, ids)
    redis_client.rpush(keys.history("u9"), "c2-0", "c2-1")
    number = lambda item_id: int(item_id.split("-")[1])  # noqa: E731
    user = "/v1/users/u9/recommendations"

    got = _ids(client.get(user, params={"k": 5, "exclude": ["c2-2", "c2-3"]}))
    assert len(got) == 5 and all(i.startswith("c2-") for i in got) and not {"c2-2", "c2-3"} & set(got)
    # the nearest items are half odd: k is still filled, from the other clusters too
    got = _ids(client.get(user, params={"k": 12, "category": "odd"}))
    assert len(got) == 12 and all(number(i) % 2 for i in got)
    assert sorted(got[:4]) == ["c2-3", "c2-5", "c2-7", "c2-9"]
    got = _ids(client.get(user, params={"k": 20, "attribute": ["colour=red"]}))
    assert len(got) == 10 and all(number(i) < 3 for i in got) and got[0] == "c2-2"  # 12 red, 2 seen
    got = _ids(client.get(user, params={"k": 20, "category": "even", "attribute": ["colour=red", "size=2"]}))
    assert sorted(got) == ["c0-2", "c1-2", "c2-2", "c3-2"]

    body = {"item_ids": ["c1-0"], "k": 20, "exclude_item_ids": ["c1-1"], "category": "odd",
            "attributes": {"colour": "red"}}
    got = _ids(client.post("/v1/recommendations", json=body))
    assert sorted(got) == ["c0-1", "c2-1", "c3-1"]

    got = _ids(client.get("/v1/items/c3-0/similar", params={"k": 20, "exclude": ["c3-4"], "category": "even"}))
    assert len(got) == 18 and all(number(i) % 2 == 0 for i in got) and not {"c3-0", "c3-4"} & set(got)
    got = _ids(client.get("/v1/items/c3-0/similar", params={"k": 3, "attribute": ["colour=blue"]}))
    assert len(got) == 3 and all(i.startswith("c3-") and number(i) >= 3 for i in got)

    bad = client.get(user, params={"attribute": ["colour"]})
    assert bad.status_code == 422 and "query.attribute" in bad.json()["detail"] and "^[^=]+=" in bad.json()["detail"]
    assert _ids(client.get(user, params={"k": 5, "category": "none-such"})) == []
