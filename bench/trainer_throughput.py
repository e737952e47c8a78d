"""Trainer benchmarks: interactions trained per second, and the time to publish a version.

``python -m bench.trainer_throughput`` runs against the configured Kafka and Redis under a fresh
topic and key prefix (deleted afterwards), with the default trainer settings unless overridden:

- ``trained_per_s``: the real ``learnrec train online`` loop (consume from Kafka, decode, form
  examples, AdamW steps, checkpoints on the default cadence) over a backlog of synthetic
  interactions (``--users`` users, Zipf-distributed items with random ``--content-dim``
  content embeddings stored in Redis); publishing is left out here and measured below;
- ``publish``: exporting both towers to ONNX, re-projecting ``--publish-items`` items' content
  embeddings with the new item tower and writing the vectors, then flipping the version.

It writes ``bench/results/trainer.json``, with the machine's CPU count and load average (the
figures on a shared machine are lower bounds).

``--trainers N`` instead compares a trainer group of ``N`` with one trainer (and a group of
one), same backlog, same run, each trainer its own process (:mod:`bench.trainer_group`), and
writes ``bench/results/trainer-group.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import torch

from bench.scratch import delete_scratch
from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import ensure_topics, make_producer
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent
from learnrec.shared.topics import INTERACTIONS, topic_name
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content import ContentTable
from learnrec.trainer.online import OnlineTrainer
from learnrec.trainer.worker import run
from learnrec.versions.export import publish_model
from learnrec.versions.registry import ModelRegistry

log = logging.getLogger("bench.trainer_throughput")


def put_items(client, keys: RedisKeys, n: int, dim: int, seed: int = 0, chunk: int = 5000) -> None:
    """``n`` items with random unit content embeddings ``[dim]`` (as the item encoder stores them)."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        vectors = rng.standard_normal((min(chunk, n - start), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        pipe = client.pipeline(transaction=False)
        for k, v in enumerate(vectors, start):
            pipe.hset(keys.item(f"i{k}"), mapping={"content": v.tobytes(), "content_hash": f"h{k}"})
        pipe.sadd(keys.items(), *[f"i{k}" for k in range(start, start + len(vectors))])
        pipe.execute()


def synthetic_events(n: int, users: int, items: int, seed: int, prefix: str) -> list[InteractionEvent]:
    """``n`` interactions of uniform users on Zipf-distributed items (exponent 0.8)."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    chosen = rng.choice(items, size=n, p=popularity / popularity.sum())
    who = rng.integers(0, users, size=n)
    return [InteractionEvent(event_id=f"{prefix}{k}", user_id=f"u{who[k]}", item_id=f"i{chosen[k]}") for k in range(n)]


def produce_events(settings: Settings, events: list[InteractionEvent]) -> None:
    producer = make_producer(settings, linger_ms=50)
    topic = topic_name(settings, INTERACTIONS)
    for event in events:
        producer.send(topic, key=event.key, value=event.to_bytes())
    producer.flush()
    producer.close()


def bench_training(settings: Settings, events: int, users: int, items: int) -> dict:
    produce_events(settings, synthetic_events(events, users, items, 1, "b"))
    idle_s = 3.0
    started = time.perf_counter()
    loop = run(settings, max_idle_s=idle_s)
    elapsed = time.perf_counter() - started - idle_s
    assert loop.trainer.trained == events, f"trained {loop.trainer.trained} of {events}"
    return {"events": loop.trainer.trained, "steps": loop.trainer.steps, "seconds": round(elapsed, 2),
            "trained_per_s": round(loop.trainer.trained / elapsed, 1)}


def bench_publish(settings: Settings, client, n_items: int, dim: int) -> dict:
    put_items(client, RedisKeys.from_settings(settings), n_items, dim)
    trainer = OnlineTrainer.from_scratch(ContentTable(dim), TrainConfig.from_settings(settings), "bench-random",
                                         settings.trainer.item_ids)
    registry = ModelRegistry.from_settings(settings, client)
    report = publish_model(trainer.model, registry, "bench-random",
                           batch_size=settings.trainer.publish_batch_size, keep=settings.trainer.keep_versions)
    assert report.written == n_items
    return {"items": report.items, "export_s": round(report.export_s, 2),
            "reproject_and_write_s": round(report.project_s, 2), "total_s": round(report.total_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--content-dim", type=int, default=384, help="minilm's width")
    parser.add_argument("--publish-items", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=None, help="trainer_threads (default: the setting's)")
    parser.add_argument("--trainers", type=int, default=None,
                        help="compare a trainer group of this many with one trainer (bench/trainer_group.py)")
    parser.add_argument("--repeats", type=int, default=3, help="with --trainers: runs of each configuration")
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/trainer.json (trainer-group.json with --trainers)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    if args.trainers:
        return compare_group(args)
    args.out = args.out or Path("bench/results/trainer.json")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings()
        update = {"topic_prefix": f"{prefix}.", "redis_prefix": prefix, "model_dir": Path(tmp) / "models",
                  "trainer_checkpoint": Path(tmp) / "online.ckpt", "trainer_publish_every_events": 10**9,
                  "trainer_publish_every_s": 10**9}
        if args.threads:
            update["trainer_threads"] = args.threads
        settings = base.replace(**update)
        client = make_redis(settings)
        ensure_topics(settings)
        try:
            put_items(client, RedisKeys.from_settings(settings), args.items, args.content_dim)
            training = bench_training(settings, args.events, args.users, args.items)
            log.info("training: %s", training)
            publish = bench_publish(settings, client, args.publish_items, args.content_dim)
            log.info("publish: %s", publish)
        finally:
            delete_scratch(settings, topics=True)
    result = {
        "training": training | {"users": args.users, "items": args.items, "content_dim": args.content_dim},
        "publish": publish,
        "settings": {f"trainer_{k}": v for k, v in settings.trainer.model_dump().items()
                     if k not in ("checkpoint", "publish_every_events", "publish_every_s")},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def compare_group(args: argparse.Namespace) -> None:
    """One trainer, a group of one and a group of ``--trainers``, one after the other, the
    three ``--repeats`` times over (interleaved: a slow spell of the machine hits all three);
    medians and their ratios to the single trainer's."""
    from bench.trainer_group import measure

    configurations = {"single": (1, False), "group of 1": (1, True), f"group of {args.trainers}": (args.trainers, True)}
    runs: dict[str, list[dict]] = {name: [] for name in configurations}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, (n, group) in configurations.items():
                runs[name].append(measure(Settings(), Path(tmp), n, group, args.events, args.users, args.items))
    median = {name: float(np.median([r["trained_per_s"] for r in rs])) for name, rs in runs.items()}
    result = {
        "median_trained_per_s": median,
        "ratio_to_single": {name: round(rate / median["single"], 2) for name, rate in median.items()},
        "runs": runs,
        "backlog": {"events": args.events, "users": args.users, "items": args.items, "content_dim": 384},
        "machine": {"cpus": os.cpu_count(), "torch_threads_per_trainer": 1,
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
    }
    out = args.out or Path("bench/results/trainer-group.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
