"""Wiring: build each stream worker from Settings, serve its metrics, run it until SIGTERM."""

from __future__ import annotations

import logging

from learnrec.shared.config import Settings
from learnrec.shared.dead_letter import DeadLetterWriter
from learnrec.shared.kafka_io import ensure_topics, make_consumer, make_producer
from learnrec.shared.rebuild import ReplayGuard
from learnrec.shared.redis_client import ReplicationBarrier, make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import decode_interaction_event, decode_item_record
from learnrec.shared.topics import (
    DEAD_LETTER,
    GROUP_HISTORY_UPDATER,
    GROUP_ITEM_ENCODER,
    INTERACTIONS,
    ITEMS,
    group_name,
    topic_name,
)
from learnrec.shared.worker import BatchStats, BatchWorker, serve_metrics, values
from learnrec.stream.history_updater import HistoryHandler
from learnrec.stream.item_encoder import ItemEncoderHandler, TextEncoder, load_encoder
from learnrec.stream.item_store import ItemStore
from learnrec.versions.bootstrap import ensure_current_version
from learnrec.versions.cache import VersionCache
from learnrec.versions.registry import ModelRegistry

log = logging.getLogger(__name__)

ITEM_WORKER = "item-encoder"
HISTORY_WORKER = "history-updater"


def _consumer(settings: Settings, group: str, topic: str, batch_size: int):
    return make_consumer(
        settings,
        group_name(settings, group),
        [topic_name(settings, topic)],
        max_poll_records=batch_size,
    )


def stream_workers(settings: Settings) -> list[tuple[str, str]]:
    """(group, topic) of every stream worker: what a wiped Redis is rebuilt from."""
    return [(GROUP_ITEM_ENCODER, topic_name(settings, ITEMS)),
            (GROUP_HISTORY_UPDATER, topic_name(settings, INTERACTIONS))]


def build_item_worker(settings: Settings, encoder: TextEncoder | None = None) -> BatchWorker:
    """The item encoder worker; restores or bootstraps the current model version if none is
    current (at start, and when Redis was wiped: :mod:`learnrec.shared.rebuild`)."""
    ensure_topics(settings)
    encoder = encoder or load_encoder(settings)
    client = make_redis(settings)
    registry = ModelRegistry.from_settings(settings, client)
    consumer = _consumer(settings, GROUP_ITEM_ENCODER, ITEMS, settings.stream.item_batch_size)
    guard = ReplayGuard(client, RedisKeys.from_settings(settings), GROUP_ITEM_ENCODER, stream_workers(settings),
                        lambda: ensure_current_version(settings, registry, encoder.model_id, encoder.content_dim))
    guard.begin(consumer)  # a new Redis is marked as rebuilding before a version is restored in it
    version = ensure_current_version(settings, registry, encoder.model_id, encoder.content_dim)
    log.info("item encoder: encoder=%s content_dim=%d current_version=%s", encoder.model_id, encoder.content_dim, version)
    towers = VersionCache(registry, encoder.model_id, encoder.content_dim)
    store = ItemStore(client, RedisKeys.from_settings(settings), towers, settings.stream.item_updates_maxlen)
    return BatchWorker(
        ITEM_WORKER,
        consumer,
        lambda record: decode_item_record(record.key, record.value),
        ItemEncoderHandler(encoder, store, ReplicationBarrier(client, settings)),
        DeadLetterWriter(make_producer(settings), topic_name(settings, DEAD_LETTER), ITEM_WORKER),
        max_records=settings.stream.item_batch_size,
        guard=guard,
    )


def build_history_worker(settings: Settings) -> BatchWorker:
    """The history updater worker."""
    ensure_topics(settings)
    client, keys = make_redis(settings), RedisKeys.from_settings(settings)
    guard = ReplayGuard(client, keys, GROUP_HISTORY_UPDATER, stream_workers(settings))
    handler = HistoryHandler(client, keys, settings, epoch=lambda: guard.epoch)
    return BatchWorker(
        HISTORY_WORKER,
        _consumer(settings, GROUP_HISTORY_UPDATER, INTERACTIONS, settings.stream.history_batch_size),
        values(decode_interaction_event),
        handler,
        DeadLetterWriter(make_producer(settings), topic_name(settings, DEAD_LETTER), HISTORY_WORKER),
        max_records=settings.stream.history_batch_size,
        guard=guard,
    )


def run_worker(worker: BatchWorker, metrics_port: int, max_idle_s: float | None = None) -> BatchStats:
    """Serve /metrics (unless port 0), stop on SIGTERM/SIGINT after the current batch."""
    serve_metrics(metrics_port, worker.name)
    worker.install_signal_handlers()
    log.info("%s: running", worker.name)
    totals = worker.run(max_idle_s=max_idle_s)
    log.info("%s: stopped: polled=%d accepted=%d dead_lettered=%d", worker.name, totals.polled, totals.accepted, totals.dead_lettered)
    return totals
