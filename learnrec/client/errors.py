"""The errors of :class:`~learnrec.client.RecommendationsClient` and its async twin."""

from __future__ import annotations


class ClientError(Exception):
    """A request that did not get an answer: ``status`` (None: no HTTP response) and the
    server's ``detail``."""

    def __init__(self, status: int | None, detail: str, request: str = "") -> None:
        self.status = status
        self.detail = detail
        where = f"{request}: " if request else ""
        super().__init__(f"{where}{status or 'no response'} {detail}")


class BadRequest(ClientError):
    """A 4xx other than 401, 403 and 404 (usually 422: the detail says which input is wrong)."""


class NotFound(ClientError):
    """404: an unknown item (``similar``) or path."""


class Unauthorized(ClientError):
    """401 or 403: a missing or wrong API key."""


class Unavailable(ClientError):
    """503 (no model version loaded yet, or overloaded), or no connection, after the retries."""


def error_for(status: int | None, detail: str, request: str) -> ClientError:
    """The exception class that fits ``status``."""
    if status is None or status == 503:
        kind: type[ClientError] = Unavailable
    elif status == 404:
        kind = NotFound
    elif status in (401, 403):
        kind = Unauthorized
    elif 400 <= status < 500:
        kind = BadRequest
    else:
        kind = ClientError
    return kind(status, detail, request)
