"""The end-to-end demo run: start the components, replay the data, watch, report, stop.

Every run gets its own topic and Redis key prefix (``demo-<run id>``), so runs never see each
other's state and nothing needs cleaning first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from learnrec.client import EventProducer
from learnrec.demo.frozen import FrozenVersion
from learnrec.demo.metrics import DemoMetrics
from learnrec.demo.new_items import NewItemRanks, story
from learnrec.demo.prequential import PrequentialScorer
from learnrec.demo.probes import (
    AnnouncementWatcher,
    ColdStartProbe,
    GroupOffsets,
    ServingClient,
    collect_user_examples,
    count_dead_letters,
)
from learnrec.demo.processes import Component, Fleet, free_port
from learnrec.demo.report import write_report
from learnrec.demo.sources import DemoData
from learnrec.demo.status import StatusDisplay
from learnrec.shared.config import Settings, process_env
from learnrec.shared.kafka_io import ensure_topics, make_producer
from learnrec.shared.model_versions import ModelRegistry
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import ItemEvent
from learnrec.shared.topics import (
    GROUP_HISTORY_UPDATER,
    GROUP_TRAINER,
    INTERACTIONS,
    ITEMS,
    group_name,
    topic_name,
)
from learnrec.trainer.gate import decisions


@dataclass(frozen=True)
class DemoOptions:
    rate: float = 60.0               # events published per second during the replay
    publish_every_s: float = 20.0    # the trainer's publishing cadence
    pretrain_minutes: float = 1.5    # offline training on the history before the demo; 0 = none
    keep_serving: bool = False
    report_dir: Path = Path("reports")
    user_examples: int = 3


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
        self.port = free_port()
        self.metrics = DemoMetrics(gate_events=self.settings.trainer_gate_events)
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
                [sys.executable, "-m", "learnrec.cli", "train", "offline", "--data", str(log), "--out", str(out),
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
        producer = EventProducer(self.settings)
        trainer = GroupOffsets(self.settings, group_name(self.settings, GROUP_TRAINER),
                               topic_name(self.settings, INTERACTIONS))
        watcher = AnnouncementWatcher(self.redis, self.keys, self.metrics, trainer)
        watcher.start()
        client = ServingClient(f"http://127.0.0.1:{self.port}", self.metrics)
        try:
            self._start_components(self._pretrain())
            self._publish_catalogue(producer, watcher)
            self._publish_history(producer)
            self.fleet.wait_until(client.ready, 120, "the serving API to be ready")
            self._replay(producer, watcher, client, self._freeze_current_version())
            self._await_learned_version(watcher)
            collect_user_examples(client, self.redis, self.keys, self.metrics, self.titles, self.new_items,
                                  self.options.user_examples)
            self.metrics.dead_letters = count_dead_letters(self.settings)
        finally:
            producer.close()
            self._collect_gate_decisions()
            self.metrics.new_item = story(self.metrics, self.titles)
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
        summary = self.metrics.summary()  # the long lists are in the report and summary.json
        summary["gate"].pop("decisions")
        summary["new_item_ranks"].pop("most_clicked")
        self.console.print(json.dumps(summary, indent=2))
        self.console.print(f"report: [bold]{report}[/]")
        return report

    def _publish_catalogue(self, producer: EventProducer, watcher: AnnouncementWatcher) -> None:
        items = self.data.catalogue
        self.console.print(f"publishing the initial catalogue: {len(items)} items")
        for item in items:
            watcher.expect(item.item_id, time.time())
            producer.publish_item(item)
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

    def _publish_history(self, producer: EventProducer) -> None:
        """The interactions from before the demo go through Kafka too, so the history updater has
        every user's recent history and the trainer keeps learning from them; wait until the
        history updater has applied them all."""
        if not self.data.history:
            return
        topic = topic_name(self.settings, INTERACTIONS)
        for event in self.data.history:
            producer.publish_interaction(event)
        producer.flush()
        self.metrics.interactions_published_before = len(self.data.history)
        reader = GroupOffsets(self.settings, group_name(self.settings, GROUP_HISTORY_UPDATER), topic)
        try:
            ends = reader.ends()
            with Progress(TextColumn("applying the history"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=self.console) as progress:
                task = progress.add_task("history", total=sum(ends.values()))

                def applied() -> bool:
                    done = sum(min(offset, ends[tp]) for tp, offset in reader.committed().items())
                    progress.update(task, completed=done)
                    return done >= sum(ends.values())

                self.fleet.wait_until(applied, 600, "the history updater to apply the history")
        finally:
            reader.close()

    def _freeze_current_version(self) -> FrozenVersion:
        """A private copy of the version serving as the live stream begins (the offline
        pre-trained one, unless the trainer published during the history), with the catalogue."""
        registry = ModelRegistry.from_settings(self.settings, self.redis)
        info = registry.info(registry.current())
        with self.console.status(f"copying version {info.version} and projecting the catalogue with it"):
            frozen = FrozenVersion(info, self.folder / "frozen", self.redis, self.keys)
            frozen.sync(self.redis.scard(self.keys.items()))
        self.metrics.frozen_version = info.version
        self.console.print(f"frozen copy of version {info.version} ({info.source}): {len(frozen)} items")
        return frozen

    def _replay(self, producer: EventProducer, watcher: AnnouncementWatcher, client: ServingClient, frozen: FrozenVersion) -> None:
        scorer = PrequentialScorer(client, self.redis, self.keys, self.metrics, frozen,
                                   [event.item_id for event in self.data.history])
        ranks = NewItemRanks(client, self.redis, self.keys, self.metrics, watcher.announced)
        cold_start = ColdStartProbe(client, watcher, self.metrics, self.titles)
        interval = 1.0 / self.options.rate
        next_send = time.monotonic()
        self.metrics.stream_started_at = time.time()
        malformed_at = len(self.data.stream) // 2
        with StatusDisplay(self.console, self.metrics, len(self.data.catalogue) + len(self.data.stream)) as status:
            for index, event in enumerate(self.data.stream):
                if index == malformed_at:
                    self._publish_malformed()
                delay = next_send - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_send += interval
                if isinstance(event, ItemEvent):
                    self.new_items.add(event.item_id)
                    ranks.arrived(event.item_id)
                    now = time.time()
                    cold_start.published(event.item_id, now)
                    watcher.expect(event.item_id, now)
                    producer.publish_item(event)
                    producer.flush()
                    self.metrics.items_published += 1
                else:
                    position = self.metrics.interactions_published
                    history = scorer.score(event, position)
                    if history is not None:
                        ranks.probe(event, position, history)
                    cold_start.check()
                    producer.publish_interaction(event)
                    scorer.clicked(event.item_id)
                    cold_start.clicked(event.user_id, event.item_id)
                    self.metrics.interactions_published += 1
                status.update(watcher.current_version)
                self.fleet.check()
            scorer.flush()
            producer.flush()

    def _await_learned_version(self, watcher: AnnouncementWatcher, timeout_s: float = 180.0) -> None:
        """Wait (bounded) until the trainer has published a version learned from the live stream,
        so that every run shows the model changing under the running system."""
        started = time.monotonic()
        with self.console.status("waiting for the trainer to publish a version learned from the stream"):
            while time.monotonic() - started < timeout_s:
                if watcher.current_version not in (None, self.metrics.frozen_version):
                    return
                self.fleet.check()
                time.sleep(0.5)
        self.console.print(f"[yellow]no new model version within {timeout_s:.0f}s; see logs/trainer.log[/]")

    def _publish_malformed(self) -> None:
        """Two bad events mid-stream: they must land in the dead-letter topic, nothing stops.
        Sent by a bare Kafka producer: learnrec.client would refuse them before sending."""
        producer = make_producer(self.settings)
        producer.send(topic_name(self.settings, INTERACTIONS), key=b"demo", value=b'{"user_id": "demo"}')
        producer.send(topic_name(self.settings, ITEMS), key=b"bad-item", value=b"not json at all")
        producer.flush()
        producer.close()
        self.metrics.malformed_published += 2

    def _collect_gate_decisions(self) -> None:
        """The publish gate's decisions, as the trainer kept them in Redis."""
        try:
            self.metrics.gate_decisions = decisions(self.redis, self.keys)
        except Exception as err:  # the report is written even when Redis is gone
            self.console.print(f"[yellow]could not read the publish-gate decisions: {err}[/]")
