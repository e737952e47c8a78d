"""What the sync and the async client share: building requests, the retry policy, parsing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from learnrec.client.errors import ClientError, error_for
from learnrec.client.models import Recommendations

MAX_RETRY_AFTER_S = 5.0


@dataclass(frozen=True)
class Call:
    """One API request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response, str], Any]
    params: list[tuple[str, str]] | None = None
    body: dict[str, Any] | None = None
    retry: bool = True

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def _segment(value: str) -> str:
    """``value`` as one URL path segment (``/``, ``?``, ``#`` and ``%`` escaped too)."""
    return quote(str(value), safe="")


def _ids(values: Iterable[str], name: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a collection of item ids, not a string")
    return [str(v) for v in values]


def _filter_params(exclude: Iterable[str], category: str | None,
                   attributes: Mapping[str, str] | None) -> list[tuple[str, str]]:
    params = [("exclude", item_id) for item_id in _ids(exclude, "exclude")]
    if category is not None:
        params.append(("category", category))
    params += [("attribute", f"{name}={value}") for name, value in (attributes or {}).items()]
    return params


def for_user(user_id: str, k: int, exclude_seen: bool, exclude: Iterable[str],
             category: str | None, attributes: Mapping[str, str] | None) -> Call:
    params = [("k", str(k)), ("exclude_seen", str(bool(exclude_seen)).lower())]
    return Call("GET", f"/v1/users/{_segment(user_id)}/recommendations", parse_recommendations,
                params + _filter_params(exclude, category, attributes))


def for_session(item_ids: Iterable[str], k: int, exclude_seen: bool, exclude: Iterable[str],
                category: str | None, attributes: Mapping[str, str] | None) -> Call:
    body: dict[str, Any] = {"item_ids": _ids(item_ids, "item_ids"), "k": k,
                            "exclude_seen": bool(exclude_seen),
                            "exclude_item_ids": _ids(exclude, "exclude"),
                            "attributes": dict(attributes or {})}
    if category is not None:
        body["category"] = category
    return Call("POST", "/v1/recommendations", parse_recommendations, body=body)


def similar(item_id: str, k: int, exclude: Iterable[str], category: str | None,
            attributes: Mapping[str, str] | None) -> Call:
    params = [("k", str(k)), *_filter_params(exclude, category, attributes)]
    return Call("GET", f"/v1/items/{_segment(item_id)}/similar", parse_recommendations, params)


def readiness() -> Call:
    return Call("GET", "/readyz", parse_readiness, retry=False)


def client_options(base_url: str, api_key: str | None, timeout_s: float,
                   transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None) -> dict[str, Any]:
    """The keyword arguments of ``httpx.Client`` or ``httpx.AsyncClient``."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return {"base_url": base_url, "headers": headers, "timeout": timeout_s, "transport": transport}


def retry_delay(attempt: int, backoff_s: float, response: httpx.Response | None) -> float:
    """Seconds to wait before retry number ``attempt + 1``: the server's ``Retry-After`` (in
    seconds, at most :data:`MAX_RETRY_AFTER_S`) if it sent one, else exponential backoff."""
    retry_after = response.headers.get("retry-after") if response is not None else None
    try:
        wanted = float(retry_after) if retry_after is not None else None
    except ValueError:  # an HTTP date: fall back to the backoff
        wanted = None
    if wanted is not None and wanted >= 0:
        return min(wanted, MAX_RETRY_AFTER_S)
    return backoff_s * 2**attempt


def should_retry(call: Call, attempt: int, retries: int, response: httpx.Response | None) -> bool:
    """Whether to try ``call`` again after a 503, or after no response at all (None)."""
    return call.retry and attempt < retries and (response is None or response.status_code == 503)


def unreachable(call: Call, err: httpx.TransportError) -> ClientError:
    return error_for(None, f"{type(err).__name__}: {err}", call.label)


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:500] or response.reason_phrase
    return detail if isinstance(detail, str) else json.dumps(detail)


def _json(response: httpx.Response, label: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ClientError(response.status_code, f"not JSON: {response.text[:200]!r}", label) from None


def parse_recommendations(response: httpx.Response, label: str) -> Recommendations:
    if response.status_code != 200:
        raise error_for(response.status_code, _detail(response), label)
    try:
        return Recommendations.model_validate(_json(response, label))
    except ValidationError as err:
        raise ClientError(200, f"unexpected answer: {err}", label) from None


def parse_readiness(response: httpx.Response, label: str) -> dict[str, Any]:
    if response.status_code not in (200, 503):
        raise error_for(response.status_code, _detail(response), label)
    body = _json(response, label)
    if not isinstance(body, dict):
        raise ClientError(response.status_code, f"unexpected answer: {body!r}", label)
    return body
