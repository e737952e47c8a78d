"""HTTP clients of the recommendations API, sync and async, with retries on 503 and on
connection failures. Both build and read their requests with :mod:`learnrec.client._calls`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from learnrec.client import _calls
from learnrec.client.errors import Unavailable
from learnrec.client.models import Recommendations

log = logging.getLogger("learnrec.client")


class _Base:
    def __init__(self, retries: int, backoff_s: float) -> None:
        if retries < 0 or backoff_s < 0:
            raise ValueError("retries and backoff_s must not be negative")
        self._retries = retries
        self._backoff_s = backoff_s

    def _next(self, call: _calls.Call, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before trying ``call`` again, or None: no retry."""
        if not _calls.should_retry(call, attempt, self._retries, response):
            return None
        delay = _calls.retry_delay(attempt, self._backoff_s, response)
        why = "no response" if response is None else response.status_code
        log.info("retrying %s in %.2f s (%s)", call.label, delay, why)
        return delay


class RecommendationsClient(_Base):
    """Blocking client: ``RecommendationsClient("http://127.0.0.1:8000", api_key=...)``."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 2.0,
                 retries: int = 3, backoff_s: float = 0.1,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(retries, backoff_s)
        self._http = httpx.Client(**_calls.client_options(base_url, api_key, timeout_s, transport))

    def _run(self, call: _calls.Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, params=call.params, json=call.body)
            except httpx.TransportError as err:
                delay = self._next(call, attempt, None)
                if delay is None:
                    raise _calls.unreachable(call, err) from err
            else:
                delay = self._next(call, attempt, response)
                if delay is None:
                    return call.parse(response, call.label)
            time.sleep(delay)
            attempt += 1

    def for_user(self, user_id: str, k: int = 10, *, exclude_seen: bool = True,
                 exclude: Iterable[str] = (), category: str | None = None,
                 attributes: Mapping[str, str] | None = None) -> Recommendations:
        """Items for a user, from the history the stream keeps (popular items without one)."""
        return self._run(_calls.for_user(user_id, k, exclude_seen, exclude, category, attributes))

    def for_session(self, item_ids: Iterable[str], k: int = 10, *, exclude_seen: bool = True,
                    exclude: Iterable[str] = (), category: str | None = None,
                    attributes: Mapping[str, str] | None = None) -> Recommendations:
        """Items for an anonymous session given its items, oldest first."""
        return self._run(_calls.for_session(item_ids, k, exclude_seen, exclude, category, attributes))

    def similar(self, item_id: str, k: int = 10, *, exclude: Iterable[str] = (),
                category: str | None = None,
                attributes: Mapping[str, str] | None = None) -> Recommendations:
        """The items nearest to ``item_id``; :class:`NotFound` for an unknown item."""
        return self._run(_calls.similar(item_id, k, exclude, category, attributes))

    def readiness(self) -> dict[str, Any]:
        """The ``/readyz`` body, ready or not (``{"ready": False, "detail": ...}``); no retry."""
        return self._run(_calls.readiness())

    def is_ready(self) -> bool:
        """Whether the server answers and serves a model version."""
        try:
            return self.readiness().get("ready") is True
        except Unavailable:
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RecommendationsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRecommendationsClient(_Base):
    """The same as :class:`RecommendationsClient`, for asyncio: every lookup is a coroutine."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 2.0,
                 retries: int = 3, backoff_s: float = 0.1,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(retries, backoff_s)
        self._http = httpx.AsyncClient(**_calls.client_options(base_url, api_key, timeout_s, transport))

    async def _run(self, call: _calls.Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, params=call.params,
                                                    json=call.body)
            except httpx.TransportError as err:
                delay = self._next(call, attempt, None)
                if delay is None:
                    raise _calls.unreachable(call, err) from err
            else:
                delay = self._next(call, attempt, response)
                if delay is None:
                    return call.parse(response, call.label)
            await asyncio.sleep(delay)
            attempt += 1

    async def for_user(self, user_id: str, k: int = 10, *, exclude_seen: bool = True,
                       exclude: Iterable[str] = (), category: str | None = None,
                       attributes: Mapping[str, str] | None = None) -> Recommendations:
        return await self._run(_calls.for_user(user_id, k, exclude_seen, exclude, category, attributes))

    async def for_session(self, item_ids: Iterable[str], k: int = 10, *, exclude_seen: bool = True,
                          exclude: Iterable[str] = (), category: str | None = None,
                          attributes: Mapping[str, str] | None = None) -> Recommendations:
        return await self._run(
            _calls.for_session(item_ids, k, exclude_seen, exclude, category, attributes))

    async def similar(self, item_id: str, k: int = 10, *, exclude: Iterable[str] = (),
                      category: str | None = None,
                      attributes: Mapping[str, str] | None = None) -> Recommendations:
        return await self._run(_calls.similar(item_id, k, exclude, category, attributes))

    async def readiness(self) -> dict[str, Any]:
        return await self._run(_calls.readiness())

    async def is_ready(self) -> bool:
        try:
            return (await self.readiness()).get("ready") is True
        except Unavailable:
            return False

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRecommendationsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
