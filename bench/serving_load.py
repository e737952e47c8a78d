"""The serving benchmark's load: an open-loop request generator and its latency statistics.

Requests leave at scheduled times whatever the earlier ones are doing, and latency counts from
the scheduled time, so a stalled server cannot hide its queueing (no coordinated omission). The
client is a minimal keep-alive HTTP/1.1 client on the standard asyncio loop (finer timers than
uvloop's millisecond clock), far cheaper per request than a general one, which matters on two
cores shared with the server. Its garbage collector is off during a run (a collection over
thousands of waiting requests stalled it by up to 100 ms, which then looked like the server's
latency), and each rate reports how late the generator itself woke (``client_late_p99_ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time

import numpy as np

MAX_CONNECTIONS = 64  # requests beyond wait for a connection; their wait counts as latency
KEEP_ALIVE_S = 3.0  # reuse idle connections younger than this (uvicorn closes them after 5 s)


def percentiles(latencies_s: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds, rounded to the microsecond."""
    ms = np.asarray(latencies_s) * 1000
    return round(float(np.percentile(ms, 50)), 3), round(float(np.percentile(ms, 99)), 3)


class Connection:
    """One keep-alive HTTP/1.1 connection doing GETs (responses with Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.last_used = time.perf_counter()

    async def get(self, path: str) -> int:
        self.last_used = time.perf_counter()
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


async def open_loop(port: int, users: int, rate: int, duration_s: float, timeout_s: float) -> dict:
    """Send ``rate`` requests per second for ``duration_s`` at fixed times; latency per request
    from its scheduled time to the end of its response. A request not answered within
    ``timeout_s`` of its scheduled time is an error."""
    idle: list[Connection] = []
    latencies: list[float] = []
    by_outcome: dict[str, list[float]] = {}
    late: list[float] = []  # the generator's own lateness: from the scheduled time to its wake-up
    outcomes: dict[str, int] = {}
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    rng = np.random.default_rng(rate)
    total = int(rate * duration_s)
    t0 = time.perf_counter() + 0.1

    async def checkout() -> Connection:
        """An idle connection the server has not timed out (uvicorn: 5 s), else a new one."""
        while idle:
            conn = idle.pop()
            if time.perf_counter() - conn.last_used < KEEP_ALIVE_S:
                return conn
            conn.close()
        return Connection(*await asyncio.open_connection("127.0.0.1", port))

    async def request(path: str) -> int:
        conn = await checkout()
        try:
            status = await conn.get(path)
        except BaseException:  # an error or the timeout: the connection's state is unknown
            conn.close()
            raise
        idle.append(conn)
        return status

    async def one(i: int, user: int) -> None:
        scheduled = t0 + i / rate
        await asyncio.sleep(scheduled - time.perf_counter())
        late.append(time.perf_counter() - scheduled)
        async with slots:
            try:
                remaining = scheduled + timeout_s - time.perf_counter()
                outcome = str(await asyncio.wait_for(
                    request(f"/v1/users/user-{user}/recommendations?k=10"), remaining
                ))
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as err:
                outcome = type(err).__name__
        latencies.append(time.perf_counter() - scheduled)
        by_outcome.setdefault(outcome, []).append(latencies[-1])
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    gc.disable()  # the generator's own collections would stall its schedule (tens of ms with this many tasks)
    try:
        await asyncio.gather(*(one(i, int(u)) for i, u in enumerate(rng.integers(0, users, total))))
    finally:
        gc.enable()
    elapsed = time.perf_counter() - t0
    for conn in idle:
        conn.close()
    p50, p99 = percentiles(latencies)
    errors = total - outcomes.get("200", 0)
    accepted = percentiles(by_outcome["200"]) if "200" in by_outcome else (None, None)
    shed = percentiles(by_outcome["503"]) if "503" in by_outcome else (None, None)
    return {"p50_ms": p50, "p99_ms": p99, "error_rate": errors / total, "sent": total,
            "achieved_rps": round(total / elapsed, 1), "outcomes": outcomes,
            "accepted_p50_ms": accepted[0], "accepted_p99_ms": accepted[1], "shed_p99_ms": shed[1],
            "client_late_p99_ms": percentiles(late)[1]}


def main() -> None:
    """``python -m bench.serving_load --port P --rate R --duration-s S``: one open-loop run against a
    server already up; prints its figures as JSON (other benchmarks run it as a process of its own)."""
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", type=int, default=2000, help="requests go to user-0 .. user-(users-1)")
    parser.add_argument("--rate", type=int, required=True, help="requests per second")
    parser.add_argument("--duration-s", type=float, required=True)
    parser.add_argument("--timeout-s", type=float, default=2.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(open_loop(args.port, args.users, args.rate, args.duration_s, args.timeout_s))))


if __name__ == "__main__":
    main()
