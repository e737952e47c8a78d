"""Two online trainers learn as one group; kill -9 the one that leads it mid-stream: the other
takes over its partitions from the group checkpoint and every event is trained exactly once.

Each trainer is a real ``learnrec train online`` process with ``LEARNREC_TRAINER_GROUP=true``,
in its own working directory (no shared folder: the group's checkpoint is in Redis), with
``trainer_audit`` on, so the checkpoint counts how often each event id was trained.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from learnrec.shared.config import process_env
from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent
from learnrec.shared.topics import INTERACTIONS, topic_name
from learnrec.trainer import group_checkpoint
from learnrec.trainer.checkpointing import offset_key
from learnrec.trainer.membership import World
from tests.integration.test_trainer_resume import _put_items
from tests.stream_helpers import produce, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAIN_ONLINE = [sys.executable, "-m", "learnrec.cli", "train", "online", "--max-idle-s", "3"]
N_EVENTS = 4000
HELD_BACK = 100


def _start(settings, workdir, log) -> subprocess.Popen:
    """One member in its own directory (its checkpoint path there is never written)."""
    workdir.mkdir()
    env = os.environ | process_env(settings) | {
        "LEARNREC_TRAINER_GROUP": "true",
        "LEARNREC_TRAINER_GROUP_MEMBER_TTL_S": "2",
        "LEARNREC_TRAINER_GROUP_TIMEOUT_S": "30",
        "LEARNREC_CACHE_DIR": str(workdir / "cache"),
        "LEARNREC_TRAINER_CHECKPOINT": str(workdir / "online.ckpt"),
        "LEARNREC_TRAINER_AUDIT": "true",
        "LEARNREC_TRAINER_GATE_EVENTS": str(HELD_BACK),
        "LEARNREC_TRAINER_BATCH_SIZE": "32",
        "LEARNREC_TRAINER_CHECKPOINT_EVERY": "200",
        "LEARNREC_TRAINER_THREADS": "1",
        "LEARNREC_ENCODER": "test-random-16",
    }
    with open(log, "ab") as stderr:
        return subprocess.Popen(TRAIN_ONLINE, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=stderr)


def _world(client, keys: RedisKeys) -> World | None:
    return World.from_json(client.get(keys.trainer_world()))


def _trained(client, keys: RedisKeys) -> int:
    return sum(part["trained"] for part in group_checkpoint.read(client, keys).parts)


def test_a_killed_member_s_partitions_are_taken_over_and_every_event_trained_once(settings, redis_client, tmp_path):
    settings = settings.replace(partitions=4)
    keys = RedisKeys.from_settings(settings)
    ensure_topics(settings)
    _put_items(redis_client, keys, 100)
    events = [InteractionEvent(event_id=f"e{k}", user_id=f"u{k % 41}", item_id=f"i{(k * 7) % 100}")
              for k in range(N_EVENTS)]
    produce(settings, events[: N_EVENTS // 2])

    leader = _start(settings, tmp_path / "a", tmp_path / "a.log")
    assert wait_until(lambda: _world(redis_client, keys) is not None, 60, 0.1), (tmp_path / "a.log").read_text()
    other = _start(settings, tmp_path / "b", tmp_path / "b.log")
    try:
        def both_trained() -> bool:  # a checkpoint of the two, each having trained events
            state = group_checkpoint.read(redis_client, keys)
            return state is not None and len(state.parts) == 2 and all(part["trained"] for part in state.parts)

        assert wait_until(both_trained, 120, 0.1), (tmp_path / "a.log").read_text()[-3000:]
        two = _world(redis_client, keys)
        assert len(two.members) == 2 and _trained(redis_client, keys) < N_EVENTS // 2
    finally:
        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=10)
    produce(settings, events[N_EVENTS // 2 :])

    assert other.wait(timeout=240) == 0, (tmp_path / "b.log").read_text()[-3000:]
    world = _world(redis_client, keys)
    assert world.generation > two.generation and len(world.members) == 1 and world.members[0] == two.members[1]
    state = group_checkpoint.read(redis_client, keys)
    (part,) = state.parts
    held = {entry[0] for entry in part["holdback"]}
    assert len(held) == HELD_BACK and part["trained"] == N_EVENTS - HELD_BACK
    assert part["audit"] == {e.event_id: 1 for e in events if e.event_id not in held}
    assert part["offsets"] == _ends(settings)  # every partition consumed to its end
    assert not list((tmp_path / "b").glob("**/*.ckpt"))  # nothing in a folder: the checkpoint is in Redis


def _ends(settings) -> dict[str, int]:
    """``{"topic:partition": end offset}`` of the interactions topic."""
    from kafka import KafkaConsumer, TopicPartition

    topic = topic_name(settings, INTERACTIONS)
    consumer = KafkaConsumer(bootstrap_servers=settings.connection.kafka_bootstrap_servers)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(settings.connection.partitions)])
    finally:
        consumer.close()
    return {offset_key(topic, tp.partition): n for tp, n in ends.items()}
