"""Local Kafka (KRaft, plain Java process) and Redis (system redis-server) on 127.0.0.1.

``learnrec services up|down|status``. Kafka's jars come from Maven Central once
(``mvn dependency:copy-dependencies`` into ``<cache_dir>/kafka-<version>/jars``) and are reused
afterwards; the broker's storage is formatted on first start. Redis comes from Debian's
``redis-server`` package, installed with apt when missing and running as root.

Every process is started detached with a pid file, so ``down`` can stop exactly what ``up``
started. Nothing here is needed when a Docker daemon answers (``docker compose up -d kafka redis``)
or when ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` already point at running servers.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import kafka_answers
from learnrec.shared.redis_client import redis_answers

LOG4J_VERSION = "2.24.3"


class ServiceError(RuntimeError):
    """A local service could not be set up or started; the message says why."""


@dataclass(frozen=True)
class LocalServices:
    settings: Settings

    @property
    def root(self) -> Path:
        return self.settings.process.cache_dir.resolve() / "services"

    @property
    def kafka_home(self) -> Path:
        return self.settings.process.cache_dir.resolve() / f"kafka-{self.settings.local.kafka_version}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.local.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.settings.local.redis_port}/0"

    def env_lines(self) -> list[str]:
        return [
            f"export KAFKA_BOOTSTRAP_SERVERS={self.kafka_bootstrap}",
            f"export REDIS_URL={self.redis_url}",
        ]

    # ------------------------------------------------------------------ lifecycle
    def up(self, timeout_s: float = 90.0) -> None:
        """Start whatever is not answering yet, and wait until both answer."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not redis_answers(self.redis_url):
            self._start_redis()
        if not kafka_answers(self.kafka_bootstrap):
            self._start_kafka()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if redis_answers(self.redis_url) and kafka_answers(self.kafka_bootstrap):
                return
            self._check_alive()
            time.sleep(0.5)
        raise ServiceError(
            f"services did not answer within {timeout_s:.0f}s; see logs in {self.root}"
        )

    def down(self) -> None:
        """Stop what :meth:`up` started (by pid file); leaves data in place."""
        for name in ("kafka", "redis"):
            self.stop(name)

    def stop(self, name: str) -> bool:
        """Stop one service :meth:`up` started (``kafka`` or ``redis``), data kept: SIGTERM,
        SIGKILL after 10 s. Returns whether there was one to stop."""
        if self._pid(name) is None:
            return False
        stop_process(self.root / f"{name}.pid", grace_s=10)
        return True

    def status(self) -> dict[str, bool]:
        return {
            "kafka": kafka_answers(self.kafka_bootstrap),
            "redis": redis_answers(self.redis_url),
        }

    # ------------------------------------------------------------------ redis
    def _start_redis(self) -> None:
        binary = shutil.which("redis-server") or _install_redis()
        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.settings.local.redis_port),
                "--daemonize", "yes",
                "--pidfile", str(self.root / "redis.pid"),
                "--logfile", str(self.root / "redis.log"),
                "--dir", str(data),
                # Redis holds rebuildable state (Kafka is the source of truth): append-only
                # file for quick restarts, no RDB snapshots forking a copy of memory.
                "--appendonly", "yes",
                "--save", "",
                "--protected-mode", "yes",
            ],
            check=True,
        )

    # ------------------------------------------------------------------ kafka
    def _start_kafka(self) -> None:
        data = self.root / "kafka-data"
        config = self.root / "server.properties"
        config.write_text(self._server_properties(data))
        process = start_kafka_node(self, config, data, self.root / "kafka", cluster_id=new_kafka_cluster_id(),
                                   standalone=True)
        (self.root / "kafka.pid").write_text(str(process.pid))

    def fetch_kafka_jars(self) -> Path:
        """Collect the broker's jars from Maven once; returns the folder holding them."""
        jars = self.kafka_home / "jars"
        marker = self.kafka_home / "complete"
        if marker.exists():
            return jars
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ServiceError("Maven (mvn) is required to fetch Kafka's jars the first time")
        self.kafka_home.mkdir(parents=True, exist_ok=True)
        (self.kafka_home / "pom.xml").write_text(
            _POM.replace("@KAFKA@", self.settings.local.kafka_version).replace("@LOG4J@", LOG4J_VERSION)
        )
        print(f"fetching Apache Kafka {self.settings.local.kafka_version} jars with Maven (once)...", file=sys.stderr, flush=True)
        result = subprocess.run(
            [mvn, "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={jars}",
             "-DincludeScope=runtime"],
            cwd=self.kafka_home, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"mvn failed to fetch Kafka jars:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        marker.write_text("ok\n")
        return jars

    def _server_properties(self, data: Path) -> str:
        local = self.settings.local
        return kafka_properties(
            1, local.kafka_port, local.kafka_controller_port, data,
            quorum=f"controller.quorum.bootstrap.servers=127.0.0.1:{local.kafka_controller_port}", replicas=1)

    # ------------------------------------------------------------------ helpers
    def _pid(self, name: str) -> int | None:
        path = self.root / f"{name}.pid"
        try:
            return int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _check_alive(self) -> None:
        pid = self._pid("kafka")
        if pid is not None and not process_alive(pid):
            tail = (self.root / "kafka.out").read_text(errors="replace")[-3000:]
            raise ServiceError(f"Kafka exited during start-up:\n{tail}")


def start_kafka_node(services: LocalServices, config: Path, data: Path, logs: Path, *, cluster_id: str,
                     standalone: bool) -> subprocess.Popen:
    """Format ``data`` (once: a formatted folder is kept) for ``cluster_id`` and start the node
    ``config`` describes, detached; its output goes to ``{logs}.out`` and its log to
    ``{logs}.log``. ``standalone``: a one-node dynamic quorum (else the config names the voters)."""
    jars = services.fetch_kafka_jars()
    java = shutil.which("java")
    if java is None:
        raise ServiceError("java (17 or newer) is required to run Kafka locally")
    classpath = f"{jars}/*"
    log4j = logs.with_name(f"{logs.name}-log4j2.properties")
    log4j.write_text(_LOG4J2_CONFIG.replace("@LOG@", str(logs.with_name(f"{logs.name}.log"))))
    if not (data / "meta.properties").exists():
        result = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
             "-c", str(config), *(["--standalone"] if standalone else []), "--ignore-formatted"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"formatting Kafka storage failed: {result.stderr or result.stdout}")
    heap = services.settings.local.kafka_heap
    with open(logs.with_name(f"{logs.name}.out"), "ab") as out:
        return subprocess.Popen(
            [java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", f"-Dlog4j2.configurationFile={log4j}",
             "-cp", classpath, "kafka.Kafka", str(config)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )


def kafka_properties(node_id: int, port: int, controller_port: int, data: Path, *, quorum: str,
                     replicas: int) -> str:
    """``server.properties`` of a KRaft node that is broker and controller on 127.0.0.1.

    ``quorum``: the line naming the controllers (a dynamic quorum's
    ``controller.quorum.bootstrap.servers``, or a static ``controller.quorum.voters``);
    ``replicas``: the replication factor of the broker's internal topics and of topics created
    without one, whose ``min.insync.replicas`` is one less (at least 1), so a node may be lost.
    """
    min_isr = max(1, replicas - 1)
    return "\n".join([
        "process.roles=broker,controller",
        f"node.id={node_id}",
        quorum,
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data}",
        "num.partitions=4",
        f"default.replication.factor={replicas}",
        f"min.insync.replicas={min_isr}",
        f"offsets.topic.replication.factor={replicas}",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "log.retention.hours=168",
        "",
    ])


