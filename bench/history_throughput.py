"""History updater throughput against a bare consumer reading the same topic, in one run.

    python -m bench.history_throughput                       # 200,000 events, 3 repeats
    python -m bench.history_throughput --events 50000 --repeats 5 --profile --label before

Produces ``--events`` valid interactions once to a fresh topic (throw-away topic and key
prefixes, deleted at the end), then alternates, ``--repeats`` times: (a) a bare kafka-python
consumer (``make_consumer`` with the worker's settings, ``max_poll_records`` = the history
batch size, a fresh group) counting the records; (b) the real history updater
(``build_history_worker``, a fresh group and a fresh Redis prefix). Both are timed from their
first batch to the last record, so the group join does not count. (c) times the decoding step
alone (``decode_interaction_event``). ``--profile`` prints the worker's top functions
(cProfile) over one more run. Medians and the history/bare ratio go to
``bench/results/history-throughput.json`` under ``--label``; other labels there are kept.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import statistics
import subprocess
import time
import uuid
from pathlib import Path

from kafka import KafkaAdminClient

from bench.scratch import delete_scratch
from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import ensure_topics, kafka_security, make_consumer, make_producer
from learnrec.shared.schemas import InteractionEvent, decode_interaction_event
from learnrec.shared.topics import GROUP_HISTORY_UPDATER, INTERACTIONS, group_name, topic_name
from learnrec.stream.workers import build_history_worker

log = logging.getLogger("bench.history_throughput")

RESULTS = Path(__file__).resolve().parent / "results" / "history-throughput.json"
TIMEOUT_S = 600


def produce(settings: Settings, events: int, users: int, items: int) -> list[bytes]:
    """Write the events to the interactions topic; returns their wire values."""
    now = time.time()
    values = [InteractionEvent(event_id=f"h{n}", user_id=f"u{n % users}", item_id=f"i{(n * 7919) % items}",
                               timestamp=now + n / 1000).to_bytes() for n in range(events)]
    producer = make_producer(settings, linger_ms=20, batch_size=256 * 1024)
    topic = topic_name(settings, INTERACTIONS)
    for n, value in enumerate(values):
        producer.send(topic, key=f"u{n % users}".encode(), value=value)
    producer.flush()
    producer.close()
    return values


def bare_consumer(settings: Settings, events: int, group: str) -> float:
    """Records per second of a consumer that only counts what it polls."""
    batch = settings.stream.history_batch_size
    consumer = make_consumer(settings, group, [topic_name(settings, INTERACTIONS)], max_poll_records=batch)
    try:
        seen, deadline = 0, time.monotonic() + TIMEOUT_S
        while not seen and time.monotonic() < deadline:
            seen = sum(len(part) for part in consumer.poll(timeout_ms=200, max_records=batch).values())
        started, first = time.perf_counter(), seen
        while seen < events and time.monotonic() < deadline:
            seen += sum(len(part) for part in consumer.poll(timeout_ms=200, max_records=batch).values())
        elapsed = time.perf_counter() - started
    finally:
        consumer.close(autocommit=False)
    if seen < events:
        raise RuntimeError(f"the bare consumer read {seen} of {events} records")
    return (seen - first) / elapsed


def history_worker(settings: Settings, events: int, profile: cProfile.Profile | None = None) -> float:
    """Events per second applied by the history updater, from its first applied batch."""
    worker = build_history_worker(settings)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not worker.totals.accepted and time.monotonic() < deadline:
            worker.run_once()
        started, first = time.perf_counter(), worker.totals.accepted
        if profile is not None:
            profile.enable()
        while worker.totals.accepted < events and time.monotonic() < deadline:
            worker.run_once()
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
    finally:
        worker.consumer.close(autocommit=False)
    if worker.totals.accepted < events:
        raise RuntimeError(f"the history updater applied {worker.totals.accepted} of {events} events")
    return (worker.totals.accepted - first) / elapsed


def decode_only(values: list[bytes]) -> float:
    """Events per second of ``decode_interaction_event`` alone."""
    started = time.perf_counter()
    for value in values:
        decode_interaction_event(value)
    return len(values) / (time.perf_counter() - started)


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "stream", "shared"],
                               capture_output=True, text=True).stdout.strip()
        return f"{rev}{'+dirty' if dirty else ''}"
    except OSError:
        return "unknown"


def _delete_groups(settings: Settings, groups: list[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.connection.kafka_bootstrap_servers, **kafka_security(settings))
    try:
        admin.delete_consumer_groups(groups)
    except Exception:  # a group that never committed does not exist: nothing to delete
        log.debug("deleting groups %s", groups, exc_info=True)
    finally:
        admin.close()


def run(args: argparse.Namespace) -> dict:
    prefix = f"hbench{uuid.uuid4().hex[:8]}"
    settings = Settings().replace(topic_prefix=f"{prefix}.", redis_prefix=prefix)
    ensure_topics(settings)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[float]] = {"bare_consumer": [], "history_updater": [], "decode_only": []}
    scratch = [settings]
    try:
        values = produce(settings, args.events, args.users, args.items)
        log.info("produced %d events", len(values))
        for repeat in range(args.repeats):
            runs["bare_consumer"].append(bare_consumer(settings, args.events, f"{prefix}.bare-{repeat}"))
            scratch.append(settings.replace(redis_prefix=f"{prefix}r{repeat}"))
            runs["history_updater"].append(history_worker(scratch[-1], args.events))
            _delete_groups(settings, [group_name(settings, GROUP_HISTORY_UPDATER)])  # next: a fresh group
            runs["decode_only"].append(decode_only(values))
            log.info("repeat %d: %s", repeat, {k: round(v[-1]) for k, v in runs.items()})
        if args.profile:
            profile = cProfile.Profile()
            scratch.append(settings.replace(redis_prefix=f"{prefix}p"))
            history_worker(scratch[-1], args.events, profile)
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile_top)
    finally:
        _delete_groups(settings, [f"{prefix}.bare-{r}" for r in range(args.repeats)]
                       + [group_name(settings, GROUP_HISTORY_UPDATER)])
        for scratch_settings in scratch:
            delete_scratch(scratch_settings, topics=scratch_settings is settings)
    medians = {name: round(statistics.median(rates)) for name, rates in runs.items()}
    ratios = [h / b for h, b in zip(runs["history_updater"], runs["bare_consumer"], strict=True)]
    return {
        "events_per_s_median": medians,
        "ratio_history_to_bare_median": round(statistics.median(ratios), 3),
        "ratio_history_to_bare_per_repeat": [round(r, 3) for r in ratios],
        "events_per_s_per_repeat": {name: [round(r) for r in rates] for name, rates in runs.items()},
        "settings": {"events": args.events, "users": args.users, "items": args.items, "repeats": args.repeats,
                     "history_batch_size": settings.stream.history_batch_size, "partitions": settings.connection.partitions},
        "cpus": os.cpu_count(),
        "load_average": {"start": load_at_start, "end": [round(x, 2) for x in os.getloadavg()]},
        "git_rev": _git_rev(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one more history updater run")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--label", default="current", help="the key of this run in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "stream", "shared"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    result = run(args)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    previous[args.label] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(previous, indent=2) + "\n")
    med = result["events_per_s_median"]
    print(f"\n{'':18}{'events/s (median)':>18}  per repeat")
    for name, rates in result["events_per_s_per_repeat"].items():
        print(f"{name:18}{med[name]:>18,}  {rates}")
    print(f"history / bare: {result['ratio_history_to_bare_median']:.1%} (median of same-repeat ratios)")
    print(f"wrote {args.out} [{args.label}]")


if __name__ == "__main__":
    main()
