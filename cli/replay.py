"""``learnrec replay DATASET``: prequential replay of a data set through Kafka
(:mod:`learnrec.trainer.replay`); imports lightly, the replay loads on run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="a data set name under ../shared/data (ml-100k, amazon-scientific), a folder, or a .jsonl file")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--offline-fraction", type=float, default=0.25, help="first part of the stream the offline model trains on")
    parser.add_argument("--offline-minutes", type=float, default=3.0, help="time budget of the offline model")
    parser.add_argument("--publish-every", type=int, default=1000, help="events between published versions")
    parser.add_argument("--score-every", type=int, default=1, help="score every k-th interaction")
    parser.add_argument("--max-events", type=int, default=None, help="replay only the first N events")
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from learnrec.shared.config import get_settings
    from learnrec.trainer.data import data_path
    from learnrec.trainer.replay import replay

    path = Path(args.dataset)
    data = path if path.exists() else data_path(args.dataset)
    result = replay(get_settings(), data, args.out, offline_fraction=args.offline_fraction,
                    offline_minutes=args.offline_minutes, publish_every=args.publish_every,
                    score_every=args.score_every, max_events=args.max_events)
    print(json.dumps(result["second_half_recall@10"]))
    return 0
