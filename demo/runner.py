"""The end-to-end demo run: start the components, replay the data, watch, report, stop.

Every run gets its own topic and Redis key prefix (``demo-<run id>``), so runs never see each
other's state and nothing needs cleaning first. The steps live beside this module:
``launch`` (pre-training, the component processes), ``initial_load`` (catalogue and history),
``replay`` (the live stream).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from learnrec.client import EventProducer
from learnrec.demo.context import RunContext
from learnrec.demo.initial_load import publish_catalogue, publish_history
from learnrec.demo.launch import component_env, pretrain, start_components
from learnrec.demo.metrics import DemoMetrics
from learnrec.demo.new_items import story
from learnrec.demo.probes import (
    AnnouncementWatcher,
    GroupOffsets,
    ServingClient,
    collect_user_examples,
    count_dead_letters,
)
from learnrec.demo.processes import Fleet, free_port
from learnrec.demo.replay import await_learned_version, freeze_current_version, replay
from learnrec.demo.report import write_report
from learnrec.demo.sources import DemoData
from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.topics import GROUP_TRAINER, INTERACTIONS, group_name, topic_name
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
        folder = options.report_dir / f"demo-{self.run_id}"
        settings = base.replace(
            topic_prefix=f"{base.connection.topic_prefix}demo-{self.run_id}.",
            redis_prefix=f"{base.connection.redis_prefix}:demo-{self.run_id}",
            model_dir=folder / "models",
        )
        self.ctx = RunContext(
            settings=settings,
            folder=folder,
            redis=make_redis(settings),
            keys=RedisKeys.from_settings(settings),
            metrics=DemoMetrics(gate_events=settings.trainer.gate_events),
            fleet=Fleet(),
            console=Console(),
        )
        self.data = data
        self.options = options
        self.port = free_port()
        self.titles = data.titles

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        return component_env(self.ctx, self.port, self.options.publish_every_s, extra)

    def run(self) -> Path:
        ctx = self.ctx
        ctx.folder.mkdir(parents=True, exist_ok=True)
        created = ensure_topics(ctx.settings)
        ctx.console.print(f"run {self.run_id}: data [bold]{self.data.name}[/], topics {', '.join(created)}")
        producer = EventProducer(ctx.settings)
        trainer = GroupOffsets(ctx.settings, group_name(ctx.settings, GROUP_TRAINER),
                               topic_name(ctx.settings, INTERACTIONS))
        watcher = AnnouncementWatcher(ctx.redis, ctx.keys, ctx.metrics, trainer)
        watcher.start()
        client = ServingClient(f"http://127.0.0.1:{self.port}", ctx.metrics)
        try:
            pretrained = pretrain(ctx, self.data, self.options.pretrain_minutes, self._env({}))
            start_components(ctx, self._env(pretrained), self.port)
            publish_catalogue(ctx, self.data.catalogue, producer, watcher)
            publish_history(ctx, self.data.history, producer)
            ctx.fleet.wait_until(client.ready, 120, "the serving API to be ready")
            frozen = freeze_current_version(ctx)
            new_items = replay(ctx, self.data, self.options.rate, self.titles, producer, watcher, client, frozen)
            await_learned_version(ctx, watcher)
            collect_user_examples(client, ctx.redis, ctx.keys, ctx.metrics, self.titles, new_items,
                                  self.options.user_examples)
            ctx.metrics.dead_letters = count_dead_letters(ctx.settings)
        finally:
            producer.close()
            self._collect_gate_decisions()
            ctx.metrics.new_item = story(ctx.metrics, self.titles)
            report = write_report(ctx.metrics, ctx.folder, f"learnrec demo {self.run_id} ({self.data.name})")
            if self.options.keep_serving:
                ctx.console.print(f"serving stays up at http://127.0.0.1:{self.port} (Ctrl-C to stop)")
                try:
                    while ctx.fleet.components[-1].alive():
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
            watcher.stop()
            client.close()
            codes = ctx.fleet.stop()
            ctx.console.print(f"components stopped: {codes}")
        summary = ctx.metrics.summary()  # the long lists are in the report and summary.json
        summary["gate"].pop("decisions")
        summary["new_item_ranks"].pop("most_clicked")
        ctx.console.print(json.dumps(summary, indent=2))
        ctx.console.print(f"report: [bold]{report}[/]")
        return report

    def _collect_gate_decisions(self) -> None:
        """The publish gate's decisions, as the trainer kept them in Redis."""
        try:
            self.ctx.metrics.gate_decisions = decisions(self.ctx.redis, self.ctx.keys)
        except Exception as err:  # the report is written even when Redis is gone
            self.ctx.console.print(f"[yellow]could not read the publish-gate decisions: {err}[/]")
