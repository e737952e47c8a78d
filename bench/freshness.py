"""Stream benchmarks: item freshness at 1, 10 and 50 items/s, and both workers' throughput.

``python -m bench.freshness`` runs the real workers (in threads of this process) against the
configured Kafka and Redis, under a fresh topic and key prefix that is deleted afterwards, with
the default content encoder of Settings. It writes ``bench/results/freshness.json``:

- ``rates[r]``: time from producing an item event to its vector being readable in Redis and
  announced on ``item-updates`` (one MULTI writes both), p50/p99/max in ms, after warm-up;
- ``encoder_items_per_s``: item encoder throughput on a backlog of new items;
- ``history_events_per_s``: history updater throughput on a backlog of interactions.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.scratch import delete_scratch
from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import ensure_topics, make_producer
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.shared.topics import INTERACTIONS, ITEMS, topic_name
from learnrec.shared.worker import BatchWorker
from learnrec.stream.item_encoder import load_encoder
from learnrec.stream.workers import build_history_worker, build_item_worker

log = logging.getLogger("bench.freshness")

WORDS = ("digital caliper cordless drill glass beaker pipette tips nitrile gloves microscope slide "
         "stainless steel ruler safety goggles lab coat hot plate magnetic stirrer thermometer").split()


def wait_until(done: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``done`` every 10 ms; False if it is still false after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.01)
    return False


class Announcements:
    """Tails ``item-updates``; records when each item id was first announced (Unix seconds)."""

    def __init__(self, settings: Settings) -> None:
        self._redis = make_redis(settings)
        self._key = RedisKeys.from_settings(settings).item_updates()
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = "0-0"
        while not self._stop.is_set():
            for _, entries in self._redis.xread({self._key: last}, block=200, count=1000) or []:
                now = time.time()
                for entry_id, fields in entries:
                    last = entry_id
                    self.seen.setdefault(fields[b"item_id"].decode(), now)

    def wait_for(self, item_ids: list[str], timeout_s: float) -> bool:
        return wait_until(lambda: all(i in self.seen for i in item_ids), timeout_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def new_item(n: int, tag: str, rng: np.random.Generator) -> ItemEvent:
    title = " ".join(rng.choice(WORDS, size=4))
    return ItemEvent(item_id=f"{tag}{n}", title=f"{title} {tag}{n}", brand=str(rng.choice(WORDS)),
                     category="Lab supplies")


def _start(worker: BatchWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1), "n": len(ms)}


def produce_items(settings: Settings, rate: float, count: int, tag: str, rng: np.random.Generator,
                  on_send: Callable[[str], None] = lambda item_id: None) -> dict[str, float]:
    """Send ``count`` new items (ids ``{tag}{n}``) at ``rate`` per second; their send times
    (Unix seconds) by item id. ``on_send`` hears each id once it is sent."""
    producer = make_producer(settings, linger_ms=0)
    topic = topic_name(settings, ITEMS)
    sent: dict[str, float] = {}
    start = time.monotonic()
    for n in range(count):
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
        event = new_item(n, tag, rng)
        sent[event.item_id] = time.time()
        producer.send(topic, key=event.key, value=event.to_bytes())
        on_send(event.item_id)
    producer.flush()
    producer.close()
    return sent


def measure_freshness(settings: Settings, announcements: Announcements, rate: float, count: int,
                      rng: np.random.Generator) -> dict[str, float]:
    """Produce ``count`` new items at ``rate`` per second; latency of each to its announcement."""
    sent = produce_items(settings, rate, count, f"r{rate:g}-", rng)
    if not announcements.wait_for(list(sent), timeout_s=60):
        raise RuntimeError(f"items at {rate}/s were not all announced within 60 s")
    return percentiles_ms([announcements.seen[i] - t for i, t in sent.items()])


def measure_encoder_throughput(settings: Settings, announcements: Announcements, count: int,
                               rng: np.random.Generator) -> float:
    """Items per second through the running item encoder, from a backlog of ``count`` new items."""
    producer = make_producer(settings)
    topic = topic_name(settings, ITEMS)
    events = [new_item(n, "t-", rng) for n in range(count)]
    started = time.time()
    for event in events:
        producer.send(topic, key=event.key, value=event.to_bytes())
    producer.flush()
    producer.close()
    ids = [e.item_id for e in events]
    if not announcements.wait_for(ids, timeout_s=600):
        raise RuntimeError("the throughput backlog was not all announced within 600 s")
    return count / (max(announcements.seen[i] for i in ids) - started)


def measure_history_throughput(settings: Settings, count: int) -> float:
    """Events per second through the history updater, from a backlog of ``count`` interactions
    (timed from its first applied batch to its last, so the group join does not count)."""
    producer = make_producer(settings, linger_ms=20, batch_size=256 * 1024)
    topic = topic_name(settings, INTERACTIONS)
    now = time.time()
    for n in range(count):
        event = InteractionEvent(event_id=f"h{n}", user_id=f"u{n % 5000}", item_id=f"i{n % 20000}", timestamp=now)
        producer.send(topic, key=event.key, value=event.to_bytes())
    producer.flush()
    producer.close()
    worker = build_history_worker(settings)
    thread = _start(worker)
    first_at, first_count = None, 0
    deadline = time.monotonic() + 600
    while worker.totals.accepted < count and time.monotonic() < deadline:
        if first_at is None and worker.totals.accepted:
            first_at, first_count = time.monotonic(), worker.totals.accepted
        time.sleep(0.005)
    elapsed = time.monotonic() - (first_at or time.monotonic())
    worker.stop_event.set()
    thread.join()
    if worker.totals.accepted < count:
        raise RuntimeError("the interaction backlog was not all applied within 600 s")
    return (count - first_count) / elapsed


def run(args: argparse.Namespace) -> dict:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    base = Settings()
    settings = base.replace(topic_prefix=f"{prefix}.", redis_prefix=prefix,
                                       model_dir=Path(tempfile.mkdtemp(prefix="learnrec-bench-")))
    ensure_topics(settings)
    load_at_start = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    rng = np.random.default_rng(0)
    encoder = load_encoder(settings)
    worker = build_item_worker(settings, encoder=encoder)
    announcements = Announcements(settings)
    thread = _start(worker)
    try:
        log.info("warming up")
        measure_freshness(settings, announcements, rate=10, count=args.warmup, rng=rng)
        rates = {}
        for rate, seconds in ((1, args.seconds_at_1), (10, args.seconds), (50, args.seconds)):
            rates[str(rate)] = measure_freshness(settings, announcements, rate, int(rate * seconds), rng)
            log.info("freshness at %d items/s: %s", rate, rates[str(rate)])
        encoder_rate = measure_encoder_throughput(settings, announcements, args.encoder_items, rng)
    finally:
        worker.stop_event.set()
        thread.join()
        announcements.close()
    history_rate = measure_history_throughput(settings, args.history_events)
    delete_scratch(settings, topics=True)
    return {
        "rates": rates,
        "encoder": encoder.model_id,
        "encoder_alias": settings.encoder.name,
        "content_dim": encoder.content_dim,
        "encoder_items_per_s": round(encoder_rate, 1),
        "history_events_per_s": round(history_rate, 1),
        "item_batch_size": settings.stream.item_batch_size,
        "history_batch_size": settings.stream.history_batch_size,
        "encoder_backlog_items": args.encoder_items,
        "history_backlog_events": args.history_events,
        "cpus": os.cpu_count(),
        "load_average_1m": {"start": load_at_start, "end": round(os.getloadavg()[0], 2)},
        "target": {"p99_ms_at_10_per_s": 500, "history_events_per_s": 10_000},
    }




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds at 10 and 50 items/s")
    parser.add_argument("--seconds-at-1", type=float, default=30, help="measured seconds at 1 item/s")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up items (at 10/s)")
    parser.add_argument("--encoder-items", type=int, default=2000)
    parser.add_argument("--history-events", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/freshness.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "stream", "shared"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
