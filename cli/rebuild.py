"""``learnrec rebuild --yes``: empty this deployment's Redis state so that the stream workers
rebuild it from the Kafka logs (what they do by themselves when Redis is wiped or replaced:
:mod:`learnrec.shared.rebuild`). Serving answers 503 until the state is back."""

from __future__ import annotations

import argparse

from learnrec.shared.config import get_settings
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="really delete every key under the Redis prefix")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.yes:
        raise SystemExit("learnrec rebuild deletes every key under the Redis prefix; pass --yes")
    settings = get_settings()
    client = make_redis(settings)
    keys = RedisKeys.from_settings(settings)
    client.delete(keys.epoch())  # first: a worker writing meanwhile fails its epoch check
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=keys.pattern_all(), count=1000):
        batch.append(key)
        if len(batch) == 1000:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    print(f"deleted {deleted} keys under {keys.pattern_all()}; the stream workers rebuild them from the logs")
    return 0
