"""A local Kafka cluster: three KRaft nodes on 127.0.0.1, each a broker and a controller.

``python -m devtools.services kafka-cluster-up|kafka-cluster-down``. The nodes form a static controller
quorum (``controller.quorum.voters``), so the metadata survives the loss of any one node; the
internal topics and topics created without a replication factor get three replicas and
``min.insync.replicas`` 2 (:func:`devtools.local_services.kafka_properties`): with ``acks=all``
(learnrec's producers) a write acknowledged by the cluster is on two nodes at least, and writes go
on while one node is down. learnrec's own topics take the replication factor from
``LEARNREC_REPLICATION_FACTOR`` (``env_lines`` sets 3) and ``min.insync.replicas`` from it
(:func:`learnrec.shared.topics.topic_specs`).

The single broker of :class:`~devtools.local_services.LocalServices` stays what the demo and most
tests use; this cluster is for the tests and benchmarks of a broker failure.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.local_services import (
    LocalServices,
    ServiceError,
    kafka_properties,
    new_kafka_cluster_id,
    running_pid,
    start_kafka_node,
    stop_process,
)
from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import kafka_answers

NODES = 3


@dataclass(frozen=True)
class LocalKafkaCluster:
    """``broker_ports[i]`` and ``controller_ports[i]`` are node ``i + 1``'s; state under ``root``."""

    settings: Settings
    root: Path
    broker_ports: tuple[int, ...]
    controller_ports: tuple[int, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKafkaCluster:
        """The cluster under ``<cache_dir>/services/kafka-cluster`` on the ports of ``settings.local``."""
        base, controllers = settings.local.kafka_cluster_port, settings.local.kafka_cluster_controller_port
        return cls(settings, settings.process.cache_dir.resolve() / "services" / "kafka-cluster",
                   tuple(base + n for n in range(NODES)), tuple(controllers + n for n in range(NODES)))

    @property
    def nodes(self) -> range:
        """The node ids, from 1."""
        return range(1, len(self.broker_ports) + 1)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.broker_ports)

    def env_lines(self) -> list[str]:
        return [f"export KAFKA_BOOTSTRAP_SERVERS={self.bootstrap}",
                f"export LEARNREC_REPLICATION_FACTOR={len(self.broker_ports)}"]

    def up(self, timeout_s: float = 120.0) -> None:
        """Start every node that is not running, and wait until each answers and the cluster
        reports all of them."""
        self.root.mkdir(parents=True, exist_ok=True)
        id_file = self.root / "cluster-id"
        if not id_file.exists():
            id_file.write_text(new_kafka_cluster_id())
        for node in self.nodes:
            if self.pid(node) is None:
                self.start(node)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.registered() == len(self.broker_ports):
                return
            for node in self.nodes:
                if self.pid(node) is None:
                    tail = (self.root / f"node-{node}.out").read_text(errors="replace")[-3000:]
                    raise ServiceError(f"Kafka node {node} exited during start-up:\n{tail}")
            time.sleep(0.5)
        raise ServiceError(f"the Kafka cluster did not answer within {timeout_s:.0f}s; see logs in {self.root}")

    def start(self, node: int) -> None:
        """Start one node (formatting its storage the first time)."""
        data = self.root / f"node-{node}"
        config = self.root / f"node-{node}.properties"
        voters = ",".join(f"{n}@127.0.0.1:{self.controller_ports[n - 1]}" for n in self.nodes)
        config.write_text(kafka_properties(
            node, self.broker_ports[node - 1], self.controller_ports[node - 1], data,
            quorum=f"controller.quorum.voters={voters}", replicas=len(self.broker_ports)))
        process = start_kafka_node(LocalServices(self.settings), config, data, self.root / f"node-{node}",
                                   cluster_id=(self.root / "cluster-id").read_text().strip(), standalone=False)
        (self.root / f"node-{node}.pid").write_text(str(process.pid))

    def kill(self, node: int) -> None:
        """SIGKILL one node (a crash: nothing flushed, no controlled shutdown); its data stays."""
        stop_process(self.root / f"node-{node}.pid", grace_s=0)

    def down(self) -> None:
        """Stop every node (SIGTERM to all at once, SIGKILL 20 s later); data kept. One by one,
        the last node would wait out its grace: it has no quorum left to shut down with."""
        for node in self.nodes:
            pid = self.pid(node)
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for node in self.nodes:
            stop_process(self.root / f"node-{node}.pid", grace_s=max(0.1, deadline - time.monotonic()))

    def pid(self, node: int) -> int | None:
        """The running node's pid, or None."""
        return running_pid(self.root / f"node-{node}.pid")

    def registered(self) -> int:
        """How many brokers the cluster's metadata lists (0 when no node answers)."""
        for port in self.broker_ports:
            address = f"127.0.0.1:{port}"
            if kafka_answers(address):
                from kafka import KafkaAdminClient

                admin = KafkaAdminClient(bootstrap_servers=address, request_timeout_ms=3000,
                                         client_id="learnrec-probe")
                try:
                    return len(admin.describe_cluster()["brokers"])
                except Exception:  # the node answers but its metadata is not ready yet
                    return 0
                finally:
                    admin.close()
        return 0
