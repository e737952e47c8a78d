"""A worker killed with SIGKILL mid-stream and restarted: no item without a vector, no
interaction applied twice, nothing lost. The workers run as real ``learnrec stream`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from learnrec.shared.config import Settings, process_env
from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.versions.registry import ModelRegistry
from tests.stream_helpers import produce, save_tiny_encoder, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _start(settings: Settings, worker: str, log: Path, **extra: str) -> subprocess.Popen:
    """The worker process, its stderr (its log) going to ``log``: a pipe nobody reads while it
    runs would fill up (64 KiB) and block the worker on its next log line."""
    env = os.environ | process_env(settings) | {
        "LEARNREC_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LEARNREC_METRICS_PORT": "0",
        **{f"LEARNREC_{k.upper()}": v for k, v in extra.items()},
    }
    with open(log, "ab") as stderr:
        return subprocess.Popen([sys.executable, "-m", "learnrec.cli", "stream", worker], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def _stop(process: subprocess.Popen, log: Path) -> None:
    """SIGTERM; the worker must finish its batch, commit and exit 0. If it has not exited after
    15 s, it is asked for its threads' stacks (SIGUSR1, written to its log) before it is killed,
    and the test fails with the end of that log."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)
            time.sleep(1.0)  # the stack dump is written by the worker's own signal handler
            process.kill()
            process.wait(timeout=10)
            pytest.fail("the worker did not exit within 15 s of SIGTERM; its log ends:\n" + log.read_text()[-6000:])
        assert process.returncode == 0, log.read_text()[-3000:]


def test_item_encoder_killed_mid_batch_leaves_no_item_without_a_vector(settings, redis_client, tmp_path):
    ensure_topics(settings)
    keys = RedisKeys.from_settings(settings)
    n_items = 200
    produce(settings, [ItemEvent(item_id=f"i{n}", title=f"item {n} caliper", brand="acme") for n in range(n_items)])
    worker_settings = {"encoder": save_tiny_encoder(tmp_path / "tiny"), "item_batch_size": "10"}
    first = _start(settings, "items", tmp_path / "first.log", **worker_settings)
    try:
        assert wait_until(lambda: redis_client.scard(keys.items()) >= 30 or first.poll() is not None, 60, 0.01), \
            (tmp_path / "first.log").read_text() if first.poll() is not None else "no progress"
    finally:
        _kill(first)
    done_before_restart = redis_client.scard(keys.items())
    assert done_before_restart < n_items, "the worker finished before it could be killed"
    second = _start(settings, "items", tmp_path / "second.log", **worker_settings)
    try:
        assert wait_until(lambda: redis_client.scard(keys.items()) == n_items, 60)
    finally:
        _stop(second, tmp_path / "second.log")
    version = ModelRegistry.from_settings(settings, redis_client).current()
    assert redis_client.hlen(keys.vectors(version)) == n_items
    announced = {f[b"item_id"] for _, f in redis_client.xrange(keys.item_updates())}
    assert len(announced) == n_items


def test_history_updater_killed_mid_stream_applies_every_interaction_once(settings, redis_client, tmp_path):
    ensure_topics(settings)
    keys = RedisKeys.from_settings(settings)
    now = time.time()
    users = [f"u{n}" for n in range(20)]
    events = [InteractionEvent(event_id=f"e{n}", user_id=users[n % len(users)], item_id=f"i{n % 97}", timestamp=now)
              for n in range(20_000)]
    produce(settings, events)
    worker_settings = {"history_length": "5000", "history_batch_size": "500"}

    def applied() -> int:
        pipe = redis_client.pipeline(transaction=False)
        for user in users:
            pipe.llen(keys.history(user))
        return sum(pipe.execute())

    first = _start(settings, "history", tmp_path / "first.log", **worker_settings)
    try:
        assert wait_until(lambda: applied() >= 2_000 or first.poll() is not None, 60, 0.005), "no progress"
    finally:
        _kill(first)
    assert applied() < len(events), "the worker finished before it could be killed"
    second = _start(settings, "history", tmp_path / "second.log", **worker_settings)
    try:
        assert wait_until(lambda: applied() >= len(events), 60)
        time.sleep(1.0)  # would a redelivered batch add anything more?
    finally:
        _stop(second, tmp_path / "second.log")
    for user in users:
        expected = [e.item_id for e in events if e.user_id == user]
        assert [i.decode() for i in redis_client.lrange(keys.history(user), 0, -1)] == expected
    popularity = redis_client.zrange(keys.popular(int(now // settings.stream.popularity_bucket_s)), 0, -1, withscores=True)
    assert {i.decode(): c for i, c in popularity} == dict(Counter(e.item_id for e in events))
