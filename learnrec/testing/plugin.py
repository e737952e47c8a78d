"""The learnrec pytest plugin (registered as the ``pytest11`` entry point ``learnrec``).

Fixtures:

- ``learnrec_servers`` (session): ``(kafka_bootstrap, redis_url)`` of a real Kafka broker and
  Redis server (from the environment, testcontainers, or the local launcher: see
  :mod:`learnrec.testing.servers`);
- ``learnrec_settings``: :class:`~learnrec.shared.config.Settings` for one test: fresh topic and Redis
  key prefixes, model versions and the trainer's checkpoint under ``tmp_path``; the trainer
  publishes (with no gate) after 500 interactions, so a short test sees the bootstrap version
  (override the fixture with ``learnrec_settings.replace(...)`` to change that);
- ``learnrec``: a running :class:`~learnrec.testing.stack.LearnrecStack` (the four components,
  a producer as ``learnrec.producer``, a client as ``learnrec.client``, and
  ``wait_until_servable`` / ``wait_until_reflected``); its Redis keys are deleted afterwards.

Without a server the tests that need one are skipped with the reason, or fail when ``CI`` is
true (a missing server in CI is a failure).
"""

from __future__ import annotations

import os
import uuid

import pytest

from learnrec.testing.servers import Servers, ServersUnavailable

_SERVERS = Servers()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def learnrec_servers() -> tuple[str, str]:
    """``(kafka_bootstrap, redis_url)`` of servers that answer; skips (fails under CI) otherwise."""
    try:
        return _SERVERS.checked()
    except ServersUnavailable as err:
        message = f"Kafka and Redis are not available: {err}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: a missing server is a failure)", pytrace=False)
        pytest.skip(message)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _SERVERS.stop()


@pytest.fixture
def learnrec_settings(learnrec_servers: tuple[str, str], tmp_path):
    """Settings isolated to this test (its own topics, consumer groups and Redis keys)."""
    from learnrec.shared.config import Settings

    kafka, redis_url = learnrec_servers
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka, REDIS_URL=redis_url,
        topic_prefix=f"{prefix}.", redis_prefix=prefix, partitions=2,
        model_dir=tmp_path / "models", trainer_checkpoint=tmp_path / "trainer" / "online.ckpt",
        trainer_batch_size=32, trainer_publish_every_events=500, trainer_publish_every_s=300.0,
        trainer_gate_events=0, trainer_threads=1,
    )


@pytest.fixture
def learnrec(learnrec_settings):
    """A running learnrec for this test; stopped, and its Redis keys deleted, afterwards."""
    from learnrec.shared.redis_client import make_redis
    from learnrec.shared.redis_keys import RedisKeys
    from learnrec.testing.stack import LearnrecStack

    stack = LearnrecStack(learnrec_settings).start()
    try:
        yield stack
    finally:
        try:
            stack.stop()
        finally:
            with make_redis(learnrec_settings) as redis:
                keys = list(redis.scan_iter(match=RedisKeys.from_settings(learnrec_settings).pattern_all(),
                                            count=1000))
                if keys:
                    redis.delete(*keys)
