"""Several hosts on one machine: every component a real ``learnrec`` process in its own folder
(its own cache, model folder and checkpoint path; nothing shared but Kafka and Redis), two of
each of item encoder, history updater and serving, and a group of two online trainers, on the
three-node Kafka cluster and the Redis Cluster (tests/integration/conftest.py). Mid-stream the
leader of an interactions partition and the master of the deployment's Redis slot are
SIGKILLed together. Then: every history is exactly the items sent, the trainer group trained
every event exactly once, and both serving replicas answer with the current version after each
flip, each having fetched the version's files from Redis into its own folder.

The one thing the hosts share is the content encoder's weights, as they would share an
installed package (the encoder's id is its path, and a version names the encoder its vectors
came from).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from learnrec.shared.config import process_env
from learnrec.shared.kafka_io import ensure_topics
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.testing.live_server import free_port
from learnrec.trainer import group_checkpoint
from tests.cluster_helpers import assert_histories_are, partition_leader, stream_through_a_kill
from tests.stream_helpers import produce, save_tiny_encoder, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ITEMS = 30
EVENTS = 1200


@dataclass
class Host:
    name: str
    folder: Path
    process: subprocess.Popen
    port: int | None = None

    def version(self) -> str | None:
        """The model version this serving replica answers with (None: not ready)."""
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5)
        except httpx.HTTPError:
            return None
        return answer.json().get("model_version") if answer.status_code == 200 else None

    def log(self) -> str:
        return (self.folder / "log").read_text()[-4000:]


def _start(name: str, folder: Path, env: dict[str, str], *argv: str, port: int | None = None) -> Host:
    folder.mkdir(parents=True)
    env = env | {"LEARNREC_CACHE_DIR": str(folder / "cache"), "LEARNREC_MODEL_DIR": str(folder / "models"),
                 "LEARNREC_TRAINER_CHECKPOINT": str(folder / "online.ckpt")}
    with open(folder / "log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "learnrec.cli", *argv], env=env, cwd=folder,
                                   stdout=subprocess.DEVNULL, stderr=log)
    return Host(name, folder, process, port)


def _stop(hosts: list[Host]) -> None:
    for host in hosts:
        if host.process.poll() is None:
            host.process.send_signal(signal.SIGTERM)
    for host in hosts:
        try:
            host.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            host.process.kill()
            host.process.wait()


def _stacks(hosts: list[Host]) -> list[str]:
    """Each host's log tail after SIGUSR1 made it write every thread's stack there (a stuck
    process shows where it waits)."""
    for host in hosts:
        host.process.send_signal(signal.SIGUSR1)
    wait_until(lambda: False, 2)
    return [host.log() for host in hosts]


def _all_serve_the_current_version(client, keys: RedisKeys, serving: list[Host], previous: str | None) -> str:
    """Wait for a flip past ``previous``; then every replica must answer with the current version."""
    def flipped() -> bool:
        current = client.get(keys.model_current())
        return current is not None and current.decode() != previous

    assert wait_until(flipped, 120), f"no version after {previous}"

    def converged() -> bool:
        current = client.get(keys.model_current()).decode()
        return all(host.version() == current for host in serving)

    assert wait_until(converged, 60, 0.2), [(h.name, h.version()) for h in serving]
    return client.get(keys.model_current()).decode()


def test_hosts_share_nothing_but_the_clusters_and_survive_a_broker_and_a_master(
        settings, kafka_cluster, redis_cluster, tmp_path):
    settings = settings.replace(
        KAFKA_BOOTSTRAP_SERVERS=kafka_cluster.bootstrap, replication_factor=3, partitions=4,
        REDIS_URL=redis_cluster.url, redis_cluster=True, redis_cluster_nodes=redis_cluster.nodes,
        history_length=EVENTS, kafka_session_timeout_ms=6000)
    keys, client = RedisKeys.from_settings(settings), make_redis(settings)
    ensure_topics(settings)
    env = os.environ | process_env(settings) | {
        "LEARNREC_REPLICATION_FACTOR": "3", "LEARNREC_PARTITIONS": "4", "LEARNREC_REDIS_CLUSTER": "true",
        "LEARNREC_REDIS_CLUSTER_NODES": redis_cluster.nodes, "LEARNREC_HISTORY_LENGTH": str(EVENTS),
        "LEARNREC_KAFKA_SESSION_TIMEOUT_MS": "6000", "LEARNREC_METRICS_PORT": "0",
        "LEARNREC_ENCODER": save_tiny_encoder(tmp_path / "installed-encoder"),
        "LEARNREC_TRAINER_GROUP": "true", "LEARNREC_TRAINER_GROUP_MEMBER_TTL_S": "3",
        "LEARNREC_TRAINER_AUDIT": "true", "LEARNREC_TRAINER_GATE_EVENTS": "0", "LEARNREC_TRAINER_BATCH_SIZE": "32",
        "LEARNREC_TRAINER_CHECKPOINT_EVERY": "200", "LEARNREC_TRAINER_PUBLISH_EVERY_S": "3",
        "LEARNREC_TRAINER_THREADS": "1",
    }
    hosts = [_start(f"{role}-{n}", tmp_path / f"{role}-{n}", env, *argv)
             for role, argv in (("encoder", ("stream", "items")), ("history", ("stream", "history")),
                                ("trainer", ("train", "online")))
             for n in (1, 2)]
    serving = [_start(f"serving-{n}", tmp_path / f"serving-{n}", env, "serve", "--port", str(port), port=port)
               for n, port in ((1, free_port()), (2, free_port()))]
    hosts += serving
    try:
        produce(settings, [ItemEvent(item_id=f"i{n}", title=f"item {n} caliper", brand="acme") for n in range(ITEMS)])
        assert wait_until(lambda: client.scard(keys.items()) == ITEMS, 180), hosts[0].log()
        version = _all_serve_the_current_version(client, keys, serving, None)  # the item encoder's bootstrap

        broker, master = partition_leader(settings), client.get_node_from_key(keys.history_applied()).port

        def kill_both() -> None:
            kafka_cluster.kill(broker)
            redis_cluster.kill(master)

        sent = stream_through_a_kill(settings, lambda: client.exists(keys.history("u0")), kill_both,
                                     events=EVENTS, item_of=lambda n: f"i{n % ITEMS}")
        assert wait_until(lambda: master not in redis_cluster.masters() and len(redis_cluster.masters()) == 3, 60)
        redis_cluster.start(master)  # back as the promoted master's replica: writes are durable again
        kafka_cluster.start(broker)
        assert wait_until(redis_cluster.healthy, 60)
        assert_histories_are(client, keys, sent, timeout_s=180)

        def all_trained() -> bool:
            state = group_checkpoint.read(client, keys)
            return state is not None and sum(part["trained"] for part in state.parts) >= EVENTS

        assert wait_until(all_trained, 180), _stacks([h for h in hosts if h.name.startswith("trainer")])
        audit: dict[str, int] = {}
        for part in group_checkpoint.read(client, keys).parts:
            for event_id, times in part["audit"].items():
                audit[event_id] = audit.get(event_id, 0) + times
        assert audit == {f"e{n}": 1 for n in range(EVENTS)}

        version = _all_serve_the_current_version(client, keys, serving, version)  # the trainers' versions
        produce(settings, [InteractionEvent(event_id=f"e{k}", user_id=f"u{k % 40}", item_id=f"i{k % ITEMS}")
                           for k in range(EVENTS, EVENTS + 200)])
        version = _all_serve_the_current_version(client, keys, serving, version)  # and the next flip
        assert all(host.process.poll() is None for host in hosts), [h.name for h in hosts if h.process.poll()]
    finally:
        _stop(hosts)
        client.close()
    for host in serving:  # each replica fetched the version's files from Redis into its own folder
        assert (host.folder / "models" / version / "item_tower.onnx").is_file(), host.name
    assert not list(tmp_path.rglob("online.ckpt"))  # the trainers' checkpoint is in Redis
