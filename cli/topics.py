"""``learnrec topics``: create the Kafka topics (idempotent)."""

from __future__ import annotations

import argparse

from learnrec.shared.config import get_settings
from learnrec.shared.kafka_io import ensure_topics


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partitions", type=int, default=None, help="partitions for new topics")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    created = ensure_topics(get_settings(), partitions=args.partitions)
    print(f"created: {', '.join(created) if created else 'nothing (all topics exist)'}")
    return 0
