"""Redis round trip on a real server, under the test's own key prefix."""

from __future__ import annotations

import numpy as np
import pytest

from learnrec.shared.redis_keys import RedisKeys

pytestmark = pytest.mark.integration


def test_vectors_and_histories_round_trip(settings, redis_client):
    keys = RedisKeys.from_settings(settings)
    vector = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    redis_client.hset(keys.vectors("v1"), "item-1", vector.tobytes())
    back = np.frombuffer(redis_client.hget(keys.vectors("v1"), "item-1"), dtype=np.float32)
    np.testing.assert_array_equal(back, vector)

    redis_client.rpush(keys.history("u1"), "a", "b", "c")
    redis_client.ltrim(keys.history("u1"), -2, -1)
    assert redis_client.lrange(keys.history("u1"), 0, -1) == [b"b", b"c"]
    assert all(k.decode().startswith(keys.prefix + ":") for k in redis_client.scan_iter(match=keys.pattern_all()))
