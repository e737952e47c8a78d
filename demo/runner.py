"""The end-to-end demo run: start the components, replay the data, watch, report, stop.

Every run gets its own topic and Redis key prefix (``demo-<run id>``), so runs never see each
other's state and nothing needs cleaning first.
"""

from __future__ import annotations

import heapq
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from demo.metrics import ColdStartExample, DemoMetrics, UserExample
from demo.probes import AnnouncementWatcher, ServingClient
from demo.processes import Component, Fleet
from demo.report import write_report
from demo.sources import DemoData
from shared.config import Settings, process_env
from shared.kafka_io import ensure_topics, make_producer
from shared.redis_client import make_redis
from shared.redis_keys import RedisKeys
from shared.schemas import InteractionEvent, ItemEvent
from shared.topics import (
    DEAD_LETTER,
    GROUP_HISTORY_UPDATER,
    INTERACTIONS,
    ITEMS,
    group_name,
    topic_name,
)


@dataclass(frozen=True)
class DemoOptions:
    rate: float = 60.0               # events published per second during the replay
    publish_every_s: float = 20.0    # the trainer's publishing cadence
    pretrain_minutes: float = 1.5    # offline training on the history before the demo; 0 = none
    keep_serving: bool = False
    report_dir: Path = Path("reports")
    user_examples: int = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_table(metrics: DemoMetrics, total: int, version: str | None) -> Table:
    summary = metrics.summary()
    table = Table(title="learnrec demo", show_header=False)
    fresh, lat = summary["freshness_ms"], summary["serving_latency_ms"]
    served, popular = metrics.recall(last=500)
    rows = [
        ("elapsed", f"{summary['seconds']} s"),
        ("events published", f"{metrics.items_published + metrics.interactions_published} / {total}"),
        ("model version", version or "-"),
        ("versions published", str(len(metrics.versions))),
        ("freshness p50 / p99", f"{fresh['p50']} / {fresh['p99']} ms"),
        ("serving p50 / p99", f"{lat['p50']} / {lat['p99']} ms ({lat['errors']} errors)"),
        ("Recall@10 (last 500) served / popularity", f"{served:.3f} / {popular:.3f}"),
        ("new items recommended", str(len(metrics.cold_starts))),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


class DemoRun:
    def __init__(self, base: Settings, data: DemoData, options: DemoOptions) -> None:
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.folder = options.report_dir / f"demo-{self.run_id}"
        self.settings = base.model_copy(update={
            "topic_prefix": f"{base.topic_prefix}demo-{self.run_id}.",
            "redis_prefix": f"{base.redis_prefix}:demo-{self.run_id}",
            "model_dir": self.folder / "models",
        })
        self.data = data
        self.options = options
        self.port = _free_port()
        self.metrics = DemoMetrics()
        self.redis = make_redis(self.settings)
        self.keys = RedisKeys.from_settings(self.settings)
        self.fleet = Fleet()
        self.console = Console()
        self.titles = data.titles
        self.new_items: set[str] = set()

    # ------------------------------------------------------------------ components
    def _pretrain(self) -> dict[str, str]:
        """Train the first model offline on the history (``learnrec train offline``), as a real
        deployment starts from one; returns the settings that make it the bootstrap version and
        the online trainer's starting point."""
        if self.options.pretrain_minutes <= 0 or not self.data.history:
            return {}
        log = self.folder / "history.jsonl"
        with log.open("wb") as fh:
            for event in [*self.data.catalogue, *self.data.history]:
                fh.write(event.to_bytes() + b"\n")
        self.console.print(f"pre-training offline on {len(self.data.history)} past interactions "
                           f"(at most {self.options.pretrain_minutes} min)")
        out = self.folder / "offline"
        with self.console.status(f"training offline (log: {self.folder / 'offline.log'})"):
            subprocess.run(
                [sys.executable, "-m", "shared.cli", "train", "offline", "--data", str(log), "--out", str(out),
                 "--max-minutes", str(self.options.pretrain_minutes)],
                check=True, env={**os.environ, **self._env({})}, stdout=open(self.folder / "offline.log", "wb"),
                stderr=subprocess.STDOUT,
            )
        (checkpoint,) = sorted((out / "checkpoints").glob("*.pt"))
        version = out / checkpoint.stem
        self.console.print(f"offline model {checkpoint.stem} ready")
        return {"LEARNREC_BOOTSTRAP_MODEL": str(version.resolve()),
                "LEARNREC_TRAINER_INIT": str(checkpoint.resolve())}

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        return extra | process_env(self.settings) | {
            "LEARNREC_SERVING_PORT": str(self.port),
            "LEARNREC_TRAINER_PUBLISH_EVERY_S": str(self.options.publish_every_s),
            "LEARNREC_TRAINER_CHECKPOINT": str((self.folder / "trainer" / "online.ckpt").resolve()),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }

    def _start_components(self, pretrained: dict[str, str]) -> None:
        env = self._env(pretrained)
        logs = self.folder / "logs"
        for name, argv in (
            ("history-updater", ["stream", "history"]),
            ("item-encoder", ["stream", "items"]),
            ("trainer", ["train", "online"]),
            ("serving", ["serve", "--port", str(self.port)]),
        ):
            self.fleet.start(Component(name, argv, env, logs / f"{name}.log"))
            self.console.print(f"started {name}")

    # ------------------------------------------------------------------ the run
    def run(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        created = ensure_topics(self.settings)
        self.console.print(f"run {self.run_id}: data [bold]{self.data.name}[/], topics {', '.join(created)}")
        producer = make_producer(self.settings)
        watcher = AnnouncementWatcher(self.redis, self.keys, self.metrics)
        watcher.start()
        client = ServingClient(f"http://127.0.0.1:{self.port}", self.metrics)
        try:
            self._start_components(self._pretrain())
            self._publish_catalogue(producer, watcher)
            self._publish_history(producer)
            self.fleet.wait_until(client.ready, 120, "the serving API to be ready")
            self._replay(producer, watcher, client)
            self._await_learned_version(watcher)
            self._collect_user_examples(client, watcher)
            self.metrics.dead_letters = self._count_dead_letters()
        finally:
            producer.close()
            report = write_report(self.metrics, self.folder, f"learnrec demo {self.run_id} ({self.data.name})")
            if self.options.keep_serving:
                self.console.print(f"serving stays up at http://127.0.0.1:{self.port} (Ctrl-C to stop)")
                try:
                    while self.fleet.components[-1].alive():
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
            watcher.stop()
            client.close()
            codes = self.fleet.stop()
            self.console.print(f"components stopped: {codes}")
        self.console.print(json.dumps(self.metrics.summary(), indent=2))
        self.console.print(f"report: [bold]{report}[/]")
        return report

    def _publish_catalogue(self, producer, watcher: AnnouncementWatcher) -> None:
        items = self.data.catalogue
        self.console.print(f"publishing the initial catalogue: {len(items)} items")
        for item in items:
            watcher.expect(item.item_id, time.time())
            producer.send(topic_name(self.settings, ITEMS), key=item.key, value=item.to_bytes())
        producer.flush()
        self.metrics.items_published += len(items)
        started = time.monotonic()
        with Progress(TextColumn("encoding the catalogue"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=self.console) as progress:
            task = progress.add_task("encode", total=len(items))

            def all_announced() -> bool:
                progress.update(task, completed=min(len(watcher.announced), len(items)))
                return len(watcher.announced) >= len(items)

            self.fleet.wait_until(all_announced, 600, "the catalogue to be encoded")
        self.console.print(f"catalogue encoded and servable in {time.monotonic() - started:.1f}s")
        # Freshness counts only items arriving during the live stream, not the initial bulk load.
        self.metrics.freshness_ms.clear()

    def _publish_history(self, producer) -> None:
        """The interactions from before the demo go through Kafka too, so the history updater has
        every user's recent history and the trainer keeps learning from them; wait until the
        history updater has applied them all."""
        if not self.data.history:
            return
        topic = topic_name(self.settings, INTERACTIONS)
        for event in self.data.history:
            producer.send(topic, key=event.key, value=event.to_bytes())
        producer.flush()
        self.metrics.interactions_published_before = len(self.data.history)
        # A consumer that names the group but never subscribes only reads its committed offsets.
        reader = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                               group_id=group_name(self.settings, GROUP_HISTORY_UPDATER),
                               enable_auto_commit=False)
        try:
            partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or []]
            ends = reader.end_offsets(partitions)
            total = sum(ends.values())
            with Progress(TextColumn("applying the history"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=self.console) as progress:
                task = progress.add_task("history", total=total)

                def applied() -> bool:
                    done = sum(min(reader.committed(tp) or 0, ends[tp]) for tp in partitions)
                    progress.update(task, completed=done)
                    return done >= total

                self.fleet.wait_until(applied, 600, "the history updater to apply the history")
        finally:
            reader.close()

    def _replay(self, producer, watcher: AnnouncementWatcher, client: ServingClient) -> None:
        counts: Counter[str] = Counter(event.item_id for event in self.data.history)
        last_click: dict[str, str] = {}
        clicks_of: dict[str, list[str]] = defaultdict(list)
        for event in self.data.history:
            clicks_of[event.user_id].append(event.item_id)
        published_at: dict[str, float] = {}
        total = len(self.data.catalogue) + len(self.data.stream)
        interval = 1.0 / self.options.rate
        next_send = time.monotonic()
        live = Live(_status_table(self.metrics, total, None), console=self.console, refresh_per_second=2,
                    transient=False) if self.console.is_terminal else None
        last_print = 0.0
        if live:
            live.start()
        try:
            malformed_at = len(self.data.stream) // 2
            for position, event in enumerate(self.data.stream):
                if position == malformed_at:
                    self._publish_malformed(producer)
                delay = next_send - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_send += interval
                if isinstance(event, ItemEvent):
                    self.new_items.add(event.item_id)
                    published_at[event.item_id] = time.time()
                    watcher.expect(event.item_id, published_at[event.item_id])
                    producer.send(topic_name(self.settings, ITEMS), key=event.key, value=event.to_bytes())
                    producer.flush()
                    self.metrics.items_published += 1
                else:
                    self._score(event, client, counts, clicks_of)
                    self._probe_cold_start(client, watcher, published_at, last_click)
                    producer.send(topic_name(self.settings, INTERACTIONS), key=event.key, value=event.to_bytes())
                    counts[event.item_id] += 1
                    last_click[event.user_id] = event.item_id
                    clicks_of[event.user_id].append(event.item_id)
                    self.metrics.interactions_published += 1
                if live:
                    live.update(_status_table(self.metrics, total, watcher.current_version))
                elif time.monotonic() - last_print > 10:
                    last_print = time.monotonic()
                    self.console.print(_status_table(self.metrics, total, watcher.current_version))
                self.fleet.check()
            producer.flush()
        finally:
            if live:
                live.stop()

    def _await_learned_version(self, watcher: AnnouncementWatcher, timeout_s: float = 180.0) -> None:
        """Wait (bounded) until the trainer has published a version learned from the live stream,
        so that every run shows the model changing under the running system."""
        first = self.metrics.versions[0][1] if self.metrics.versions else None
        started = time.monotonic()
        with self.console.status("waiting for the trainer to publish a version learned from the stream"):
            while time.monotonic() - started < timeout_s:
                if watcher.current_version not in (None, first):
                    return
                self.fleet.check()
                time.sleep(0.5)
        self.console.print(f"[yellow]no new model version within {timeout_s:.0f}s; see logs/trainer.log[/]")

    def _publish_malformed(self, producer) -> None:
        """Two bad events mid-stream: they must land in the dead-letter topic, nothing stops."""
        producer.send(topic_name(self.settings, INTERACTIONS), key=b"demo", value=b'{"user_id": "demo"}')
        producer.send(topic_name(self.settings, ITEMS), key=b"bad-item", value=b"not json at all")
        self.metrics.malformed_published += 2

    def _count_dead_letters(self) -> int:
        """Distinct events in the dead-letter topic (every consumer group that rejects an event
        writes its own record, tagged with its stage)."""
        from kafka import KafkaConsumer, TopicPartition

        from shared.dead_letter import DeadLetter

        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                 enable_auto_commit=False)
        try:
            topic = topic_name(self.settings, DEAD_LETTER)
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            if not partitions:
                return 0
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            sources: set[tuple[str, int, int]] = set()
            deadline = time.monotonic() + 10
            while any(consumer.position(tp) < ends[tp] for tp in partitions) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        letter = DeadLetter.from_record(record)
                        sources.add((letter.source_topic, letter.source_partition, letter.source_offset))
            return len(sources)
        finally:
            consumer.close()

    def _score(self, event: InteractionEvent, client: ServingClient, counts: Counter[str],
               clicks_of: dict[str, list[str]]) -> None:
        """Prequential: before the click is published, was its item in the served top 10?"""
        answer = client.recommend(event.user_id, k=10)
        if answer is None:
            return
        served = {i["item_id"] for i in answer["items"]}
        # Same rule as the API's exclude_seen: the user's recent history (as the stream keeps it).
        seen = set(clicks_of[event.user_id][-self.settings.history_length:])
        popular = heapq.nlargest(10 + len(seen), counts, key=counts.__getitem__)
        popular_top = [i for i in popular if i not in seen][:10]
        position = self.metrics.interactions_published
        self.metrics.add("prequential", (position, event.item_id in served, event.item_id in popular_top))

    def _probe_cold_start(self, client: ServingClient, watcher: AnnouncementWatcher,
                          published_at: dict[str, float], last_click: dict[str, str]) -> None:
        """Just after a new item is announced, ask for the recommendations of users whose last
        click was one of its nearest neighbours: is the new item already among them?"""
        pending = [i for i in published_at if i in watcher.announced]
        for item_id in pending:
            t0 = published_at.pop(item_id)
            neighbours = set(client.similar(item_id, k=5))
            users = [u for u, last in last_click.items() if last in neighbours][:5]
            for user in users:
                answer = client.recommend(user, k=10)
                ids = [i["item_id"] for i in answer["items"]] if answer else []
                if item_id in ids:
                    self.metrics.add("cold_starts", ColdStartExample(
                        item_id=item_id, title=self.titles.get(item_id, item_id), published_at=t0,
                        announced_ms=(watcher.announced[item_id] - t0) * 1000.0, user_id=user,
                        rank=ids.index(item_id) + 1, seconds_after_publish=time.time() - t0))
                    break
            else:
                self.metrics.cold_start_misses += 1

    def _collect_user_examples(self, client: ServingClient, watcher: AnnouncementWatcher) -> None:
        time.sleep(1.0)  # let the history updater apply the last clicks
        users = Counter()
        for key in self.redis.scan_iter(match=self.keys.history("*"), count=1000):
            users[key.decode().rsplit(":", 1)[-1]] = self.redis.llen(key)
        cold_users = [ex.user_id for ex in self.metrics.cold_starts[-2:]]
        chosen = list(dict.fromkeys(cold_users + [u for u, _ in users.most_common(self.options.user_examples)]))
        for user in chosen[: self.options.user_examples + 2]:
            history = [h.decode() for h in self.redis.lrange(self.keys.history(user), -8, -1)]
            answer = client.recommend(user, k=10)
            if not answer:
                continue
            recs = [i["item_id"] for i in answer["items"]]
            self.metrics.users.append(UserExample(
                user_id=user,
                history=[self.titles.get(i, i) for i in history],
                recommendations=[self.titles.get(i, i) for i in recs],
                new_items=[self.titles.get(i, i) for i in recs if i in self.new_items],
                version=answer.get("model_version", "?"),
            ))
