"""``learnrec train online``: the Kafka shell around :class:`~learnrec.trainer.online.OnlineTrainer`.

- Partitions: the trainer assigns itself every partition of the interactions topic (it runs as
  one instance; a trainer group shares them: :mod:`learnrec.trainer.group_worker`) and seeks
  each to the next offset stored in its checkpoint, or to the beginning of the log when the
  checkpoint has none. Its consumer group (``GROUP_TRAINER``) only receives
  commits for lag monitoring; resuming never reads them.
- Records go through :class:`learnrec.shared.worker.BatchWorker` (decode, dead-letter the bad ones).
  The handler's only IO (fetching content embeddings from Redis) happens before it changes any
  state, so a batch retried after a Redis error is never trained twice.
- Cadence: a checkpoint every ``trainer_checkpoint_every`` events; a candidate version (with a
  checkpoint before it) every ``trainer_publish_every_events`` events or
  ``trainer_publish_every_s`` seconds after the first unpublished event, published when the gate
  (:mod:`learnrec.trainer.gate`) passes it or an operator forced it (``learnrec model force-publish``);
  a last checkpoint on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis
import torch
from prometheus_client import Counter

from learnrec.shared.config import Settings
from learnrec.shared.dead_letter import DeadLetterWriter
from learnrec.shared.kafka_io import ensure_topics, make_consumer, make_producer
from learnrec.shared.model import checkpoint
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, decode_interaction_event
from learnrec.shared.topics import DEAD_LETTER, GROUP_TRAINER, INTERACTIONS, group_name, topic_name
from learnrec.shared.worker import Accepted, BatchResult, BatchWorker, serve_metrics, values
from learnrec.trainer import checkpointing
from learnrec.trainer.content import ContentTable
from learnrec.trainer.gate import GateDecision, decide, record
from learnrec.trainer.online import OnlineTrainer, TrainConfig
from learnrec.versions.export import register_model
from learnrec.versions.publish import publish
from learnrec.versions.registry import ItemSnapshot, ModelRegistry

log = logging.getLogger(__name__)

WORKER = "trainer"

PUBLISHED = Counter("learnrec_trainer_published_total", "Model versions the online trainer published")


def content_dim_from_redis(client: redis.Redis, keys: RedisKeys, wait_s: float = 0.5) -> int:
    """The content dimension of the stored items (waits until the first item is encoded)."""
    while True:
        for raw in client.sscan_iter(keys.items(), count=10):
            content = client.hget(keys.item(raw.decode()), "content")
            if content:
                return len(content) // 4
        log.info("no encoded item yet; waiting to learn the content dimension")
        time.sleep(wait_s)


def serving_encoder(settings: Settings, registry: ModelRegistry) -> str:
    """The content encoder the stored items were encoded with: the current version's (the item
    encoder publishes a bootstrap version naming it), else ``settings.encoder.name``."""
    current = registry.current()
    return registry.info(current).encoder if current else settings.encoder.name


def build_trainer(settings: Settings, client: redis.Redis, registry: ModelRegistry) -> OnlineTrainer:
    """Resume from ``trainer_checkpoint`` if it exists, else start from ``trainer_init`` (an
    offline checkpoint) or from scratch."""
    cfg = TrainConfig.from_settings(settings)
    keys = RedisKeys.from_settings(settings)
    encoder = serving_encoder(settings, registry)
    path = settings.trainer.checkpoint if settings.trainer.checkpoint.exists() else settings.trainer.init
    if path:
        log.info("starting from checkpoint %s", path)
        model, extra = checkpoint.load(path)
        content = ContentTable(model.config.content_dim, client, keys)
        trainer = OnlineTrainer.restore(model, extra, content, cfg, encoder)
        if trainer.encoder != encoder:
            raise RuntimeError(f"{path} was trained on {trainer.encoder} content; the items are encoded with {encoder}")
        return trainer
    log.info("starting from scratch")
    content = ContentTable(content_dim_from_redis(client, keys), client, keys)
    return OnlineTrainer.from_scratch(content, cfg, encoder, settings.trainer.item_ids)


class TrainerLoop:
    """Feeds batches to the trainer and decides when to checkpoint and publish."""

    def __init__(self, settings: Settings, trainer: OnlineTrainer, registry: ModelRegistry) -> None:
        self.settings = settings
        self.trainer = trainer
        self.registry = registry
        self.since_checkpoint = 0
        self.since_publish = 0
        self.unpublished_since: float | None = None
        self.published: list[str] = []
        self.decisions: list[GateDecision] = []
        self.failed_publishes = 0  # in a row; the next try waits retry_s * 2**(failed - 1)
        self.retry_at = 0.0

    def handle(self, batch: Sequence[Accepted[InteractionEvent]]) -> BatchResult:
        """Add the batch's events to the trainer, skipping every record below the next offset its
        state already holds for that partition (a redelivered batch: fenced, never applied twice)."""
        offsets: dict[str, int] = {}
        fresh: list[InteractionEvent] = []
        partitions: list[str] = []
        trace = log.isEnabledFor(logging.DEBUG)  # one line per event, at DEBUG only
        for accepted in batch:
            record = accepted.record
            key = checkpointing.offset_key(record.topic, record.partition)  # type: ignore[attr-defined]
            fenced = record.offset < self.trainer.offsets.get(key, 0)  # type: ignore[attr-defined]
            if trace:
                event = accepted.event
                log.debug("trainer event", extra={
                    "event_id": event.event_id, "user_id": event.user_id, "item_id": event.item_id,
                    "partition": record.partition, "offset": record.offset,  # type: ignore[attr-defined]
                    "fenced": fenced})
            if fenced:
                continue
            fresh.append(accepted.event)
            partitions.append(key)
            offsets[key] = max(offsets.get(key, 0), record.offset + 1)  # type: ignore[attr-defined]
        self.trainer.add(fresh, offsets, partitions)
        self.since_checkpoint += len(fresh)
        self.since_publish += len(fresh)
        if fresh and self.unpublished_since is None:
            self.unpublished_since = time.monotonic()
        return BatchResult()

    def tick(self) -> None:
        """Checkpoint and publish when due (called between batches)."""
        if self.publish_due():
            self.checkpoint()
            self.publish()
        elif self.checkpoint_due():
            self.checkpoint()

    def publish_due(self) -> bool:
        """``publish_every_events`` trained, or ``publish_every_s`` since the first unpublished
        event, and not backing off after a failed publish."""
        s = self.settings
        due = self.since_publish >= s.trainer.publish_every_events or (
            self.unpublished_since is not None
            and time.monotonic() - self.unpublished_since >= s.trainer.publish_every_s
        )
        return due and time.monotonic() >= self.retry_at

    def checkpoint_due(self) -> bool:
        return self.since_checkpoint >= self.settings.trainer.checkpoint_every

    def checkpoint(self) -> None:
        self.trainer.save(self.settings.trainer.checkpoint)
        self.since_checkpoint = 0
        log.info(
            "checkpoint: %d events trained, %d steps, loss %.4f, %d users",
            self.trainer.trained, self.trainer.steps, self.trainer.last_loss, len(self.trainer.sequences),
        )

    def publish(self) -> None:
        """Export a candidate, let the gate decide, publish it or discard it. On failure (Redis
        down) the candidate is dropped and a later tick tries again, after a backoff that
        doubles with every failure in a row (``trainer_publish_retry_s`` up to ``_max_s``)."""
        s, trainer, registry = self.settings, self.trainer, self.registry
        candidate = None
        try:
            started = time.perf_counter()
            candidate = register_model(trainer.model, registry, trainer.encoder, trainer.ids.items)
            export_s = time.perf_counter() - started
            forced = registry.redis.getdel(registry.keys.model_force_publish()) is not None
            current = registry.current()
            decision = decide(candidate, registry.load_version(current) if current else None,
                              trainer.held_back(), trainer.content, s.trainer.gate_tolerance,
                              s.trainer.gate_min_events, forced)
            log.info("publish gate: %s %s (%s)", "publish" if decision.published else "hold",
                     decision.candidate, decision.reason)
            if decision.published:
                catalogue: set[str] = set()

                def follow_catalogue(batch: ItemSnapshot) -> None:  # the snapshot is the whole catalogue
                    if batch.item_ids:
                        trainer.content.update(batch.item_ids, batch.content)
                        catalogue.update(batch.item_ids)

                report = publish(registry, candidate.info.version, batch_size=s.trainer.publish_batch_size,
                                 keep=s.trainer.keep_versions, towers=candidate, export_s=export_s,
                                 on_batch=follow_catalogue)
                trainer.content.keep_only(catalogue)
                self.published.append(report.version)
                PUBLISHED.inc()
            else:
                registry.discard(candidate.info.version)
            record(decision, registry.redis, registry.keys)
            self.decisions.append(decision)
        except Exception:
            self.failed_publishes += 1
            wait_s = min(s.trainer.publish_retry_s * 2 ** (self.failed_publishes - 1), s.trainer.publish_retry_max_s)
            self.retry_at = time.monotonic() + wait_s
            log.exception("publish failed (%d in a row); retrying in %.0f s", self.failed_publishes, wait_s)
            if candidate is not None:
                self._drop(candidate.info.version)
            return
        self.failed_publishes = 0
        self.since_publish = 0
        self.unpublished_since = None

    def _drop(self, version: str) -> None:
        """Forget a candidate whose publish failed (best effort: Redis may be what failed)."""
        try:
            if version in self.registry.preparing():
                self.registry.abort_publish(version)
            elif version != self.registry.current() and version not in self.registry.versions():
                self.registry.discard(version)
        except Exception:
            log.warning("could not discard candidate %s now (an abandoned publish is aborted by the next one)",
                        version, exc_info=True)


def topic_partitions(consumer, topic: str, timeout_s: float = 30.0) -> list[int]:
    """The topic's partitions, sorted (waits for the metadata up to ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    partitions = consumer.partitions_for_topic(topic)
    while not partitions and time.monotonic() < deadline:
        time.sleep(0.2)
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise RuntimeError(f"topic {topic} has no partitions")
    return sorted(partitions)


