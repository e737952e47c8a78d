"""kill -9 the online trainer mid-stream, restart it: every event is trained exactly once.

The trainer runs as a real ``learnrec train online`` process with ``trainer_audit`` on, so its
checkpoint counts how often each event_id was trained; the model, the optimizer, the offsets
and that count are saved together, so the count is the truth about the saved model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from learnrec.shared.config import process_env
from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.model.checkpoint import load as load_checkpoint
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent
from tests.stream_helpers import produce, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAIN_ONLINE = [sys.executable, "-m", "learnrec.cli", "train", "online", "--max-idle-s", "3"]
N_EVENTS = 3000


def _put_items(client, keys: RedisKeys, n: int, dim: int = 16) -> None:
    rng = np.random.default_rng(0)
    pipe = client.pipeline()
    for k in range(n):
        v = rng.standard_normal(dim).astype(np.float32)
        pipe.hset(keys.item(f"i{k}"), mapping={"content": (v / np.linalg.norm(v)).tobytes(), "content_hash": f"h{k}"})
        pipe.sadd(keys.items(), f"i{k}")
    pipe.execute()


def _start(settings, checkpoint, log) -> subprocess.Popen:
    """The trainer process, its stderr (its log) going to the file ``log``: a pipe nobody reads
    while it runs would fill up (64 KiB) and block the trainer on its next log line."""
    env = os.environ | process_env(settings) | {
        "LEARNREC_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LEARNREC_TRAINER_CHECKPOINT": str(checkpoint),
        "LEARNREC_TRAINER_AUDIT": "true",
        "LEARNREC_TRAINER_BATCH_SIZE": "32",
        "LEARNREC_TRAINER_CHECKPOINT_EVERY": "200",
        "LEARNREC_TRAINER_THREADS": "1",
        "LEARNREC_ENCODER": "test-random-16",
    }
    with open(log, "ab") as stderr:
        return subprocess.Popen(TRAIN_ONLINE, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def _trained(checkpoint) -> int:
    try:
        return int(load_checkpoint(checkpoint)[1]["trained"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


def test_killed_trainer_resumes_training_every_event_exactly_once(settings, redis_client, tmp_path):
    ensure_topics(settings)
    _put_items(redis_client, RedisKeys.from_settings(settings), 100)
    events = [InteractionEvent(event_id=f"e{k}", user_id=f"u{k % 37}", item_id=f"i{(k * 7) % 100}") for k in range(N_EVENTS)]
    produce(settings, events)
    checkpoint = tmp_path / "online.ckpt"

    first = _start(settings, checkpoint, tmp_path / "first.log")
    try:
        assert wait_until(lambda: _trained(checkpoint) >= 400 or first.poll() is not None, 120, 0.05), "no progress"
        assert first.poll() is None, (tmp_path / "first.log").read_text()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    at_kill = _trained(checkpoint)
    assert at_kill < N_EVENTS, "the trainer finished before it could be killed"

    second = _start(settings, checkpoint, tmp_path / "second.log")
    assert second.wait(timeout=240) == 0, (tmp_path / "second.log").read_text()[-3000:]
    _, extra = load_checkpoint(checkpoint)
    # the newest events are held back for the publish gate: saved, not trained yet
    held = {entry[0] for entry in extra["holdback"]}
    assert len(held) == 500 and extra["trained"] == N_EVENTS - len(held)
    assert extra["audit"] == {e.event_id: 1 for e in events if e.event_id not in held}
    assert sum(extra["offsets"].values()) == N_EVENTS
    per_user = np.bincount([int(e.user_id[1:]) for e in events])
    kept = sum(min(n, extra["sequences"]["max_len"]) for n in per_user)
    assert sum(len(s) for s in extra["sequences"]["seqs"].values()) == kept
