"""Faults under a steady load, and what each cost: lost, applied twice, items without vectors.

    python -m bench.chaos                    # every cell, about 10 minutes
    python -m bench.chaos --cells fuzz --fuzz 10000

Every cell starts the whole system as real processes under a fresh topic and key prefix: the
item encoder (the default MiniLM), the history updater, the online trainer (with its audit of
how often each event was trained) and serving, on the real broker and Redis. An event load
publishes clicks on published items and a new item with every tenth click; a request load asks
serving for recommendations. Halfway through, the cell's fault:

- ``kill-history`` / ``kill-items`` / ``kill-trainer`` / ``kill-serving``: ``kill -9`` of that
  process, restarted a second later;
- ``join-leave``: a second replica of each stream worker joins, and leaves later (rebalances);
- ``broker-restart``: the broker stops and starts again (the local launcher's; data kept);
- ``wipe-redis``: every key of the prefix is deleted (the workers rebuild it: shared/rebuild.py);
- ``redis-pause``: Redis stops answering for 30 s (SIGSTOP, then SIGCONT);
- ``fuzz``: ``--fuzz`` malformed events of every kind among the valid ones.

Per cell: events produced (acknowledged by the broker), applied exactly once to the histories,
lost, applied twice; the same for the trainer (its audit); items without a vector under the
current version after recovery; API requests that failed; the recovery time (from the fault
until every group committed past the topics' end offsets just after it and serving is ready).
Writes ``bench/results/chaos.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.chaos_load import EventLoad, RequestLoad, dead_letters, fuzzed, history_tally, offsets
from devtools.local_services import LocalServices
from learnrec.demo.processes import Component, free_port
from learnrec.shared.config import Settings, process_env
from learnrec.shared.kafka_io import ensure_topics, make_producer
from learnrec.shared.model import checkpoint
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.topics import (
    GROUP_HISTORY_UPDATER,
    GROUP_ITEM_ENCODER,
    GROUP_TRAINER,
    INTERACTIONS,
    ITEMS,
    group_name,
    topic_name,
)

RESULTS = Path(__file__).resolve().parent / "results"
CELLS = ("kill-history", "kill-items", "kill-trainer", "kill-serving", "join-leave", "broker-restart",
         "wipe-redis", "redis-pause", "fuzz")
GROUPS = ((GROUP_HISTORY_UPDATER, INTERACTIONS), (GROUP_ITEM_ENCODER, ITEMS), (GROUP_TRAINER, INTERACTIONS))
COMMANDS = {"history": ["stream", "history"], "items": ["stream", "items"], "trainer": ["train", "online"],
            "serving": ["serve"]}


class System:
    """The four components of one cell, as processes."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings, self.folder = settings, folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.checkpoint = folder / "trainer.ckpt"
        self.env = process_env(settings) | {
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "LEARNREC_HISTORY_LENGTH": "1000000", "LEARNREC_SERVING_PORT": str(self.port),
            "LEARNREC_TRAINER_AUDIT": "true", "LEARNREC_TRAINER_CHECKPOINT": str(self.checkpoint),
            "LEARNREC_TRAINER_CHECKPOINT_EVERY": "300", "LEARNREC_TRAINER_GATE_EVENTS": "0",
            "LEARNREC_TRAINER_PUBLISH_EVERY_S": "15",
        }
        self.running: dict[str, Component] = {}
        self.extra: list[Component] = []
        self.starts = 0

    def start(self, name: str) -> Component:
        self.starts += 1
        component = Component(f"{name}-{self.starts}", COMMANDS[name], self.env, self.folder / f"{name}-{self.starts}.log")
        component.start()
        return component

    def kill(self, name: str) -> None:
        """``kill -9``, and a new process a second later."""
        victim = self.running[name]
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait()
        time.sleep(1.0)
        self.running[name] = self.start(name)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def caught_up(self, ends: dict[tuple[str, str], dict[int, int]]) -> bool:
        for (group, base), end in ends.items():
            committed = offsets(self.settings, group_name(self.settings, group), topic_name(self.settings, base))
            if any(committed.get(p, 0) < offset for p, offset in end.items()):
                return False
        return self.ready() and not make_redis(self.settings).exists(RedisKeys.from_settings(self.settings).rebuilding())

    def ends(self) -> dict[tuple[str, str], dict[int, int]]:
        return {(g, t): offsets(self.settings, None, topic_name(self.settings, t)) for g, t in GROUPS}

    def stop(self) -> None:
        for component in [*self.extra, *reversed(list(self.running.values()))]:
            component.stop()


