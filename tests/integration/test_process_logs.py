"""Every learnrec process writes its logs as JSON lines: the two stream workers, the online
trainer and the API with two worker processes, run as real ``learnrec`` commands, with a
malformed event among the good ones (a dead-letter warning). Every line each one writes to
stderr parses as a JSON object with the formatter's keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from learnrec.shared.config import Settings, process_env
from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.shared.topics import ITEMS
from learnrec.testing.live_server import free_port
from tests.stream_helpers import produce, save_tiny_encoder, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _start(env: dict[str, str], *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "learnrec.cli", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return stderr.decode()


def test_every_process_writes_json_lines(settings: Settings, redis_client, tmp_path):
    ensure_topics(settings)
    items = [ItemEvent(item_id=f"i{n}", title=f"item {n} caliper", brand="acme") for n in range(20)]
    clicks = [InteractionEvent(event_id=f"e{n}", user_id=f"u{n % 4}", item_id=f"i{n % 20}",
                               timestamp=1_700_000_000 + n) for n in range(40)]
    produce(settings, items + clicks, raw=[(ITEMS, b"bad", b"{not json")])
    port = free_port()
    env = os.environ | process_env(settings) | {
        "LEARNREC_ENCODER": save_tiny_encoder(tmp_path / "tiny"),
        "LEARNREC_METRICS_PORT": "0",
        "LEARNREC_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LEARNREC_TRAINER_CHECKPOINT": str(tmp_path / "online.ckpt"),
        "LEARNREC_TRAINER_PUBLISH_EVERY_S": "1",
        "LEARNREC_TRAINER_GATE_EVENTS": "0",
    }
    processes = {
        "item encoder": _start(env, "stream", "items"),
        "history updater": _start(env, "stream", "history"),
        "online trainer": _start(env, "train", "online", "--max-idle-s", "5"),
        "api": _start(env, "serve", "--port", str(port), "--workers", "2"),
    }
    keys = RedisKeys.from_settings(settings)
    try:
        assert wait_until(lambda: redis_client.scard(keys.items()) == len(items), 90), "items not encoded"
        assert wait_until(lambda: _ready(port), 90), "the API never became ready"
        for _ in range(4):  # spread over both API workers
            httpx.get(f"http://127.0.0.1:{port}/v1/users/u1/recommendations", timeout=10)
        processes["online trainer"].wait(timeout=120)  # exits after 5 s without events
    finally:
        logs = {name: _stop(process) for name, process in processes.items()}
    for name, text in logs.items():
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines, f"{name} wrote no log line"
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                pytest.fail(f"{name} wrote a line that is not JSON: {line!r}")
            assert {"t", "level", "logger", "pid", "msg"} <= set(entry), f"{name}: {entry}"
    assert any(json.loads(line).get("level") == "WARNING" for line in logs["item encoder"].splitlines()
               if line.strip()), "the malformed item was not logged"
    swaps = [json.loads(line) for line in logs["api"].splitlines()
             if line.strip() and "serving model version" in json.loads(line)["msg"]]
    assert len({entry["pid"] for entry in swaps}) == 2, "each API worker logs its own lines"


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
