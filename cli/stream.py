"""``learnrec stream items|history``: run one replica of a stream worker.

Run more replicas (same command, same settings) to scale out: they share the consumer group and
split the partitions. ``SIGTERM`` finishes the current batch, commits and exits.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from learnrec.shared.config import get_settings


@dataclass(frozen=True)
class _Worker:
    build: str
    help: str


_WORKERS = {
    "items": _Worker("build_item_worker", "Encode item events into content embeddings and item vectors"),
    "history": _Worker("build_history_worker", "Apply interactions to user histories and popularity"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="worker", required=True, metavar="WORKER")
    for name, worker in _WORKERS.items():
        p = sub.add_parser(name, help=worker.help)
        p.add_argument("--metrics-port", type=int, default=None,
                       help="Prometheus port (default LEARNREC_METRICS_PORT; 0 disables)")
        p.add_argument("--max-idle-s", type=float, default=None,
                       help="exit after this many seconds without events (default: run until SIGTERM)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from learnrec.stream import workers
    settings = get_settings()
    worker = getattr(workers, _WORKERS[args.worker].build)(settings)
    port = settings.process.metrics_port if args.metrics_port is None else args.metrics_port
    workers.run_worker(worker, port, args.max_idle_s)
    return 0