def _wait(predicate, timeout_s: float) -> float | None:
    """Seconds until ``predicate`` held, or None after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return round(time.monotonic() - started, 2)
        time.sleep(0.25)
    return None


def _fault(cell: str, system: System) -> None:
    settings = system.settings
    if cell.startswith("kill-"):
        system.kill(cell.removeprefix("kill-"))
    elif cell == "join-leave":
        system.extra = [system.start("history"), system.start("items")]
    elif cell == "broker-restart":
        services = LocalServices(settings)
        if not services.stop("kafka"):
            raise SystemExit("broker-restart needs the broker of `learnrec services up`")
        time.sleep(2.0)
        services.up()
    elif cell == "wipe-redis":
        client, keys = make_redis(settings), RedisKeys.from_settings(settings)
        client.delete(keys.epoch())  # first, as `learnrec rebuild` does: history writes stop
        client.delete(*client.scan_iter(match=keys.pattern_all(), count=1000))
        _wait(lambda: client.exists(keys.epoch()), 60)  # a worker noticed: the replay began
    elif cell == "redis-pause":
        pid = int(make_redis(settings).info("server")["process_id"])
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(30.0)
        finally:
            os.kill(pid, signal.SIGCONT)


def _trainer_tally(system: System, load: EventLoad) -> dict:
    _, extra = checkpoint.load(system.checkpoint)
    audit = extra.get("audit", {})
    counts = [audit.get(e.event_id, 0) for e in load.acked]
    return {"trained_once": counts.count(1), "trainer_lost": counts.count(0),
            "trained_twice": sum(1 for n in counts if n > 1)}


def run_cell(cell: str, base: Settings, folder: Path, seconds: float, rate: float, fuzz: int) -> dict:
    run = f"chaos-{cell}-{uuid.uuid4().hex[:6]}"
    settings = base.replace(topic_prefix=f"{run}.", redis_prefix=f"learnrec:{run}",
                                       model_dir=folder / run / "models")
    ensure_topics(settings)
    system = System(settings, folder / run)
    load = EventLoad(settings, rate, catalogue=True)
    requests = RequestLoad(system.url, rate=20)
    result: dict = {"cell": cell}
    try:
        for name in ("items", "history", "trainer", "serving"):
            system.running[name] = system.start(name)
        if cell == "fuzz":
            producer = make_producer(settings)
            for n, (topic, value) in enumerate(fuzzed(random.Random(0), fuzz)):
                producer.send(topic_name(settings, topic), key=f"fuzz-{n}".encode(), value=value)
            producer.flush()
        if _wait(system.ready, 180) is None:
            raise RuntimeError(f"{cell}: serving never became ready; logs in {system.folder}")
        load.thread.start()
        requests.thread.start()
        time.sleep(seconds / 2)
        fault_at = time.monotonic()
        _fault(cell, system)
        ends = system.ends()  # the backlog just after the fault: recovered once consumed
        caught = _wait(lambda: system.caught_up(ends), 300)
        result["recovery_s"] = None if caught is None else round(time.monotonic() - fault_at, 2)
        if cell == "join-leave":
            time.sleep(seconds / 4)
            for component in system.extra:
                component.stop()
        time.sleep(max(0.0, seconds / 2 - (time.monotonic() - fault_at)))
        load.stop.set()
        load.thread.join()
        requests.stop.set()
        requests.thread.join()
        result["settled"] = _wait(lambda: system.caught_up(system.ends()), 300) is not None
        result |= history_tally(settings, load)
        result |= {"requests_ok": requests.ok, "requests_failed": requests.failed}
        result["processes_alive"] = all(c.alive() for c in system.running.values())
        if cell == "fuzz":
            result |= dead_letters(settings, fuzz)
    finally:
        load.stop.set()
        requests.stop.set()
        system.stop()  # the trainer writes its last checkpoint on SIGTERM
    result |= _trainer_tally(system, load)
    print(json.dumps(result), flush=True)
    return result


def markdown(cells: list[dict]) -> str:
    cols = ("events_produced", "applied_once", "lost", "applied_twice", "trained_once", "trainer_lost",
            "trained_twice", "items_without_vectors", "requests_failed", "recovery_s")
    lines = ["# Chaos matrix", "", "| cell | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {c['cell']} | " + " | ".join(str(c.get(k)) for k in cols) + " |" for c in cells]
    fuzz = next((c for c in cells if c["cell"] == "fuzz"), None)
    if fuzz:
        lines += ["", f"Fuzz: {fuzz['distinct_events_dead_lettered']} of {fuzz['fuzzed']} malformed events in the "
                  f"dead letters; {fuzz['dead_letters_with_reason']} of {fuzz['dead_letters']} dead letters carry "
                  f"a reason (by stage: {fuzz['by_stage']}: the trainer reads interactions too and "
                  f"dead-letters its own copy); processes alive: {fuzz['processes_alive']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--seconds", type=float, default=20.0, help="event load per cell")
    parser.add_argument("--rate", type=float, default=100.0, help="clicks per second")
    parser.add_argument("--fuzz", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    base = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        cells = [run_cell(c, base, Path(tmp), args.seconds, args.rate, args.fuzz) for c in args.cells.split(",")]
    result = {"cells": cells, "seconds": args.seconds, "rate": args.rate, "request_rate": 20,
              "machine": {"cpus": os.cpu_count()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chaos.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "chaos.md").write_text(markdown(cells))
    print(markdown(cells))
    return cells


if __name__ == "__main__":
    main()
