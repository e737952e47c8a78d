"""Before the live stream: the initial catalogue and the past interactions go through Kafka,
and the run waits until the catalogue is encoded and the history applied."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from learnrec.client import EventProducer
from learnrec.demo.context import RunContext
from learnrec.demo.probes import AnnouncementWatcher, GroupOffsets
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.shared.topics import GROUP_HISTORY_UPDATER, INTERACTIONS, group_name, topic_name


def publish_catalogue(ctx: RunContext, items: list[ItemEvent], producer: EventProducer,
                      watcher: AnnouncementWatcher) -> None:
    """Publish every item and wait until each is encoded and announced (servable)."""
    ctx.console.print(f"publishing the initial catalogue: {len(items)} items")
    for item in items:
        watcher.expect(item.item_id, time.time())
        producer.publish_item(item)
    producer.flush()
    ctx.metrics.items_published += len(items)
    started = time.monotonic()
    with Progress(TextColumn("encoding the catalogue"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=ctx.console) as progress:
        task = progress.add_task("encode", total=len(items))

        def all_announced() -> bool:
            progress.update(task, completed=min(len(watcher.announced), len(items)))
            return len(watcher.announced) >= len(items)

        ctx.fleet.wait_until(all_announced, 600, "the catalogue to be encoded")
    ctx.console.print(f"catalogue encoded and servable in {time.monotonic() - started:.1f}s")
    # Freshness counts only items arriving during the live stream, not the initial bulk load.
    ctx.metrics.freshness_ms.clear()


def publish_history(ctx: RunContext, history: list[InteractionEvent], producer: EventProducer) -> None:
    """The interactions from before the demo go through Kafka too, so the history updater has
    every user's recent history and the trainer keeps learning from them; wait until the
    history updater has applied them all."""
    if not history:
        return
    topic = topic_name(ctx.settings, INTERACTIONS)
    for event in history:
        producer.publish_interaction(event)
    producer.flush()
    ctx.metrics.interactions_published_before = len(history)
    reader = GroupOffsets(ctx.settings, group_name(ctx.settings, GROUP_HISTORY_UPDATER), topic)
    try:
        ends = reader.ends()
        with Progress(TextColumn("applying the history"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=ctx.console) as progress:
            task = progress.add_task("history", total=sum(ends.values()))

            def applied() -> bool:
                done = sum(min(offset, ends[tp]) for tp, offset in reader.committed().items())
                progress.update(task, completed=done)
                return done >= sum(ends.values())

            ctx.fleet.wait_until(applied, 600, "the history updater to apply the history")
    finally:
        reader.close()
