"""The serving API on a real uvicorn server in a background thread, and polling helpers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from learnrec.shared.config import Settings

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, every: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; returns that or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"condition not met within {timeout} s")


class LiveServer:
    """``learnrec.serving.api.create_app(settings)`` served by uvicorn on a free port, with the
    protocol ``learnrec serve`` uses (a context manager)."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from learnrec.serving.api import create_app
        from learnrec.serving.http_protocol import SheddingHttpProtocol

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                http=SheddingHttpProtocol)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="learnrec-serving", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        wait_until(lambda: self.server.started or not self._thread.is_alive(), timeout=10)
        if not self.server.started:
            raise RuntimeError("the serving API did not start (see the log above)")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
