"""Interactions a second of a trainer group against one trainer, in the same run.

Used by ``python -m bench.trainer_throughput --trainers N``. Every configuration trains the
same synthetic backlog under its own fresh topic and key prefix, each trainer a real
``learnrec train online`` process with one torch thread and its own folder:

- ``single``: one trainer as deployed by default (``trainer_group`` off);
- ``group of 1`` and ``group of N``: members of a trainer group (``LEARNREC_TRAINER_GROUP``).

The trainers start first and take a warm-up of 200 events (a group also waits until all its
members meet); then the backlog is produced, and the rate is the backlog's middle 80% (from 10%
to 90% of it consumed, read from the trainers' committed offsets every 50 ms) over the time it
took: start-up and the last, partial round are left out. A trainer commits a batch once it has
added it; a group trains what it added in the same round, a single trainer as soon as a batch
is full, so consumed and trained are at most a batch apart.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from kafka import KafkaAdminClient

from bench.scratch import delete_scratch
from bench.trainer_throughput import produce_events, put_items, synthetic_events
from learnrec.shared.config import Settings, process_env
from learnrec.shared.kafka_io import ensure_topics, kafka_security
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.topics import GROUP_TRAINER, group_name
from learnrec.trainer.membership import World

log = logging.getLogger("bench.trainer_group")

WARM_UP = 200


def _start(settings: Settings, workdir: Path, group: bool) -> subprocess.Popen:
    workdir.mkdir(parents=True)
    env = os.environ | process_env(settings) | {
        "LEARNREC_TRAINER_GROUP": str(group).lower(), "LEARNREC_TRAINER_THREADS": "1",
        "LEARNREC_CACHE_DIR": str(workdir / "cache"), "LEARNREC_TRAINER_CHECKPOINT": str(workdir / "online.ckpt"),
        "LEARNREC_TRAINER_PUBLISH_EVERY_EVENTS": str(10**9), "LEARNREC_TRAINER_PUBLISH_EVERY_S": str(10**9),
        "LEARNREC_METRICS_PORT": "0",
    }
    with open(workdir / "trainer.log", "ab") as stderr:
        return subprocess.Popen([sys.executable, "-m", "learnrec.cli", "train", "online"], env=env, cwd=workdir,
                                stdout=subprocess.DEVNULL, stderr=stderr)


def _wait(condition, what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(0.05)


def measure(base: Settings, workdir: Path, trainers: int, group: bool, events: int, users: int, items: int) -> dict:
    """One configuration: ``trainers`` processes (``group``: as a trainer group) on a fresh prefix."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    settings = base.replace(topic_prefix=f"{prefix}.", redis_prefix=prefix)
    client = make_redis(settings)
    keys = RedisKeys.from_settings(settings)
    ensure_topics(settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.connection.kafka_bootstrap_servers, **kafka_security(settings))
    consumer_group = group_name(settings, GROUP_TRAINER)

    def consumed() -> int:
        return sum(o.offset for o in admin.list_consumer_group_offsets(consumer_group).values() if o.offset > 0)

    def met() -> bool:
        world = World.from_json(client.get(keys.trainer_world()))
        return not group or (world is not None and len(world.members) == trainers)

    processes: list[subprocess.Popen] = []
    try:
        put_items(client, keys, items, 384)
        processes = [_start(settings, workdir / f"{prefix}-{n}", group) for n in range(trainers)]
        produce_events(settings, synthetic_events(WARM_UP, users, items, 0, "w"))
        _wait(lambda: met() and consumed() >= WARM_UP, "the trainers to start")
        produce_events(settings, synthetic_events(events, users, items, 1, "b"))
        marks: dict[float, float] = {}
        while len(marks) < 2:
            done = consumed() - WARM_UP
            for fraction in (0.1, 0.9):
                if fraction not in marks and done >= fraction * events:
                    marks[fraction] = time.perf_counter()
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"a trainer exited; see {workdir}")
            time.sleep(0.05)
        seconds = marks[0.9] - marks[0.1]
        result = {"trainers": trainers, "group": group, "events": events, "measured_events": round(0.8 * events),
                  "seconds": round(seconds, 2), "trained_per_s": round(0.8 * events / seconds, 1)}
        log.info("%s", result)
        return result
    finally:
        for p in processes:
            p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        admin.close()
        delete_scratch(settings, topics=True)
