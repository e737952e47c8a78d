"""Freshness under serving load: new items to servable at 50 items/s while 200 req/s are served.

``python -m bench.freshness_load`` (about 2 minutes; the configured Kafka and Redis, under fresh
topic and key prefixes that are deleted afterwards) runs everything as deployed, each its own
process on the same machine:

1. a serving catalogue as :mod:`bench.serving` fills it (random item vectors, user histories, a
   current model version whose towers take the configured encoder's content width);
2. ``learnrec serve``, ``learnrec stream items`` (the configured encoder and runtime) and
   ``learnrec stream history`` (idle here, but serving waits for it to replay the interactions);
3. the open-loop generator of :mod:`bench.serving_load` at ``--rps`` on
   ``GET /v1/users/{u}/recommendations``, and meanwhile, from this process, new item events at
   ``--items-per-s``. Each item's latency counts from its send to (a) its announcement on
   ``{p}:item-updates`` (its vector written to Redis) and (b) *servable*: the serving process
   answering ``GET /v1/items/{id}/similar`` with 200, polled every 2 ms from the announcement on
   (those polls are extra load on the server, counted in ``servable_polls``).

Writes ``bench/results/freshness-load.json``: p50/p99/max of both latencies, the serving load's
own figures (p50/p99, errors), the encoder, and whether servable p99 met ``--target-ms``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from bench.freshness import Announcements, percentiles_ms, produce_items, wait_until
from bench.scratch import delete_scratch
from bench.serving import fill, start_server, wait_ready
from learnrec.shared.config import Settings, process_env
from learnrec.shared.kafka_io import ensure_topics

POLL_S = 0.002


class ServableWatch:
    """Polls the server for each announced item until ``similar`` answers 200; records when."""

    def __init__(self, port: int, announcements: Announcements) -> None:
        self._client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0)
        self._announcements = announcements
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self.servable: dict[str, float] = {}
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, item_id: str) -> None:
        with self._lock:
            self._pending.append(item_id)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                announced = [i for i in self._pending if i in self._announcements.seen]
            for item_id in announced:
                self.polls += 1
                if self._client.get(f"/v1/items/{item_id}/similar", params={"k": 1}).status_code == 200:
                    self.servable[item_id] = time.time()
                    with self._lock:
                        self._pending.remove(item_id)
            time.sleep(POLL_S)

    def wait_all(self, timeout_s: float) -> bool:
        return wait_until(lambda: not self._pending, timeout_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()


def _start(args: list[str], env: dict[str, str], log_path: Path, **options) -> subprocess.Popen:
    with log_path.open("wb") as log_file:
        return subprocess.Popen([sys.executable, "-m", *args], env=env, stderr=log_file, **options)


def run(args: argparse.Namespace) -> dict:
    base = Settings()
    prefix = f"bench-fl-{uuid.uuid4().hex[:8]}"
    model_dir = Path(tempfile.mkdtemp(prefix="learnrec-bench-freshness-"))
    settings = base.replace(topic_prefix=f"{prefix}.", redis_prefix=prefix, model_dir=model_dir)
    env = os.environ | process_env(settings)
    ensure_topics(settings)
    load_at_start = round(os.getloadavg()[0], 2)
    processes: list[subprocess.Popen] = []
    try:
        fill(settings, argparse.Namespace(items=args.catalogue, users=args.users, content_dim=args.content_dim,
                                          output_dim=64, content_blend=0.0), encoder=settings.encoder.name)
        processes.append(start_server(settings, args.port, model_dir / "server.log"))
        wait_ready(processes[0], args.port, 300, model_dir / "server.log")
        for worker in ("items", "history"):  # without the history updater Redis counts as being rebuilt
            processes.append(_start(["learnrec.cli", "stream", worker, "--metrics-port", "0"], env,
                                    model_dir / f"{worker}.log"))
        announcements = Announcements(settings)
        rng = np.random.default_rng(0)
        warm = produce_items(settings, 10, args.warmup, "warm-", rng)  # the encoder loaded, its group joined
        if not announcements.wait_for(list(warm), timeout_s=300):
            raise RuntimeError(f"warm-up items not announced: {(model_dir / 'items.log').read_text()[-2000:]}")
        watch = ServableWatch(args.port, announcements)
        load_s = args.seconds + 2 * args.settle_s
        load = _start(["bench.serving_load", "--port", str(args.port), "--users", str(args.users),
                       "--rate", str(args.rps), "--duration-s", str(load_s)], env, model_dir / "load.log",
                      stdout=subprocess.PIPE)
        processes.append(load)
        time.sleep(args.settle_s)
        sent = produce_items(settings, args.items_per_s, int(args.items_per_s * args.seconds), "f-", rng, watch.add)
        complete = watch.wait_all(timeout_s=60)
        serving = json.loads(load.communicate(timeout=load_s + 120)[0])
        watch.close()
        announcements.close()
        if not complete:
            raise RuntimeError(f"{len(sent) - len(watch.servable)} of {len(sent)} items not servable within 60 s "
                               f"({sum(i in announcements.seen for i in sent)} announced)")
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        delete_scratch(settings, topics=True)
        shutil.rmtree(model_dir, ignore_errors=True)
    servable = percentiles_ms([watch.servable[i] - t for i, t in sent.items()])
    return {
        "items_per_s": args.items_per_s,
        "items": len(sent),
        "announced": percentiles_ms([announcements.seen[i] - t for i, t in sent.items()]),
        "servable": servable,
        "servable_polls": watch.polls,
        "serving_rps": args.rps,
        "serving": serving,
        "catalogue": args.catalogue,
        "encoder": settings.encoder.name,
        "encoder_runtime": settings.encoder.runtime,
        "encoder_threads": settings.encoder.threads,
        "item_batch_size": settings.stream.item_batch_size,
        "cpus": os.cpu_count(),
        "load_average_1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)},
        "target": {"servable_p99_ms_max": args.target_ms, "met": servable["p99_ms"] <= args.target_ms,
                   "serving_errors": serving["error_rate"]},
        "command": "python -m bench.freshness_load " + " ".join(sys.argv[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items-per-s", type=float, default=50)
    parser.add_argument("--rps", type=int, default=200, help="serving load, requests per second")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds of new items")
    parser.add_argument("--settle-s", type=float, default=5, help="serving load alone before and after")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up items (at 10/s, before the load)")
    parser.add_argument("--catalogue", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--content-dim", type=int, default=384, help="the configured encoder's width (MiniLM: 384)")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--target-ms", type=float, default=100)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "freshness-load.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))  # still clean up
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
