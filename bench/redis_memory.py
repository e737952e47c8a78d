"""Redis memory per user, per item and per model version, measured on a real Redis.

    python -m bench.redis_memory                          # 5,000 users, 5,000 items, MiniLM sizes
    python -m bench.redis_memory --users 20000 --items 20000 --content-dim 768

Under a throw-away prefix (deleted at the end): ``--users`` users send ``--events`` clicks each
through the real history updater (``HistoryHandler``), then ``--items`` items are written
through the real item encoder's store (``ItemStore``) under one content-projected version, then
a second version is registered and published (the re-projection writes every item's vector under
it too). After each phase every key of the prefix is measured with ``MEMORY USAGE`` (exact:
``SAMPLES 0``), so other clients of the same server do not disturb the figures. Writes
``bench/results/redis-memory.json`` and prints bytes per user, per item (content and text), per
item per version (its vector) and per version (files and metadata).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import uuid
from collections import defaultdict, namedtuple
from pathlib import Path

import numpy as np

from bench.scratch import delete_scratch
from learnrec.shared.config import Settings
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent
from learnrec.shared.worker import Accepted
from learnrec.stream.history_updater import HistoryHandler
from learnrec.stream.item_encoder import content_hash
from learnrec.stream.item_store import EncodedItem, ItemStore
from learnrec.versions.bootstrap import export_content_projected
from learnrec.versions.cache import VersionCache
from learnrec.versions.publish import publish
from learnrec.versions.registry import ModelRegistry

log = logging.getLogger("bench.redis_memory")
RESULT = Path("bench/results/redis-memory.json")
BATCH = 1000
ENCODER = "bench-memory"
Record = namedtuple("Record", "topic partition offset")  # what the handler reads of a Kafka record


def key_bytes(client, keys: RedisKeys) -> dict[str, int]:
    """Bytes of every key of the prefix, summed by key family (``history``, ``item``, ...)."""
    families: dict[str, int] = defaultdict(int)
    names = list(client.scan_iter(match=keys.pattern_all(), count=5000))
    for start in range(0, len(names), BATCH):
        pipe = client.pipeline(transaction=False)
        for name in names[start:start + BATCH]:
            pipe.memory_usage(name, samples=0)
        for name, size in zip(names[start:start + BATCH], pipe.execute(), strict=True):
            rest = name.decode()[len(keys.prefix) + 1:]
            families[rest.split(":")[0] if not rest.startswith("model:") else ":".join(rest.split(":")[:2])] += size or 0
    return dict(families)


def write_users(client, keys: RedisKeys, settings: Settings, users: int, events: int, items: int) -> None:
    handler = HistoryHandler(client, keys, settings)
    rng = np.random.default_rng(0)
    now, offset, batch = time.time(), 0, []
    for user in range(users):
        for n in range(events):
            event = InteractionEvent(event_id=f"e{user}-{n}", user_id=f"user-{user}", item_id=f"item-{rng.integers(items)}",
                                     timestamp=now + n)
            batch.append(Accepted(Record("interactions", 0, offset), event))
            offset += 1
        if len(batch) >= BATCH:
            handler(batch)
            batch = []
    if batch:
        handler(batch)


def write_items(client, keys: RedisKeys, registry: ModelRegistry, items: int, content_dim: int) -> None:
    store = ItemStore(client, keys, VersionCache(registry, ENCODER, content_dim), updates_maxlen=10_000)
    rng = np.random.default_rng(1)
    for start in range(0, items, BATCH):
        batch = []
        for n in range(start, min(items, start + BATCH)):
            text = f"item {n}: a product title of a typical length, with a short description of it"
            content = rng.normal(size=content_dim).astype(np.float32)
            batch.append(EncodedItem(f"item-{n}", {"title": text[:40], "text": text}, content_hash(ENCODER, text), content))
        store.write(batch, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50, help="clicks per user (the history keeps the last 50)")
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--content-dim", type=int, default=384, help="384: MiniLM, the default encoder")
    parser.add_argument("--output-dim", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    prefix = f"bench-memory-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings().replace(redis_prefix=prefix, model_dir=Path(tmp))
        client, keys = make_redis(settings), RedisKeys.from_settings(settings)
        registry = ModelRegistry.from_settings(settings, client)
        try:
            first = export_content_projected(Path(tmp) / "v1", ENCODER, args.content_dim, args.output_dim, 1, 50)
            publish(registry, registry.register(first).version)
            base = key_bytes(client, keys)
            write_users(client, keys, settings, args.users, args.events, args.items)
            users = key_bytes(client, keys)
            write_items(client, keys, registry, args.items, args.content_dim)
            items = key_bytes(client, keys)
            second = export_content_projected(Path(tmp) / "v2", ENCODER, args.content_dim, args.output_dim, 2, 50)
            publish(registry, registry.register(second).version)
            versions = key_bytes(client, keys)
            server = client.info("server").get("redis_version")
        finally:
            delete_scratch(settings, topics=False)
            client.close()
    user_bytes = sum(users.values()) - sum(base.values())
    item_families = ("item", "items", "item-updates")
    result = {
        "users": args.users, "events_per_user": args.events, "items": args.items,
        "content_dim": args.content_dim, "output_dim": args.output_dim,
        "bytes_per_user": round(user_bytes / args.users, 1),
        "bytes_per_user_by_family": {k: round((v - base.get(k, 0)) / args.users, 1) for k, v in users.items()
                                     if v != base.get(k, 0)},
        "bytes_per_item": round(sum(items.get(k, 0) for k in item_families) / args.items, 1),
        "bytes_per_item_per_version": round((versions.get("vectors", 0) - items.get("vectors", 0)) / args.items, 1),
        "bytes_per_version_files_and_meta": versions.get("model:files", 0) // 2 + versions.get("model:meta", 0) // 2,
        "by_family_at_end": versions,
        "redis_version": server,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "by_family_at_end"}, indent=1))
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
