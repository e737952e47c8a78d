"""Every Redis client learnrec makes passes the configured ACL user, password and TLS CA: tried
against a redis-server that refuses anyone else."""

from __future__ import annotations

import asyncio

import pytest
import redis

from learnrec.serving.service import ServingService
from learnrec.shared.config import Settings
from learnrec.shared.redis_client import make_redis
from tests.security.secured_servers import SecuredRedis

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-redis-password"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    with SecuredRedis(tmp_path_factory.mktemp("redis-tls"), PASSWORD) as server:
        yield server


def _settings(url: str, **kw) -> Settings:
    return Settings(REDIS_URL=url, **kw)


def test_the_user_and_password_reach_the_server(secured) -> None:
    url = f"redis://127.0.0.1:{secured.port}/0"
    client = make_redis(_settings(url, redis_username="learnrec", redis_password=PASSWORD))
    client.set("learnrec-auth-test", b"ok")
    assert client.get("learnrec-auth-test") == b"ok"
    with pytest.raises(redis.AuthenticationError):
        make_redis(_settings(url, redis_username="learnrec", redis_password="wrong")).ping()
    with pytest.raises(redis.AuthenticationError):
        make_redis(_settings(url)).ping()  # no credentials: the default user is off


def test_tls_with_the_ca_and_the_serving_clients(secured) -> None:
    url = f"rediss://127.0.0.1:{secured.tls_port}/0"
    cfg = _settings(url, redis_username="learnrec", redis_password=PASSWORD,
                    redis_ssl_ca_certs=str(secured.certs["ca"]))
    assert make_redis(cfg).ping()
    service = ServingService(cfg)  # its blocking and asyncio clients both
    assert service._sync_redis.ping()
    assert asyncio.run(service._async_redis.ping())
    with pytest.raises(redis.ConnectionError):  # the system CAs do not know the test CA
        make_redis(_settings(url, redis_username="learnrec", redis_password=PASSWORD)).ping()


def test_secrets_stay_out_of_reprs_and_bad_combinations_are_refused() -> None:
    cfg = _settings("redis://x:1/0", redis_password=PASSWORD, kafka_sasl_password="kafka-secret")
    assert PASSWORD not in repr(cfg) and "kafka-secret" not in repr(cfg) and PASSWORD not in str(cfg.model_dump())
    with pytest.raises(ValueError, match="rediss://"):
        make_redis(_settings("redis://127.0.0.1:1/0", redis_ssl_ca_certs="/tmp/ca.crt"))
