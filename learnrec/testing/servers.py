"""Finds a real Kafka broker and a real Redis server for a test session.

Order: ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` from the environment; testcontainers when a
Docker daemon answers; else learnrec's own launcher in a checkout (``python -m devtools.services up``: a local KRaft
broker and redis-server). What this object started, it stops at the end of the session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

KAFKA_IMAGE = "apache/kafka:4.1.1"
REDIS_IMAGE = "redis:7"


class ServersUnavailable(RuntimeError):
    """Kafka or Redis could not be found or started; ``str(err)`` says why."""


def docker_answers() -> bool:
    """Whether a Docker daemon answers (testcontainers needs one)."""
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@dataclass
class Servers:
    """Resolves both servers once (:meth:`resolve`), remembering the containers it started."""

    kafka_bootstrap: str | None = None
    redis_url: str | None = None
    error: str | None = None
    _containers: list = field(default_factory=list)

    def resolve(self) -> Servers:
        """Fill in both addresses, or :attr:`error`; idempotent."""
        if self.kafka_bootstrap and self.redis_url or self.error:
            return self
        self.kafka_bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.redis_url = os.environ.get("REDIS_URL")
        if self.kafka_bootstrap and self.redis_url:
            return self
        if docker_answers():
            self._start_containers()
        else:
            self._start_local()
        return self

    def checked(self) -> tuple[str, str]:
        """Both addresses once both servers answer; raises :class:`ServersUnavailable`."""
        from learnrec.shared.kafka_io import kafka_answers
        from learnrec.shared.redis_client import redis_answers

        self.resolve()
        if self.error or not self.kafka_bootstrap or not self.redis_url:
            raise ServersUnavailable(self.error or "no server")
        if not kafka_answers(self.kafka_bootstrap):
            raise ServersUnavailable(f"no Kafka broker answers at {self.kafka_bootstrap}")
        if not redis_answers(self.redis_url):
            raise ServersUnavailable(f"no Redis server answers at {self.redis_url}")
        return self.kafka_bootstrap, self.redis_url

    def _start_local(self) -> None:
        try:  # the launcher is development tooling: present in a checkout, not in the wheel
            from devtools.local_services import LocalServices, ServiceError
        except ImportError:
            self.error = ("no Kafka and Redis: set KAFKA_BOOTSTRAP_SERVERS and REDIS_URL, or run "
                          "a Docker daemon for testcontainers")
            return
        from learnrec.shared.config import Settings

        services = LocalServices(Settings())
        try:
            services.up()
        except ServiceError as err:
            self.error = f"the local launcher failed: {err}"
            return
        self.kafka_bootstrap = self.kafka_bootstrap or services.kafka_bootstrap
        self.redis_url = self.redis_url or services.redis_url

    def _start_containers(self) -> None:
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        if not self.kafka_bootstrap:
            kafka = KafkaContainer(KAFKA_IMAGE).with_kraft()
            kafka.start()
            self._containers.append(kafka)
            self.kafka_bootstrap = kafka.get_bootstrap_server()
        if not self.redis_url:
            redis_container = RedisContainer(REDIS_IMAGE)
            redis_container.start()
            self._containers.append(redis_container)
            host = redis_container.get_container_host_ip()
            port = redis_container.get_exposed_port(6379)
            self.redis_url = f"redis://{host}:{port}/0"

    def stop(self) -> None:
        """Stop the containers this object started (the local launcher's servers stay up)."""
        for container in self._containers:
            container.stop()
        self._containers.clear()
