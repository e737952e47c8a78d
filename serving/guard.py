"""Who may call the API, and how much they may send: an ASGI middleware in front of the routes.

- **API keys** (``LEARNREC_SERVING_API_KEYS``, comma-separated; empty = no authentication): a
  request must carry one of them as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``,
  else 401. Keys are compared in constant time, against every configured key (rotation: list the
  old and the new one). ``/healthz`` and ``/readyz`` stay open; ``/metrics`` too when
  ``LEARNREC_SERVING_METRICS_OPEN`` (the default), else it needs a key like the rest.
- **Body size** (``LEARNREC_SERVING_MAX_BODY_BYTES``): a larger body gets 413 before anything
  parses it: at once from ``Content-Length``, or as soon as a streamed body passes the cap.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS_OPEN = ("/healthz", "/readyz")


def parse_keys(text: str) -> list[bytes]:
    """The configured keys (comma-separated, blanks ignored) as bytes."""
    return [key.strip().encode() for key in text.split(",") if key.strip()]


def _presented_key(scope: Scope) -> bytes | None:
    headers = dict(scope.get("headers") or [])
    if b"x-api-key" in headers:
        return headers[b"x-api-key"].strip()
    scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" and token.strip() else None


def key_is_valid(presented: bytes | None, keys: list[bytes]) -> bool:
    """Constant time in the key's content: every configured key is compared, always."""
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(presented or b"", key)
    return valid and presented is not None


async def reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """API keys and the body cap (module docstring); other scope types pass through."""

    def __init__(self, app: ASGIApp, keys: list[bytes], max_body_bytes: int, metrics_open: bool = True) -> None:
        self.app = app
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self.open_paths = ALWAYS_OPEN + (("/metrics",) if metrics_open else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.keys and scope["path"] not in self.open_paths and not key_is_valid(_presented_key(scope), self.keys):
            await reply(send, 401, "a valid API key is required (Authorization: Bearer <key> or X-API-Key)",
                         [(b"www-authenticate", b"Bearer")])
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await reply(send, 413, f"the request body is {int(length)} bytes; the limit is {self.max_body_bytes}")
            return
        body, more = bytearray(), True
        messages: list[Message] = []
        while more and scope["method"] in ("POST", "PUT", "PATCH"):
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            more = message.get("more_body", False) and message["type"] == "http.request"
            if len(body) > self.max_body_bytes:
                await reply(send, 413, f"the request body is more than the limit of {self.max_body_bytes} bytes")
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
