"""Fixtures over a real Kafka broker and a real Redis server.

The servers come from learnrec's own pytest plugin (``learnrec_servers`` in
:mod:`learnrec.testing.plugin`: the environment, testcontainers when Docker answers, else the
local launcher; under ``CI=true`` a missing server fails the tests, elsewhere they are skipped).

Every test gets its own topic prefix and Redis key prefix (``settings`` fixture), so tests never
see each other's events even on one shared broker.
"""

from __future__ import annotations

import uuid

import pytest

from learnrec.shared.config import Settings


@pytest.fixture(scope="session")
def kafka_bootstrap(learnrec_servers: tuple[str, str]) -> str:
    """Bootstrap address of a real Kafka broker that answers."""
    return learnrec_servers[0]


@pytest.fixture(scope="session")
def redis_url(learnrec_servers: tuple[str, str]) -> str:
    """URL of a real Redis server that answers."""
    return learnrec_servers[1]


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
    from learnrec.shared.redis_client import make_redis
    from learnrec.shared.redis_keys import RedisKeys

    client = make_redis(settings)
    yield client
    keys = list(client.scan_iter(match=RedisKeys.from_settings(settings).pattern_all(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()
