"""The live stream: freeze the version serving as it begins, replay the events at a fixed
rate while probing the API (prequential scores, new items' ranks, cold start), inject two
malformed events halfway, then wait for a version learned from the stream."""

from __future__ import annotations

import time

from learnrec.client import EventProducer
from learnrec.demo.context import RunContext
from learnrec.demo.frozen import FrozenVersion
from learnrec.demo.new_items import NewItemRanks
from learnrec.demo.prequential import PrequentialScorer
from learnrec.demo.probes import AnnouncementWatcher, ColdStartProbe, ServingClient
from learnrec.demo.sources import DemoData
from learnrec.demo.status import StatusDisplay
from learnrec.shared.kafka_io import make_producer
from learnrec.shared.schemas import ItemEvent
from learnrec.shared.topics import INTERACTIONS, ITEMS, topic_name
from learnrec.versions.registry import ModelRegistry


def freeze_current_version(ctx: RunContext) -> FrozenVersion:
    """A private copy of the version serving as the live stream begins (the offline
    pre-trained one, unless the trainer published during the history), with the catalogue."""
    registry = ModelRegistry.from_settings(ctx.settings, ctx.redis)
    info = registry.load_version(registry.current()).info  # its files, checked, on this host
    with ctx.console.status(f"copying version {info.version} and projecting the catalogue with it"):
        frozen = FrozenVersion(info, ctx.folder / "frozen", ctx.redis, ctx.keys)
        frozen.sync(ctx.redis.scard(ctx.keys.items()))
    ctx.metrics.frozen_version = info.version
    ctx.console.print(f"frozen copy of version {info.version} ({info.source}): {len(frozen)} items")
    return frozen


def replay(ctx: RunContext, data: DemoData, rate: float, titles: dict[str, str], producer: EventProducer,
           watcher: AnnouncementWatcher, client: ServingClient, frozen: FrozenVersion) -> set[str]:
    """Publish ``data.stream`` at ``rate`` events per second, probing before each interaction;
    returns the ids of the items that arrived during the stream."""
    metrics = ctx.metrics
    new_items: set[str] = set()
    scorer = PrequentialScorer(client, ctx.redis, ctx.keys, metrics, frozen,
                               [event.item_id for event in data.history])
    ranks = NewItemRanks(client, ctx.redis, ctx.keys, metrics, watcher.announced)
    cold_start = ColdStartProbe(client, watcher, metrics, titles)
    interval = 1.0 / rate
    next_send = time.monotonic()
    metrics.stream_started_at = time.time()
    malformed_at = len(data.stream) // 2
    with StatusDisplay(ctx.console, metrics, len(data.catalogue) + len(data.stream)) as status:
        for index, event in enumerate(data.stream):
            if index == malformed_at:
                _publish_malformed(ctx)
            delay = next_send - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_send += interval
            if isinstance(event, ItemEvent):
                new_items.add(event.item_id)
                ranks.arrived(event.item_id)
                now = time.time()
                cold_start.published(event.item_id, now)
                watcher.expect(event.item_id, now)
                producer.publish_item(event)
                producer.flush()
                metrics.items_published += 1
            else:
                position = metrics.interactions_published
                history = scorer.score(event, position)
                if history is not None:
                    ranks.probe(event, position, history)
                cold_start.check()
                producer.publish_interaction(event)
                scorer.clicked(event.item_id)
                cold_start.clicked(event.user_id, event.item_id)
                metrics.interactions_published += 1
            status.update(watcher.current_version)
            ctx.fleet.check()
        scorer.flush()
        producer.flush()
    return new_items


def await_learned_version(ctx: RunContext, watcher: AnnouncementWatcher, timeout_s: float = 180.0) -> None:
    """Wait (bounded) until the trainer has published a version learned from the live stream,
    so that every run shows the model changing under the running system."""
    started = time.monotonic()
    with ctx.console.status("waiting for the trainer to publish a version learned from the stream"):
        while time.monotonic() - started < timeout_s:
            if watcher.current_version not in (None, ctx.metrics.frozen_version):
                return
            ctx.fleet.check()
            time.sleep(0.5)
    ctx.console.print(f"[yellow]no new model version within {timeout_s:.0f}s; see logs/trainer.log[/]")


def _publish_malformed(ctx: RunContext) -> None:
    """Two bad events mid-stream: they must land in the dead-letter topic, nothing stops.
    Sent by a bare Kafka producer: learnrec.client would refuse them before sending."""
    producer = make_producer(ctx.settings)
    producer.send(topic_name(ctx.settings, INTERACTIONS), key=b"demo", value=b'{"user_id": "demo"}')
    producer.send(topic_name(ctx.settings, ITEMS), key=b"bad-item", value=b"not json at all")
    producer.flush()
    producer.close()
    ctx.metrics.malformed_published += 2
