"""RecommendationsClient and AsyncRecommendationsClient against httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from learnrec.client import (
    AsyncRecommendationsClient,
    BadRequest,
    ClientError,
    NotFound,
    Recommendations,
    RecommendationsClient,
    ScoredItem,
    Unauthorized,
    Unavailable,
)
from learnrec.client._calls import MAX_RETRY_AFTER_S, retry_delay

ANSWER = {"model_version": "v7", "source": "personal", "unknown_item_ids": ["zz"],
          "items": [{"item_id": "a", "score": 0.9}, {"item_id": "b/c", "score": 0.5}]}


class Server:
    """Answers with ``replies`` in turn (the last one repeats) and records every request."""

    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies) or [httpx.Response(200, json=ANSWER)]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


def client(server: Server, **options) -> RecommendationsClient:
    options = {"backoff_s": 0.001, **options}
    return RecommendationsClient("http://api.test/base", transport=httpx.MockTransport(server), **options)


def test_for_user_quotes_the_path_and_sends_the_filters():
    server = Server()
    with client(server, api_key="s3cret") as api:
        answer = api.for_user("u/1?#%", 5, exclude_seen=False, exclude=["x/y", "z"],
                              category="Tools & more", attributes={"unit": "mm=cm"})
    request = server.requests[0]
    assert request.method == "GET"
    assert request.url.raw_path.split(b"?")[0] == b"/base/v1/users/u%2F1%3F%23%25/recommendations"
    assert request.url.params.multi_items() == [
        ("k", "5"), ("exclude_seen", "false"), ("exclude", "x/y"), ("exclude", "z"),
        ("category", "Tools & more"), ("attribute", "unit=mm=cm")]
    assert request.headers["authorization"] == "Bearer s3cret"
    assert answer == Recommendations(model_version="v7", source="personal", unknown_item_ids=["zz"],
                                     items=[ScoredItem(item_id="a", score=0.9),
                                            ScoredItem(item_id="b/c", score=0.5)])
    assert answer.item_ids == ["a", "b/c"]


def test_for_session_posts_the_body():
    server = Server()
    with client(server) as api:
        api.for_session(["i1", "i2"], 3, exclude=("i9",), category="Tools", attributes={"a": "b"})
    request = server.requests[0]
    assert (request.method, request.url.path) == ("POST", "/base/v1/recommendations")
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "item_ids": ["i1", "i2"], "k": 3, "exclude_seen": True, "exclude_item_ids": ["i9"],
        "category": "Tools", "attributes": {"a": "b"}}


def test_similar_quotes_the_item_id():
    server = Server()
    with client(server) as api:
        api.similar("a b/c", exclude=["d"])
    assert server.requests[0].url.raw_path == b"/base/v1/items/a%20b%2Fc/similar?k=10&exclude=d"


def test_a_string_where_ids_are_expected_is_refused():
    with client(Server()) as api, pytest.raises(TypeError, match="item_ids"):
        api.for_session("i1")


def test_503_is_retried_with_backoff_then_succeeds():
    server = Server(httpx.Response(503, json={"detail": "overloaded"}),
                    httpx.Response(503, json={"detail": "overloaded"}, headers={"Retry-After": "0"}),
                    httpx.ConnectError("refused"),
                    httpx.Response(200, json=ANSWER))
    started = time.monotonic()
    with client(server, retries=3, backoff_s=0.02) as api:
        assert api.similar("a").model_version == "v7"
    assert len(server.requests) == 4
    assert time.monotonic() - started >= 0.02 + 0 + 0.08  # backoff, Retry-After: 0, backoff x 4


def test_the_retries_run_out_as_unavailable():
    server = Server(httpx.Response(503, json={"detail": "no model version loaded"}))
    with client(server, retries=2) as api, pytest.raises(Unavailable, match="no model version") as raised:
        api.for_user("u1")
    assert len(server.requests) == 3 and raised.value.status == 503


def test_a_transport_failure_after_the_retries_is_unavailable_with_its_cause():
    server = Server(httpx.ReadTimeout("slow"))
    with client(server, retries=1) as api, pytest.raises(Unavailable) as raised:
        api.for_user("u1")
    assert len(server.requests) == 2
    assert raised.value.status is None and isinstance(raised.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize(
    ("status", "error"),
    [(422, BadRequest), (400, BadRequest), (413, BadRequest), (404, NotFound),
     (401, Unauthorized), (403, Unauthorized), (500, ClientError)],
)
def test_other_errors_are_never_retried(status, error):
    server = Server(httpx.Response(status, json={"detail": "k: must be at most 1000"}))
    with client(server) as api, pytest.raises(error, match="k: must be at most 1000") as raised:
        api.for_user("u1", k=5000)
    assert type(raised.value) is error and raised.value.status == status
    assert raised.value.detail == "k: must be at most 1000"
    assert len(server.requests) == 1


def test_a_detail_that_is_not_json_is_kept_as_text():
    with client(Server(httpx.Response(404, text="no such path"))) as api:
        with pytest.raises(NotFound, match="no such path"):
            api.similar("x")


def test_an_unexpected_answer_is_a_client_error():
    with client(Server(httpx.Response(200, json={"items": "nope"}))) as api:
        with pytest.raises(ClientError, match="unexpected answer"):
            api.for_user("u1")


def test_readiness_returns_the_body_for_200_and_503_without_retrying():
    ready = {"ready": True, "model_version": "v1", "items": 12}
    server = Server(httpx.Response(503, json={"ready": False, "detail": "no model version loaded"}),
                    httpx.Response(200, json=ready))
    with client(server) as api:
        assert api.readiness() == {"ready": False, "detail": "no model version loaded"}
        assert len(server.requests) == 1
        assert api.readiness() == ready
        assert api.is_ready()
    assert server.requests[0].url.path == "/base/readyz"


def test_is_ready_is_false_when_nothing_answers():
    server = Server(httpx.ConnectError("refused"))
    with client(server) as api:
        assert api.is_ready() is False
    assert len(server.requests) == 1


def test_retry_delay_doubles_and_honours_retry_after_up_to_a_cap():
    assert [retry_delay(n, 0.1, None) for n in range(3)] == [0.1, 0.2, 0.4]
    assert retry_delay(0, 0.1, httpx.Response(503, headers={"Retry-After": "2"})) == 2.0
    assert retry_delay(0, 0.1, httpx.Response(503, headers={"Retry-After": "60"})) == MAX_RETRY_AFTER_S
    date = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_delay(1, 0.1, date) == 0.2


def test_the_async_client_does_the_same():
    server = Server(httpx.Response(503, json={"detail": "overloaded"}), httpx.Response(200, json=ANSWER))

    async def scenario():
        async with AsyncRecommendationsClient("http://api.test", api_key="k", backoff_s=0.001,
                                              transport=httpx.MockTransport(server)) as api:
            answer = await api.for_session(["i/1"], 2)
            similar = await api.similar("i/1")
            user = await api.for_user("u 1", exclude=["x"])
            server.replies = [httpx.Response(422, json={"detail": "bad"})]
            with pytest.raises(BadRequest, match="bad"):
                await api.for_user("u1")
            server.replies = [httpx.Response(503, json={"ready": False, "detail": "loading"})]
            return answer, similar, user, await api.readiness(), await api.is_ready()

    answer, similar, user, readiness, ready = asyncio.run(scenario())
    assert answer.item_ids == ["a", "b/c"] and similar == user == answer
    assert readiness == {"ready": False, "detail": "loading"} and ready is False
    paths = [r.url.raw_path for r in server.requests]
    assert paths[:5] == [b"/v1/recommendations", b"/v1/recommendations",
                         b"/v1/items/i%2F1/similar?k=10",
                         b"/v1/users/u%201/recommendations?k=10&exclude_seen=true&exclude=x",
                         b"/v1/users/u1/recommendations?k=10&exclude_seen=true"]
    assert all(r.headers["authorization"] == "Bearer k" for r in server.requests)
