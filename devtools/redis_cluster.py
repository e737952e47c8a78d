"""A local Redis Cluster: three masters with one replica each, on 127.0.0.1.

``python -m devtools.services redis-cluster-up|redis-cluster-down``. Six ``redis-server``
processes with ``cluster-enabled``, joined once by ``redis-cli --cluster create`` (16384 slots
over the three masters, a replica for each); a master that dies is replaced by its replica
after ``cluster-node-timeout``. learnrec talks to it with ``LEARNREC_REDIS_CLUSTER=true``
(:func:`learnrec.shared.redis_client.make_redis`), which puts every key of a deployment under
one hash tag (:class:`learnrec.shared.redis_keys.RedisKeys`), so each script and transaction
touches one slot.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devtools.local_services import ServiceError, running_pid, stop_process
from learnrec.shared.config import Settings

NODES = 6  # three masters, three replicas
NODE_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class LocalRedisCluster:
    """Node ``i`` listens on ``ports[i]``; state under ``root``."""

    settings: Settings
    root: Path
    ports: tuple[int, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalRedisCluster:
        """The cluster under ``<cache_dir>/services/redis-cluster`` on ``redis_cluster_port`` and the five after it."""
        base = settings.local.redis_cluster_port
        return cls(settings, settings.process.cache_dir.resolve() / "services" / "redis-cluster",
                   tuple(base + n for n in range(NODES)))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def env_lines(self) -> list[str]:
        return [f"export REDIS_URL={self.url}", "export LEARNREC_REDIS_CLUSTER=true",
                f"export LEARNREC_REDIS_CLUSTER_NODES={self.nodes}"]

    @property
    def nodes(self) -> str:
        """Every node as ``host:port,...`` (``LEARNREC_REDIS_CLUSTER_NODES``)."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def up(self, timeout_s: float = 60.0) -> None:
        """Start the nodes that are not running, join them into a cluster the first time, and
        wait until every node reports the cluster ok."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed (python -m devtools.services up installs it)")
        self.root.mkdir(parents=True, exist_ok=True)
        for port in self.ports:
            if self.pid(port) is None:
                self.start(port)
        self._wait(lambda: all(self._answers(port) for port in self.ports), timeout_s, "the Redis nodes to answer")
        if not (self.root / "created").exists():
            cli = shutil.which("redis-cli")
            if cli is None:
                raise ServiceError("redis-cli is needed to create the cluster (Debian's redis-tools)")
            result = subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
                 "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True)
            if result.returncode != 0:
                raise ServiceError(f"redis-cli --cluster create failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
            (self.root / "created").write_text("ok\n")
        self._wait(self.healthy, timeout_s, "the Redis Cluster to be ok")

    def start(self, port: int) -> None:
        """Start one node (its cluster state, in ``nodes-{port}.conf``, survives restarts)."""
        folder = self.root / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port", str(port),
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(folder),
             "--daemonize", "yes", "--pidfile", str(self.root / f"{port}.pid"),
             "--logfile", str(self.root / f"{port}.log"), "--appendonly", "yes", "--save", ""],
            check=True,
        )

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crash); its data and cluster state stay."""
        stop_process(self.root / f"{port}.pid", grace_s=0)

    def down(self) -> None:
        """Stop every node (SIGTERM, SIGKILL after 10 s); data kept."""
        for port in self.ports:
            stop_process(self.root / f"{port}.pid", grace_s=10)

    def pid(self, port: int) -> int | None:
        """The running node's pid, or None."""
        return running_pid(self.root / f"{port}.pid")

    def masters(self) -> list[int]:
        """The ports of the nodes that are masters now."""
        return [port for port in self.ports if self._answers(port) and self._role(port) == "master"]

    def healthy(self) -> bool:
        """Every running node says ``cluster_state:ok``, three masters serve the slots, and every
        replica's link to its master is up (its first sync done: a replica that never synced
        cannot take its master's place)."""
        running = [port for port in self.ports if self.pid(port) is not None]
        masters = self.masters()
        if not all(self._cluster_ok(port) for port in running) or len(masters) != NODES // 2:
            return False
        replicas = [self._client(port).info("replication") for port in running if port not in masters]
        return all(info.get("master_link_status") == "up" for info in replicas)

    def _client(self, port: int) -> redis.Redis:
        # no retries: a node that does not answer is reported at once
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2,
                           retry=Retry(NoBackoff(), 0))

    def _answers(self, port: int) -> bool:
        try:
            return bool(self._client(port).ping())
        except redis.RedisError:
            return False

    def _role(self, port: int) -> str:
        return self._client(port).execute_command("ROLE")[0].decode()

    def _cluster_ok(self, port: int) -> bool:
        try:
            return self._client(port).execute_command("CLUSTER INFO").get("cluster_state") == "ok"
        except redis.RedisError:
            return False

    @staticmethod
    def _wait(condition, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise ServiceError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            time.sleep(0.2)