def assign_partitions(consumer, topic: str, partitions: list[int], offsets: dict[str, int]) -> None:
    """Consume exactly ``partitions`` of ``topic``, each from the next offset ``offsets`` holds
    for it (the beginning of the log when it holds none)."""
    from kafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.unsubscribe()
    consumer.assign(tps)
    for tp in tps:
        stored = offsets.get(checkpointing.offset_key(tp.topic, tp.partition))
        if stored is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, stored)
    log.info("assigned %s at %s", topic, {p: offsets.get(checkpointing.offset_key(topic, p), 0) for p in partitions})


def build_trainer_worker(settings: Settings) -> tuple[BatchWorker, TrainerLoop]:
    """The online trainer as a worker over ``interactions`` (its ``stop_event`` stops it) and the
    loop that trains, checkpoints and publishes. Run it with ``worker.run(after_poll=loop.tick)``
    and ``loop.checkpoint()`` after it returns (what :func:`run` does)."""
    ensure_topics(settings)
    client = make_redis(settings)
    registry = ModelRegistry.from_settings(settings, client)
    trainer = build_trainer(settings, client, registry)
    loop = TrainerLoop(settings, trainer, registry)
    topic = topic_name(settings, INTERACTIONS)
    consumer = make_consumer(settings, group_name(settings, GROUP_TRAINER), [topic])
    assign_partitions(consumer, topic, topic_partitions(consumer, topic), trainer.offsets)
    worker = BatchWorker(
        WORKER, consumer, values(decode_interaction_event), loop.handle,
        DeadLetterWriter(make_producer(settings), topic_name(settings, DEAD_LETTER), WORKER),
    )
    return worker, loop


def run(settings: Settings, max_idle_s: float | None = None, metrics_port: int | None = None) -> TrainerLoop:
    """Train until SIGTERM/SIGINT (or ``max_idle_s`` without events), serving Prometheus metrics
    on ``metrics_port`` (default ``settings.process.metrics_port``; 0: none); returns the loop."""
    torch.set_num_threads(settings.trainer.threads)
    serve_metrics(settings.process.metrics_port if metrics_port is None else metrics_port, WORKER)
    worker, loop = build_trainer_worker(settings)
    worker.install_signal_handlers()
    worker.run(max_idle_s, after_poll=loop.tick)
    loop.checkpoint()
    return loop
