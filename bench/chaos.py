"""Faults under a steady load, and what each cost: lost, applied twice, items without vectors.

    python -m bench.chaos                    # every cell below, then the fuzz cell
    python -m bench.chaos --cells fuzz --fuzz 10000

The stream workers run as real processes (``learnrec stream items|history``, the default MiniLM
encoder) on the real broker and Redis, under a fresh topic and key prefix per cell. A producer
thread publishes interactions (every event a unique item id, so each one can be counted in the
histories; the history length is set above the number of events) and new items at a steady
rate; halfway, the cell's fault happens:

- ``kill-history`` / ``kill-items``: ``kill -9`` of that worker, restarted a second later;
- ``join-leave``: a second replica of each worker joins, and leaves (SIGTERM) later: rebalances;
- ``wipe-redis``: every key of the prefix is deleted (the workers rebuild it: shared/rebuild.py);
- ``fuzz``: ``--fuzz`` malformed events of every kind among valid ones; all must be in the
  dead-letter topic with a reason, and the workers alive.

Per cell: events produced, applied exactly once, lost, applied twice, items without a vector
under the current version after recovery, and the recovery time (from the fault until both
groups committed past the topics' end offsets just after the fault: after the restart, the
join, or the first worker's noticing the wipe). Not covered yet (the issue asks
for them): killing the trainer and serving, API requests under load, a broker restart, Redis
unreachable for 30 s. Writes ``bench/results/chaos.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from demo.processes import Component
from shared.config import Settings, process_env
from shared.kafka_io import ensure_topics, make_producer
from shared.redis_client import make_redis
from shared.redis_keys import RedisKeys
from shared.schemas import InteractionEvent, ItemEvent
from shared.topics import (
    DEAD_LETTER,
    GROUP_HISTORY_UPDATER,
    GROUP_ITEM_ENCODER,
    INTERACTIONS,
    ITEMS,
    group_name,
    topic_name,
)

RESULTS = Path(__file__).resolve().parent / "results"
CELLS = ("kill-history", "kill-items", "join-leave", "wipe-redis", "fuzz")
WORKERS = {"history": (GROUP_HISTORY_UPDATER, INTERACTIONS), "items": (GROUP_ITEM_ENCODER, ITEMS)}


def fuzzed(rng: random.Random, n: int) -> list[tuple[str, bytes | None]]:
    """``n`` malformed (topic, value) records, of every kind the decoders must refuse."""
    good_item = {"item_id": "i", "title": "t"}
    good_click = {"event_id": "e", "user_id": "u", "item_id": "i"}
    kinds = [
        lambda: rng.randbytes(rng.randint(1, 64)).replace(b"{", b"(") + b"\xff",  # not UTF-8
        lambda: None,  # a null value on interactions
        lambda: json.dumps(rng.choice([[1, 2], 3, "text", True, None])).encode(),  # not an object
        lambda: json.dumps(dict(list(good_click.items())[: rng.randint(0, 2)])).encode(),  # fields missing
        lambda: json.dumps(good_click | {"timestamp": rng.choice(["soon", -1, 1e400])}).encode(),
        lambda: json.dumps(good_click | {"user_id": rng.choice(["", "a b", "x" * 200, 7])}).encode(),
        lambda: json.dumps(good_click | {"action": "teleport"}).encode(),
        lambda: json.dumps(good_click | {"schema_version": rng.randint(2, 9)}).encode(),
        lambda: json.dumps(good_click)[: rng.randint(1, 20)].encode(),  # truncated
        lambda: b'{"pad": "' + b"x" * (65 * 1024) + b'"}',  # over the size limit
    ]
    item_kinds = [
        lambda: json.dumps(good_item | {"title": rng.choice(["", "   ", 5])}).encode(),
        lambda: json.dumps(good_item | {"price": -0.01 - rng.random()}).encode(),
        lambda: json.dumps(good_item | {"attributes": {f"k{i}": "v" for i in range(60)}}).encode(),
        lambda: json.dumps({"title": "no id"}).encode(),
    ]
    out = []
    for _ in range(n):
        if rng.random() < 0.3:
            out.append((ITEMS, rng.choice(item_kinds)()))
        else:
            out.append((INTERACTIONS, rng.choice(kinds)()))
    return out


class Load:
    """Steady interactions and new items until stopped; remembers what it produced."""

    def __init__(self, settings: Settings, rate: float, users: int = 50) -> None:
        self.settings, self.rate, self.users = settings, rate, users
        self.sent: list[InteractionEvent] = []
        self.items: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        producer = make_producer(self.settings)
        k, started = 0, time.monotonic()
        while not self.stop.is_set():
            event = InteractionEvent(event_id=f"e{k}", user_id=f"u{k % self.users}", item_id=f"x{k}")
            producer.send(topic_name(self.settings, INTERACTIONS), key=event.key, value=event.to_bytes())
            self.sent.append(event)
            if k % 10 == 0:
                item = ItemEvent(item_id=f"item-{k // 10}", title=f"a thing called {k // 10} in series {k % 7}")
                producer.send(topic_name(self.settings, ITEMS), key=item.key, value=item.to_bytes())
                self.items.append(item.item_id)
            k += 1
            self.stop.wait(max(0.0, started + k / self.rate - time.monotonic()))
        producer.flush()
        producer.close()


def _offsets(settings: Settings, group: str | None, topic: str) -> dict[int, int]:
    """End offsets (``group`` None) or the group's committed offsets, per partition."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group,
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if group is None:
            return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
        return {tp.partition: consumer.committed(tp) or 0 for tp in tps}
    finally:
        consumer.close()


