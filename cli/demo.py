"""``learnrec demo``: the main job. Starts Kafka and Redis if needed, runs every component,
replays a data set at an accelerated pace, writes a report, and stops everything cleanly."""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
from pathlib import Path

from rich.console import Console

from learnrec.demo import sources
from learnrec.demo.runner import DemoOptions, DemoRun
from learnrec.shared.config import Settings, get_settings
from learnrec.shared.kafka_io import kafka_answers
from learnrec.shared.redis_client import redis_answers


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="a real data set (amazon-scientific or ml-100k folder, or a JSON-lines "
                             "event log); default: seeded synthetic catalogue and users")
    parser.add_argument("--interactions", type=int, default=6000, help="interactions to replay")
    parser.add_argument("--rate", type=float, default=60.0, help="events published per second")
    parser.add_argument("--publish-every", type=float, default=20.0,
                        help="seconds between model versions published by the trainer")
    parser.add_argument("--history", type=int, default=6000,
                        help="synthetic interactions before the demo, for offline pre-training")
    parser.add_argument("--pretrain-minutes", type=float, default=1.5,
                        help="offline training on the history before the replay; 0 starts from the "
                             "bootstrap version (content embedding projected) and a fresh trainer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--report-dir", type=Path, default=Path("reports"))
    parser.add_argument("--keep-serving", action="store_true",
                        help="keep the API up after the replay until Ctrl-C")
    parser.set_defaults(func=run)


def ensure_services(settings: Settings, console: Console) -> Settings:
    """Kafka and Redis: already answering (``make demo`` starts the local ones), else Docker
    Compose when a daemon answers. Returns the settings pointing at them."""
    if kafka_answers(settings.connection.kafka_bootstrap_servers) and redis_answers(settings.connection.redis_url):
        return settings
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        console.print("starting Kafka and Redis with docker compose...")
        subprocess.run([docker, "compose", "up", "-d", "--wait", "kafka", "redis"], check=True)
        return settings
    raise SystemExit(f"no Kafka at {settings.connection.kafka_bootstrap_servers} or no Redis at "
                     f"{settings.connection.redis_url}: start them (`make demo` does, with the local "
                     "launcher), run a Docker daemon, or set KAFKA_BOOTSTRAP_SERVERS and REDIS_URL")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through DemoRun.run, which stops every component


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    console = Console()
    settings = ensure_services(get_settings(), console)
    if args.data is None:
        data = sources.synthetic(args.seed, args.interactions, args.history)
    else:
        data = sources.real(args.data, args.interactions)
    options = DemoOptions(rate=args.rate, publish_every_s=args.publish_every,
                          pretrain_minutes=args.pretrain_minutes,
                          keep_serving=args.keep_serving, report_dir=args.report_dir)
    DemoRun(settings, data, options).run()
    return 0
