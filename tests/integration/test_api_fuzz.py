"""The API fuzz (bench/api_fuzz.py) in small: schema-valid and schema-violating requests from
the OpenAPI schema against a live server with a published model: no 5xx, every 4xx says why."""

import pytest

from bench.api_fuzz import fuzz, seed_catalogue
from tests.serving_support import LiveServer, wait_until

pytestmark = pytest.mark.integration


def test_no_request_from_the_schema_gets_a_server_error(settings, redis_client) -> None:
    seed_catalogue(settings, n_items=60, n_users=5)
    with LiveServer(settings) as server:
        import httpx

        wait_until(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, timeout=30)
        report = fuzz(server.url, examples=15, progress=False)
    assert {name.split(" (")[0] for name in report} >= {
        "GET /v1/users/{user_id}/recommendations", "POST /v1/recommendations", "GET /v1/items/{item_id}/similar"}
    assert sum(r["requests"] for r in report.values()) >= 6 * 15
    for name, result in report.items():
        assert result["server_errors"] == 0 and result["client_errors_without_reason"] == 0, (name, result["failures"])
