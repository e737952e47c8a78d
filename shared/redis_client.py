"""Redis connection factory."""

from __future__ import annotations

import redis

from shared.config import Settings


def make_redis(settings: Settings) -> redis.Redis:
    """A client on ``settings.redis_url`` returning raw bytes (vectors are stored as bytes).

    The timeouts are short because Redis is on the request path of serving: a slow Redis should
    fail a request, not hang it.
    """
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=5.0,
        socket_connect_timeout=5.0,
        health_check_interval=30,
    )
