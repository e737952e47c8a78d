"""Serving benchmark: HTTP latency under open-loop load, against the in-process floor.

``python -m bench.serving`` (loopback only, about 3 minutes) uses the configured Redis under a
fresh key prefix that is deleted afterwards (``--content-blend W``: a version with the content
blend of docs/MODEL.md, its vectors ``output_dim + content_dim`` wide):

1. fills Redis with a catalogue of random L2-normalised item vectors ``[output_dim]``, user
   histories and content embeddings ``[content_dim]`` of the items in them, and a model version whose user tower is
   the real LEARN tower (``learnrec.shared.model.towers.LearnModel``, untrained) exported to ONNX;
2. measures the *floor*: the same request path in this process without HTTP (history fetch,
   content embeddings, user tower, index search), one request right after another, and
   *paced* at low rates (``--paced-floor-rates``: the requests ``1 / rate`` apart, one at a
   time, so the caches and cores go idle between them as they do under HTTP at that rate);
   loading the version here builds its index and saves it as the version's snapshot
   (``index_build_s``);
3. starts ``learnrec serve`` in a subprocess, which loads that snapshot (``server_ready_s``: its
   start to ready, at a million items the figure the 30-second target is about), and drives ``GET /v1/users/{u}/recommendations``
   with an open-loop generator (``bench.serving_load``): requests leave at scheduled times
   whatever the earlier ones are doing, and latency counts from the scheduled time, so a
   stalled server cannot hide its queueing (no coordinated omission).

Writes ``bench/results/serving.json``: ``catalogue``, ``rps[rate]`` (``p50_ms``, ``p99_ms``
over every request, ``accepted_p50_ms`` / ``accepted_p99_ms`` over the answered ones (200),
``shed_p99_ms`` over the ones shed with 503, ``error_rate`` (anything but 200), ``sent``,
``achieved_rps``, ``client_late_p99_ms``, ``redis_forks``: Redis's AOF rewrites or saves that
started during the rate, each a child process taking a core; every rate starts once none runs),
``floor_p50_ms``, ``floor_p99_ms``, ``floor_paced[rate]`` (``p50_ms``, ``p99_ms``), ``memory``
(the version's index snapshot on disk, in all and per item, and the server's resident memory
once ready and after the load), the serving settings, and ``targets``: issue 16's figures (p99 at 300 req/s, HTTP p50 over the floor, the
saturation rate (the highest rate answered in full with p99 <= 50 ms) and the overload figures
at twice it (``overload_*``, the lowest rate measured at or above twice it) and at the highest
rate measured (``overload_highest_*``)).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from bench.scratch import delete_scratch
from bench.serving_load import open_loop, percentiles
from learnrec.serving.service import ServingService
from learnrec.shared.config import Settings, process_env
from learnrec.shared.model.onnx_export import export_version
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions.registry import ModelRegistry

RESULTS = Path(__file__).parent / "results" / "serving.json"
RATES = (100, 200, 300, 400, 600, 800, 1200)
SATURATION_P99_MS = 50  # the saturation rate: the highest rate answered in full with p99 <= this
FILL_BATCH = 5000


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def fill(settings: Settings, args: argparse.Namespace, encoder: str = "bench-random") -> str:
    """Catalogue, histories and a registered current model version (for content encoder
    ``encoder``: an item encoder of another id refuses to write vectors for it); returns its id."""
    client = make_redis(settings)
    keys = RedisKeys.from_settings(settings)
    # a hybrid model with an ID row for every item: the request path looks rows up as it would
    torch_model = LearnModel(LearnConfig(content_dim=args.content_dim, output_dim=args.output_dim, id_rows=args.items,
                                         content_blend=args.content_blend))
    version = f"v{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-bench0"
    export_version(torch_model, settings.versions.model_dir / version, {"encoder": encoder},
                   [f"item-{n}" for n in range(args.items)])
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, args.items, int(rng.integers(5, 51))) for _ in range(args.users)]
    pipe = client.pipeline(transaction=False)
    for user, history in enumerate(histories):
        pipe.rpush(keys.history(f"user-{user}"), *(f"item-{i}" for i in history))
    pipe.execute()
    seen = np.unique(np.concatenate(histories))  # the request path reads content of these only
    for start in range(0, len(seen), FILL_BATCH):
        rows = seen[start : start + FILL_BATCH]
        content = _unit(rng.standard_normal((len(rows), args.content_dim)))
        pipe = client.pipeline(transaction=False)
        for item, row in zip(rows, content, strict=True):
            pipe.hset(keys.item(f"item-{item}"), mapping={"title": f"item-{item}", "content": row.tobytes()})
        pipe.execute()
    for start in range(0, args.items, FILL_BATCH):
        ids = [f"item-{n}" for n in range(start, min(start + FILL_BATCH, args.items))]
        vectors = _unit(rng.standard_normal((len(ids), torch_model.vector_dim)))
        client.hset(keys.vectors(version), mapping={i: v.tobytes() for i, v in zip(ids, vectors, strict=True)})
    ModelRegistry.from_settings(settings, client).register(settings.versions.model_dir / version)
    client.set(keys.model_current(), version)
    client.close()
    return version


async def measure_floor(settings: Settings, users: int, requests: int, paced_rates: list[int],
                        paced_s: float) -> dict:
    """``Recommender.for_user`` in this process: ``p50_ms`` / ``p99_ms`` one request right after
    another, ``paced`` p50 / p99 per rate with the requests ``1 / rate`` apart for ``paced_s``
    (the idle gaps of a low rate, without HTTP), and ``load_s`` (the index load)."""
    service = ServingService(settings)
    started = time.perf_counter()
    service.start()
    try:
        while not service.ready:
            await asyncio.sleep(0.05)
        load_s = time.perf_counter() - started
        rng = np.random.default_rng(1)
        for user in rng.integers(0, users, 200):  # warm the content cache like the server's
            await service.recommender.for_user(f"user-{user}", 10)

        async def timed(count: int, gap_s: float) -> tuple[float, float]:
            latencies, due = [], time.perf_counter()
            for user in rng.integers(0, users, count):
                due += gap_s
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                t0 = time.perf_counter()
                await service.recommender.for_user(f"user-{user}", 10)
                latencies.append(time.perf_counter() - t0)
            return percentiles(latencies)

        p50, p99 = await timed(requests, 0.0)
        paced = {str(rate): dict(zip(("p50_ms", "p99_ms"), await timed(int(rate * paced_s), 1 / rate), strict=True))
                 for rate in paced_rates}
    finally:
        await service.stop()
    return {"p50_ms": p50, "p99_ms": p99, "paced": paced, "load_s": round(load_s, 2)}


def start_server(settings: Settings, port: int, log_path: Path) -> subprocess.Popen:
    env = os.environ | process_env(settings)
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "learnrec.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )


def quiet_redis(client, timeout_s: float = 120) -> int:
    """Wait until Redis is not rewriting its append-only file or saving (a child process that
    takes a core for seconds after a large fill or delete); returns its fork count so far."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        persistence = client.info("persistence")
        if not (persistence["aof_rewrite_in_progress"] or persistence["rdb_bgsave_in_progress"]
                or persistence.get("aof_rewrite_scheduled")):
            return int(client.info("stats")["total_forks"])
        time.sleep(0.5)
    raise TimeoutError("Redis was still rewriting its AOF or saving")


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def wait_ready(server: subprocess.Popen, port: int, timeout_s: float, log_path: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server not ready")


def run(args: argparse.Namespace) -> dict:
    base = Settings()
    model_dir = Path(tempfile.mkdtemp(prefix="learnrec-bench-serving-"))
    settings = Settings(
        REDIS_URL=base.connection.redis_url, redis_prefix=f"bench-serving-{uuid.uuid4().hex[:8]}",
        model_dir=model_dir,
    )
    server = None
    try:
        t = time.perf_counter()
        fill(settings, args)
        fill_s = time.perf_counter() - t
        print(f"filled {args.items} items, {args.users} users in {fill_s:.1f} s", flush=True)
        floor = asyncio.run(measure_floor(settings, args.users, args.floor_requests, args.paced_floor_rates,
                                          args.paced_floor_s))
        print(f"floor {floor}", flush=True)
        server_log = model_dir / "server.log"
        server = start_server(settings, args.port, server_log)
        ready_s = wait_ready(server, args.port, 300, server_log)
        loaded_snapshot = "from its index snapshot" in server_log.read_text()
        memory = {"snapshot_bytes": sum(f.stat().st_size for f in model_dir.glob("*/index/*")),
                  "server_rss_ready_mb": rss_mb(server.pid)}
        asyncio.run(open_loop(args.port, args.users, 100, args.warmup_s, args.timeout_s))
        rates = {}
        redis = make_redis(settings)
        for rate in args.rates:
            forks = quiet_redis(redis)
            rates[str(rate)] = asyncio.run(
                open_loop(args.port, args.users, rate, args.duration_s, args.timeout_s)
            ) | {"redis_forks": int(redis.info("stats")["total_forks"]) - forks}
            print(f"{rate} rps: {rates[str(rate)]}", flush=True)
        redis.close()
        memory["server_rss_end_mb"] = rss_mb(server.pid)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        delete_scratch(settings, topics=False)
        shutil.rmtree(model_dir, ignore_errors=True)
    return {
        "catalogue": args.items,
        "users": args.users,
        "content_dim": args.content_dim,
        "output_dim": args.output_dim,
        "content_blend": args.content_blend,
        "vector_dim": LearnConfig(content_dim=args.content_dim, output_dim=args.output_dim,
                                  content_blend=args.content_blend).vector_dim,
        "index": "hnsw" if args.items >= settings.serving.exact_below else "exact",
        "duration_s_per_rate": args.duration_s,
        "cpus": os.cpu_count(),
        "rps": rates,
        "floor_p50_ms": floor["p50_ms"],
        "floor_p99_ms": floor["p99_ms"],
        "floor_paced": floor["paced"],
        "index_build_s": floor["load_s"],
        "server_ready_s": round(ready_s, 2),
        "server_loaded_snapshot": loaded_snapshot,
        "memory": memory | {"snapshot_bytes_per_item": round(memory["snapshot_bytes"] / args.items, 1)},
        "settings": {"max_in_flight": settings.serving.max_in_flight, "max_queue_ms": settings.serving.max_queue_ms,
                     "max_model_batch": settings.serving.max_model_batch, "hnsw_ef": settings.serving.hnsw_ef},
        "targets": targets(rates, floor["p50_ms"], floor["paced"]),
        "command": "python -m bench.serving " + " ".join(sys.argv[1:]),
    }


def targets(rates: dict[str, dict], floor_p50: float, paced: dict[str, dict]) -> dict:
    """Issue 16's figures from the measured rates: p99 at 300 req/s, HTTP p50 over the floor
    per rate (and over the paced floor of the same rate, where measured), the saturation rate,
    and the overload figures at twice the saturation rate (the lowest rate measured at or above
    it) and at the highest rate measured (None where no rate qualifies)."""
    answered_in_time = [int(r) for r, m in rates.items() if m["error_rate"] == 0 and m["p99_ms"] <= SATURATION_P99_MS]
    saturation = max(answered_in_time, default=None)
    overload_rates = sorted(int(r) for r in rates if saturation and int(r) >= 2 * saturation)
    at_300 = rates.get("300", {})
    return {
        "p99_at_300_rps_ms": at_300.get("p99_ms"),
        "no_errors_at_300_rps": at_300.get("error_rate") == 0 if at_300 else None,
        "http_p50_over_floor": {r: round(m["p50_ms"] / floor_p50, 2) for r, m in rates.items()},
        "http_p50_over_paced_floor": {r: round(rates[r]["p50_ms"] / m["p50_ms"], 2)
                                      for r, m in paced.items() if r in rates},
        "saturation_rps": saturation,
        **_overload("overload", overload_rates[0] if overload_rates else None, rates),
        **_overload("overload_highest", overload_rates[-1] if overload_rates else None, rates),
    }


def _overload(name: str, rate: int | None, rates: dict[str, dict]) -> dict:
    measured = rates[str(rate)] if rate is not None else None
    return {
        f"{name}_rps": rate,
        f"{name}_answered": round(1 - measured["error_rate"], 3) if measured else None,
        f"{name}_accepted_p99_ms": measured["accepted_p99_ms"] if measured else None,
        f"{name}_shed_p99_ms": measured["shed_p99_ms"] if measured else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--content-dim", type=int, default=384, help="all-MiniLM-L6-v2's width")
    parser.add_argument("--output-dim", type=int, default=64)
    parser.add_argument("--content-blend", type=float, default=0.0,
                        help="a version with the content blend: vectors output_dim + content_dim wide")
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES))
    parser.add_argument("--duration-s", type=float, default=20.0, help="per rate")
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--floor-requests", type=int, default=2000)
    parser.add_argument("--paced-floor-rates", type=int, nargs="*", default=[100, 200],
                        help="also measure the floor with requests 1/rate apart, as at these rates")
    parser.add_argument("--paced-floor-s", type=float, default=10.0)
    parser.add_argument("--timeout-s", type=float, default=2.0)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))  # still clean up Redis
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
