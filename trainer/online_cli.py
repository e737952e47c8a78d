"""``learnrec train online`` arguments; imports lightly (the worker and torch load on run)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-idle-s", type=float, default=None, help="exit after this long without events")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="Prometheus port (default LEARNREC_METRICS_PORT; 0 disables)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from trainer.worker import run

    run(get_settings(), max_idle_s=args.max_idle_s, metrics_port=args.metrics_port)
    return 0
