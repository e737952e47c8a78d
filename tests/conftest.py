"""Fixtures that find a real Kafka broker and a real Redis server.

Order: ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` from the environment; testcontainers when a
Docker daemon answers; else the project's own launcher (``learnrec services up``). Under
``CI=true`` a server that cannot be had fails the tests; elsewhere they are skipped with the
reason.

Every test gets its own topic prefix and Redis key prefix (``settings`` fixture), so tests never
see each other's events even on one shared broker.
"""

from __future__ import annotations

import os
import uuid

import pytest

from shared.config import Settings
from shared.local_services import LocalServices, ServiceError, kafka_answers, redis_answers

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(what: str, why: str) -> None:
    message = f"{what} is not available: {why}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing server is a failure)", pytrace=False)
    pytest.skip(message)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


class _Servers:
    """Resolves both servers once per session, remembering what it started."""

    def __init__(self) -> None:
        self.kafka: str | None = None
        self.redis: str | None = None
        self.error: str | None = None
        self._containers: list[object] = []

    def resolve(self) -> None:
        if self.kafka and self.redis or self.error:
            return
        self.kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.redis = os.environ.get("REDIS_URL")
        if self.kafka and self.redis:
            return
        if _docker_answers():
            self._start_containers()
            return
        services = LocalServices(Settings())
        try:
            services.up()
        except ServiceError as err:
            self.error = f"the local launcher failed: {err}"
            return
        self.kafka = self.kafka or services.kafka_bootstrap
        self.redis = self.redis or services.redis_url

    def _start_containers(self) -> None:
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        if not self.kafka:
            kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
            kafka.start()
            self._containers.append(kafka)
            self.kafka = kafka.get_bootstrap_server()
        if not self.redis:
            redis_container = RedisContainer("redis:7")
            redis_container.start()
            self._containers.append(redis_container)
            host = redis_container.get_container_host_ip()
            port = redis_container.get_exposed_port(6379)
            self.redis = f"redis://{host}:{port}/0"

    def stop(self) -> None:
        for container in self._containers:
            container.stop()  # type: ignore[attr-defined]


_SERVERS = _Servers()


def _answering(what: str, address: str | None, answers) -> str:
    """``address`` once ``answers(address)``; else skip, or fail under CI."""
    if _SERVERS.error or not address:
        _unavailable(what, _SERVERS.error or "no server")
    assert address
    if not answers(address):
        _unavailable(what, f"nothing answers at {address}")
    return address


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of a real Kafka broker that answers."""
    _SERVERS.resolve()
    return _answering("Kafka", _SERVERS.kafka, kafka_answers)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis server that answers."""
    _SERVERS.resolve()
    return _answering("Redis", _SERVERS.redis, redis_answers)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _SERVERS.stop()


@pytest.fixture
def isolated_prefix() -> str:
    """A fresh prefix for one test's topics, groups and Redis keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, isolated_prefix: str, tmp_path) -> Settings:
    """Settings pointing at the real servers, isolated to this test."""
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        REDIS_URL=redis_url,
        topic_prefix=f"{isolated_prefix}.",
        redis_prefix=isolated_prefix,
        partitions=2,
        model_dir=tmp_path / "models",
    )


@pytest.fixture
def redis_client(settings: Settings):
    """A Redis client; every key under this test's prefix is deleted afterwards."""
    from shared.redis_client import make_redis

    client = make_redis(settings)
    yield client
    keys = list(client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