def new_kafka_cluster_id() -> str:
    """A random cluster id (22 url-safe base64 characters) that never starts with '-'.

    One id in 64 would otherwise begin with '-', which the storage tool's argument parser takes
    for an option: the format then fails, and with it the whole start-up.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def running_pid(pid_file: Path) -> int | None:
    """The pid written in ``pid_file`` when that process is running, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if process_alive(pid) else None


def stop_process(pid_file: Path, grace_s: float) -> None:
    """SIGTERM the process of ``pid_file`` (if running), SIGKILL it after ``grace_s`` (0: at
    once, a crash), wait until it is gone, remove the file."""
    pid = running_pid(pid_file)
    if pid is not None:
        os.kill(pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace_s
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while process_alive(pid):
                time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _install_redis() -> str:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError("redis-server is not installed; install Debian's redis-server package")
    print("installing redis-server with apt-get...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # apt's output goes to stderr: stdout carries only the `export` lines that callers eval.
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env, stdout=sys.stderr)
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError("apt-get installed redis-server but it is not on PATH")
    return binary


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>learnrec</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>@KAFKA@</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>@LOG4J@</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>@LOG4J@</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2_CONFIG = """appender.file.type = File
appender.file.name = file
appender.file.fileName = @LOG@
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
"""
