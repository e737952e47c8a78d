"""``python -m devtools.services up|down|status|env``: local Kafka and Redis for development and
tests (``up`` and ``env`` print the ``export`` lines that point learnrec at them).
``kafka-cluster-up|kafka-cluster-down``: a three-node Kafka cluster instead of the single broker
(:mod:`devtools.kafka_cluster`), ``redis-cluster-up|redis-cluster-down``: a Redis Cluster of three
masters and three replicas instead of the single Redis (:mod:`devtools.redis_cluster`); each ``-up``
prints its ``export`` lines."""

from __future__ import annotations

import argparse
import sys

from devtools.kafka_cluster import LocalKafkaCluster
from devtools.local_services import LocalServices, ServiceError
from devtools.redis_cluster import LocalRedisCluster
from learnrec.shared.config import get_settings
from learnrec.shared.logs import setup_logging

CLUSTERS = {"kafka-cluster": LocalKafkaCluster, "redis-cluster": LocalRedisCluster}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.services", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "env",
                                           *(f"{name}-{verb}" for name in CLUSTERS for verb in ("up", "down"))])
    args = parser.parse_args(argv)
    setup_logging()
    services = LocalServices(get_settings())
    try:
        if args.action == "up":
            services.up()
            print("\n".join(services.env_lines()))
        elif args.action == "down":
            services.down()
            print("stopped")
        elif args.action.endswith("-cluster-up"):
            cluster = CLUSTERS[args.action.removesuffix("-up")].from_settings(services.settings)
            cluster.up()
            print("\n".join(cluster.env_lines()))
        elif args.action.endswith("-cluster-down"):
            CLUSTERS[args.action.removesuffix("-down")].from_settings(services.settings).down()
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


if __name__ == "__main__":
    sys.exit(main())
