"""``learnrec services up|down|status|env``: local Kafka and Redis."""

from __future__ import annotations

import argparse
import sys

from shared.config import get_settings
from shared.local_services import LocalServices, ServiceError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    services = LocalServices(get_settings())
    try:
        if args.action == "up":
            services.up()
            print("\n".join(services.env_lines()))
        elif args.action == "down":
            services.down()
            print("stopped")
        elif args.action == "env":
            print("\n".join(services.env_lines()))
        else:
            state = services.status()
            for name, ok in state.items():
                print(f"{name}: {'up' if ok else 'down'}")
            return 0 if all(state.values()) else 1
    except ServiceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
