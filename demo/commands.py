"""``learnrec demo``: the main job, run end to end on the local services.

At this stage it starts the services, publishes a synthetic catalogue and interaction stream
(plus one malformed event), consumes them back through the validating worker, and prints what
happened.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from collections.abc import Sequence

from shared.config import Settings, get_settings
from shared.dead_letter import DeadLetterWriter
from shared.kafka_io import ensure_topics, make_consumer, make_producer
from shared.local_services import LocalServices, kafka_answers, redis_answers
from shared.redis_client import make_redis
from shared.redis_keys import RedisKeys
from shared.schemas import InteractionEvent, ItemEvent, decode_interaction_event
from shared.topics import DEAD_LETTER, INTERACTIONS, ITEMS, topic_name
from shared.worker import Accepted, BatchResult, BatchWorker

from demo.synthetic import SyntheticConfig, generate, interleave


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--interactions", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.set_defaults(func=run)


def _ensure_services(settings: Settings) -> None:
    if kafka_answers(settings.kafka_bootstrap_servers) and redis_answers(settings.redis_url):
        return
    print("starting local Kafka and Redis...", flush=True)
    LocalServices(settings).up()


def run(args: argparse.Namespace) -> int:
    base = get_settings()
    _ensure_services(base)
    run_id = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"topic_prefix": f"{base.topic_prefix}demo-{run_id}.",
                                       "redis_prefix": f"{base.redis_prefix}:demo-{run_id}"})
    created = ensure_topics(settings)
    print(f"run {run_id}: topics {', '.join(created)}")

    catalogue, stream = generate(SyntheticConfig(seed=args.seed, users=args.users,
                                                 interactions=args.interactions, initial_items=200,
                                                 new_items=20))
    producer = make_producer(settings)
    started = time.perf_counter()
    sent = Counter()
    for event in interleave(catalogue, stream):
        topic = ITEMS if isinstance(event, ItemEvent) else INTERACTIONS
        producer.send(topic_name(settings, topic), key=event.key, value=event.to_bytes())
        sent[topic] += 1
    producer.send(topic_name(settings, INTERACTIONS), key=b"user-0000", value=b'{"user_id": "user-0000"}')
    producer.flush()
    print(f"published {sent[ITEMS]} item events, {sent[INTERACTIONS]} interactions and 1 malformed "
          f"event in {time.perf_counter() - started:.1f}s")

    redis = make_redis(settings)
    keys = RedisKeys.from_settings(settings)

    def apply(batch: Sequence[Accepted[InteractionEvent]]) -> BatchResult:
        pipe = redis.pipeline(transaction=False)
        for accepted in batch:
            pipe.rpush(keys.history(accepted.event.user_id), accepted.event.item_id)
        pipe.execute()
        return BatchResult()

    consumer = make_consumer(settings, f"demo-{run_id}", [topic_name(settings, INTERACTIONS)])
    worker = BatchWorker("demo", consumer, decode_interaction_event, apply,
                         DeadLetterWriter(producer, topic_name(settings, DEAD_LETTER), "demo"))
    totals = worker.run(max_idle_s=3.0)
    producer.close()
    users = sum(1 for _ in redis.scan_iter(match=keys.history("*")))
    print(f"consumed {totals.polled} interaction records: {totals.accepted} applied to {users} user "
          f"histories in Redis, {totals.dead_lettered} sent to the dead-letter topic")
    sample = redis.lrange(keys.history("user-0001"), -5, -1)
    print(f"user-0001's last clicks: {[s.decode() for s in sample]}")
    for key in redis.scan_iter(match=f"{settings.redis_prefix}:*"):
        redis.delete(key)
    ok = totals.dead_lettered == 1 and totals.accepted == sent[INTERACTIONS]
    print("demo finished:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1