def _caught_up(settings: Settings, targets: dict[str, dict[int, int]]) -> bool:
    for name, (group, base) in WORKERS.items():
        committed = _offsets(settings, group_name(settings, group), topic_name(settings, base))
        if any(committed.get(p, 0) < end for p, end in targets[name].items()):
            return False
    return not make_redis(settings).exists(RedisKeys.from_settings(settings).rebuilding())


def _ends(settings: Settings) -> dict[str, dict[int, int]]:
    return {name: _offsets(settings, None, topic_name(settings, base)) for name, (_, base) in WORKERS.items()}


def _wait(predicate, timeout_s: float) -> float | None:
    """Seconds until ``predicate`` held, or None after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return round(time.monotonic() - started, 2)
        time.sleep(0.2)
    return None


def _counts(settings: Settings, load: Load) -> dict:
    """Exactly once, lost, twice (histories); items without a vector under the current version."""
    client, keys = make_redis(settings), RedisKeys.from_settings(settings)
    applied: Counter[str] = Counter()
    for user in {e.user_id for e in load.sent}:
        applied.update(i.decode() for i in client.lrange(keys.history(user), 0, -1))
    produced = [e.item_id for e in load.sent]
    current = client.get(keys.model_current())
    vectors = set(client.hkeys(keys.vectors(current.decode()))) if current else set()
    return {
        "events_produced": len(produced),
        "applied_once": sum(1 for i in produced if applied[i] == 1),
        "lost": sum(1 for i in produced if applied[i] == 0),
        "applied_twice": sum(1 for i in produced if applied[i] > 1),
        "items_produced": len(load.items),
        "items_without_vectors": sum(1 for i in load.items if i.encode() not in vectors),
    }


def run_cell(cell: str, base: Settings, folder: Path, seconds: float, rate: float, fuzz: int) -> dict:
    run = f"chaos-{cell}-{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(update={"topic_prefix": f"{run}.", "redis_prefix": f"learnrec:{run}",
                                       "model_dir": folder / run / "models"})
    ensure_topics(settings)
    env = process_env(settings) | {"LEARNREC_HISTORY_LENGTH": "1000000", "HF_HUB_OFFLINE": "1"}

    def worker(name: str, n: int = 0) -> Component:
        component = Component(f"{name}-{n}", ["stream", name], env, folder / run / f"{name}-{n}.log")
        component.start()
        return component

    fleet = {"history": worker("history"), "items": worker("items")}
    extra: list[Component] = []
    load = Load(settings, rate)
    result: dict = {"cell": cell}
    try:
        if cell == "fuzz":
            producer = make_producer(settings)
            for n, (base_topic, value) in enumerate(fuzzed(random.Random(0), fuzz)):
                producer.send(topic_name(settings, base_topic), key=f"fuzz-{n}".encode(), value=value)
            producer.flush()
        load.thread.start()
        time.sleep(seconds / 2)
        fault_at = time.monotonic()
        if cell in ("kill-history", "kill-items"):
            victim = fleet[cell.removeprefix("kill-")]
            os.kill(victim.process.pid, signal.SIGKILL)
            victim.process.wait()
            time.sleep(1.0)
            fleet[cell.removeprefix("kill-")] = worker(cell.removeprefix("kill-"), 1)
        elif cell == "join-leave":
            extra = [worker("history", 1), worker("items", 1)]
        elif cell == "wipe-redis":
            client, keys = make_redis(settings), RedisKeys.from_settings(settings)
            client.delete(*client.scan_iter(match=keys.pattern_all(), count=1000))
            _wait(lambda: client.exists(keys.epoch()), 60)  # a worker noticed: the replay began
        ends = _ends(settings)  # the backlog at the fault (and restart): recovered once consumed
        caught = _wait(lambda: _caught_up(settings, ends), 300)
        result["recovery_s"] = None if caught is None else round(time.monotonic() - fault_at, 2)
        if cell == "join-leave":
            time.sleep(seconds / 4)
            for component in extra:
                component.stop()
        time.sleep(max(0.0, seconds / 2 - (time.monotonic() - fault_at)))
        load.stop.set()
        load.thread.join()
        result["settled_s"] = _wait(lambda: _caught_up(settings, _ends(settings)), 300)
        result |= _counts(settings, load)
        result["workers_alive"] = all(c.alive() for c in fleet.values())
        if cell == "fuzz":
            result |= _dead_letters(settings, fuzz)
    finally:
        load.stop.set()
        for component in [*extra, *fleet.values()]:
            component.stop()
    print(json.dumps(result), flush=True)
    return result


def _dead_letters(settings: Settings, expected: int) -> dict:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False)
    topic = topic_name(settings, DEAD_LETTER)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records, deadline = [], time.monotonic() + 60
    while len(records) < expected and time.monotonic() < deadline:
        for part in consumer.poll(timeout_ms=500).values():
            records.extend(part)
    consumer.close()
    reasons = Counter(dict(r.headers).get("dlq.reason", b"").decode()[:40] for r in records)
    return {"fuzzed": expected, "dead_letters": len(records),
            "dead_letters_with_reason": sum(1 for r in records if dict(r.headers).get("dlq.reason")),
            "top_reasons": reasons.most_common(8)}


def markdown(cells: list[dict]) -> str:
    cols = ("events_produced", "applied_once", "lost", "applied_twice", "items_produced",
            "items_without_vectors", "recovery_s", "workers_alive")
    lines = ["# Chaos matrix", "", "| cell | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {c['cell']} | " + " | ".join(str(c.get(k)) for k in cols) + " |" for c in cells]
    fuzz = next((c for c in cells if c["cell"] == "fuzz"), None)
    if fuzz:
        lines += ["", f"Fuzz: {fuzz['dead_letters_with_reason']} of {fuzz['fuzzed']} malformed events in the "
                  f"dead letters with a reason ({fuzz['dead_letters']} dead letters in all)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per cell")
    parser.add_argument("--rate", type=float, default=100.0, help="interactions per second")
    parser.add_argument("--fuzz", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    base = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        cells = [run_cell(c, base, Path(tmp), args.seconds, args.rate, args.fuzz) for c in args.cells.split(",")]
    result = {"cells": cells, "seconds": args.seconds, "rate": args.rate, "machine": {"cpus": os.cpu_count()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chaos.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "chaos.md").write_text(markdown(cells))
    print(markdown(cells))
    return cells


if __name__ == "__main__":
    main()
