"""SheddingHttpProtocol on a real uvicorn server: a request the shedder refuses is answered where it
was parsed (outside any task), admitted ones run as tasks, keep-alive and pipelining still work,
and an application that awaits after all still answers."""

import asyncio
import socket
import threading
import time

import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from learnrec.serving.http_protocol import SheddingHttpProtocol
from learnrec.serving.shedding import STATE_KEY, LoadShedder
from learnrec.testing.live_server import free_port, wait_until


class _Recorder:
    """Outermost middleware: notes, per request path, whether it entered inside an asyncio task."""

    def __init__(self, app) -> None:
        self.app = app
        self.in_task: list[tuple[str, bool]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.in_task.append((scope["path"], asyncio.current_task() is not None))
        await self.app(scope, receive, send)


class _Server:
    def __init__(self, app) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", loop="uvloop",
                                http=SheddingHttpProtocol, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=10)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def _read_response(reader) -> tuple[int, bytes]:
    """(status, body) of the next response on ``reader`` (a socket's ``makefile("rb")``)."""
    status, length = int(reader.readline()[9:12]), 0
    while (line := reader.readline()) != b"\r\n":
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, reader.read(length)


def _slow_app(release: threading.Event):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while scope["path"] == "/v1/hold" and not release.is_set():
            await asyncio.sleep(0.005)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_a_refused_request_is_answered_where_it_is_parsed_and_the_connection_lives_on() -> None:
    release = threading.Event()
    recorder = _Recorder(LoadShedder(_slow_app(release), max_in_flight=1, max_queue_ms=1e6,
                                     registry=CollectorRegistry()))
    with _Server(recorder) as server:
        holder = socket.create_connection(("127.0.0.1", server.port))
        held = holder.makefile("rb")
        holder.sendall(_request("/v1/hold"))  # admitted: it fills the one slot
        wait_until(lambda: ("/v1/hold", True) in recorder.in_task)
        with socket.create_connection(("127.0.0.1", server.port)) as client:
            replies = client.makefile("rb")
            client.sendall(_request("/v1/a") + _request("/v1/b"))  # pipelined, both refused
            assert _read_response(replies)[0] == 503
            assert _read_response(replies)[0] == 503
            client.sendall(_request("/healthz"))  # never shed: a task as usual
            assert _read_response(replies) == (200, b"ok")
            release.set()
            assert _read_response(held) == (200, b"ok")
            client.sendall(_request("/v1/c"))  # the same connection, admitted again
            assert _read_response(replies) == (200, b"ok")
        holder.close()
    assert recorder.in_task == [("/v1/hold", True), ("/v1/a", False), ("/v1/b", False), ("/healthz", True),
                                ("/v1/c", True)]


class _AlwaysRefuses:
    """A shedder that says it refuses but lets the request through: the application then awaits."""

    def __init__(self, app) -> None:
        self.app = app

    def refuses(self, scope) -> bool:
        return scope["type"] == "http"

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            scope["state"][STATE_KEY] = self
        await self.app(scope, receive, send)


@pytest.mark.parametrize("pause_s", [0.0, 0.02])
def test_an_application_that_awaits_after_an_early_start_still_answers(pause_s: float) -> None:
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await _slow_app(threading.Event())(scope, receive, send)
            return
        await asyncio.sleep(pause_s)  # suspends: the protocol hands the rest to a task
        assert asyncio.current_task() is not None
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with _Server(_AlwaysRefuses(app)) as server, socket.create_connection(("127.0.0.1", server.port)) as client:
        replies = client.makefile("rb")
        for _ in range(3):
            started = time.monotonic()
            client.sendall(_request("/v1/x"))
            assert _read_response(replies) == (200, b"ok")
            assert time.monotonic() - started >= pause_s
