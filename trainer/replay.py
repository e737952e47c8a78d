"""``learnrec replay``: prequential evaluation of online learning on a real data set via Kafka.

1. The data set becomes a time-ordered interaction stream (:mod:`learnrec.trainer.stream_order`).
2. Items are encoded once by the frozen content encoder (on-disk embedding cache).
3. Offline model: :func:`learnrec.trainer.offline.train_offline` (the model and objective of the
   benchmarks) on the users' sequences in the first ``--offline-fraction`` of the stream, their
   last two items held out for early stopping, for at most ``--offline-minutes``.
4. The rest of the stream is produced to a fresh one-partition topic (one partition keeps the
   global time order) and consumed back; every event is scored before it is trained
   (:mod:`learnrec.trainer.prequential`): the online model, the frozen offline model, popularity.
5. Output: ``prequential-<dataset>.json`` (Recall@10 over the second half of the scored
   stream, per method, and the windowed curve) and a PNG plot with the publishes marked.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path

import numpy as np
import torch

from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import FETCH_LIMITS, ensure_topics, kafka_security, make_producer
from learnrec.shared.schemas import InteractionEvent, decode_interaction_event
from learnrec.shared.topics import INTERACTIONS, topic_name
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content import ContentTable
from learnrec.trainer.data import SeqDataset, leave_one_out, load_dataset
from learnrec.trainer.id_index import IdIndex
from learnrec.trainer.offline import default_configs, id_items_of, train_offline
from learnrec.trainer.online import OnlineTrainer
from learnrec.trainer.prequential import Prequential, ServedModel, Tally, curve
from learnrec.trainer.stream_order import StreamEvent, event_times, time_ordered

log = logging.getLogger(__name__)


def content_embeddings(settings: Settings, texts: list[str]) -> tuple[np.ndarray, str]:
    """Content float32 ``[n_items, content_dim]`` from the configured encoder (cached on disk)."""
    from learnrec.shared.model.encoder import ContentEncoder, EmbeddingCache

    encoder = ContentEncoder(settings.encoder.name, max_tokens=settings.encoder.max_tokens,
                             device="cpu", batch_size=settings.encoder.batch_size)
    cache = EmbeddingCache(settings.process.cache_dir / "embeddings")
    return cache.encode(encoder, texts, progress=True), encoder.model_id


def _produce(settings: Settings, topic: str, stream: list[StreamEvent], item_ids: list[str], name: str) -> None:
    producer = make_producer(settings, linger_ms=50, batch_size=256 * 1024)
    for n, e in enumerate(stream):
        event = InteractionEvent(event_id=f"{name}-{n}", user_id=e.user, item_id=item_ids[e.item],
                                 action="rate", timestamp=max(e.time, 0.0))
        producer.send(topic, key=event.key, value=event.to_bytes())
    producer.flush()
    producer.close()


def _consume(settings: Settings, topic: str, total: int, on_batch, batch_size: int) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.connection.kafka_bootstrap_servers, group_id=None,
                             enable_auto_commit=False, client_id="learnrec-replay", **FETCH_LIMITS,
                             **kafka_security(settings))
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    done = 0
    last_log = time.monotonic()
    try:
        while done < total:
            for records in consumer.poll(timeout_ms=500, max_records=batch_size).values():
                on_batch([decode_interaction_event(r.value) for r in records])
                done += len(records)
            if time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                log.info("replay: %d / %d events", done, total)
    finally:
        consumer.close()


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [(p["scored_from"] + p["scored_to"]) / 2 for p in result["curve"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for method, style in (("online", "-"), ("frozen", "--"), ("popularity", ":")):
        ax.plot(x, [p[method] for p in result["curve"]], style, label=method)
    for n, at in enumerate(result["publishes_at_scored"]):
        ax.axvline(at, color="grey", lw=0.3, alpha=0.5, label="published version" if n == 0 else None)
    ax.set_xlabel("scored interactions (stream order)")
    ax.set_ylabel("Recall@10 (window)")
    ax.set_title(f"Prequential replay: {result['dataset']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pretrain(ds: SeqDataset, prefix: dict[str, list[int]], content: np.ndarray, minutes: float,
             seed: int) -> tuple[torch.nn.Module, list[str], dict]:
    """The offline model on the prefix sequences: (model, its ID rows' item ids, report)."""
    users = [u for u, s in prefix.items() if len(s) >= 2]
    sub = SeqDataset(f"{ds.name}-prefix", ds.item_ids, ds.item_texts, users,
                     [np.asarray(prefix[u], np.int64) for u in users])
    model_cfg, train_cfg = default_configs(content.shape[1], seed)
    train_cfg = train_cfg.override(max_minutes=minutes)
    model, inputs, report = train_offline(leave_one_out(sub), content, model_cfg, train_cfg)
    return model, id_items_of(inputs, ds.item_ids), report


def replay(settings: Settings, data: Path, out_dir: Path, *, offline_fraction: float, offline_minutes: float,
           publish_every: int, score_every: int, max_events: int | None = None) -> dict:
    """Run the whole experiment; returns the result dict (also written as JSON + PNG)."""
    torch.set_num_threads(settings.trainer.threads)
    torch.manual_seed(settings.trainer.seed)
    started = time.perf_counter()
    ds = load_dataset(data)
    stream = time_ordered(ds, event_times(data, ds, settings.trainer.seed))[:max_events]
    content_np, encoder = content_embeddings(settings, ds.item_texts)
    content = torch.from_numpy(content_np)
    table = ContentTable(content_np.shape[1])
    table.update(ds.item_ids, content_np)

    n_offline = int(offline_fraction * len(stream))
    prefix: dict[str, list[int]] = {}
    for e in stream[:n_offline]:
        prefix.setdefault(e.user, []).append(e.item)
    model, id_items, offline_report = pretrain(ds, prefix, content_np, offline_minutes, settings.trainer.seed)
    # the replay scores every event itself: nothing is held back for a publish gate
    cfg = TrainConfig.from_settings(settings).override(gate_events=0)
    trainer = OnlineTrainer(model, table, cfg, encoder, IdIndex(id_items))
    frozen = ServedModel(model, trainer.ids, content, ds.item_ids)
    evaluation = Prequential(trainer, frozen, content, ds.item_ids, publish_every, score_every)
    for e in stream[:n_offline]:  # the trainer, popularity and the histories know the offline period
        trainer.replay.offer(trainer.sequences.append(e.user, ds.item_ids[e.item]))
        evaluation.warm(e.user, e.item)
    offline_s = time.perf_counter() - started

    run_settings = settings.replace(topic_prefix=f"replay-{ds.name}-{secrets.token_hex(3)}.", partitions=1)
    topic = topic_name(run_settings, INTERACTIONS)
    ensure_topics(run_settings, partitions=1)
    online_part = stream[n_offline:]
    _produce(run_settings, topic, online_part, ds.item_ids, ds.name)
    replay_started = time.perf_counter()
    _consume(run_settings, topic, len(online_part), evaluation.process, cfg.batch_size)
    trainer.release_all()
    replay_s = time.perf_counter() - replay_started
    result = _result(ds, stream, n_offline, evaluation, encoder, settings) | {
        "offline": {"fraction": offline_fraction, "max_minutes": offline_minutes,
                    "steps": offline_report["steps"], "best_step": offline_report["best_step"],
                    "stopped_by": offline_report["stopped_by"], "train_seconds": offline_report["train_seconds"],
                    "train_config": offline_report["train_config"]},
        "online_train_config": cfg.record(),
        "seconds": {"offline": round(offline_s, 1), "replay": round(replay_s, 1)},
        "trained_events_per_s_in_replay": round(len(online_part) / replay_s, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"prequential-{ds.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out_dir / f"prequential-{ds.name}.png")
    log.info("replay of %s: second-half recall@10 %s", ds.name, result["second_half_recall@10"])
    return result


def _result(ds: SeqDataset, stream: list[StreamEvent], n_offline: int, evaluation: Prequential,
            encoder: str, settings: Settings) -> dict:
    tally: Tally = evaluation.tally
    n = len(tally.hits["online"])
    return {
        "dataset": ds.name,
        "events": len(stream),
        "offline_events": n_offline,
        "replayed_events": len(stream) - n_offline,
        "scored_events": n,
        "score_every": evaluation.score_every,
        "publish_every_events": evaluation.publish_every,
        "publishes_at_scored": evaluation.publishes,
        "encoder": encoder,
        "second_half_recall@10": {m: round(tally.recall(m, n // 2), 5) for m in tally.hits},
        "recall@10": {m: round(tally.recall(m), 5) for m in tally.hits},
        "curve": curve(tally),
        "settings": {"trainer_threads": settings.trainer.threads, "encoder": settings.encoder.name},
    }
