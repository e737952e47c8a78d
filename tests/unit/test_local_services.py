"""The local services: start-up choices that once failed one run in 64, and the replication
that the single broker and the three-node cluster configure."""

import base64
import uuid

from devtools import local_services
from devtools.local_services import new_kafka_cluster_id


def test_cluster_id_never_starts_with_a_dash(monkeypatch):
    # 0xF8 as the first byte encodes to '-' in url-safe base64: the storage tool's argument
    # parser took such an id for an option, and the whole start-up failed.
    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))
    plain = uuid.UUID(bytes=b"\x10" + bytes(15))
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    draws = iter([dash_first, dash_first, plain])
    monkeypatch.setattr(local_services.uuid, "uuid4", lambda: next(draws))
    cluster_id = new_kafka_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
    assert len(cluster_id) == 22


def test_cluster_ids_are_random():
    ids = {new_kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(i.startswith("-") for i in ids)


def test_a_three_node_quorum_keeps_two_replicas_in_sync(tmp_path):
    from devtools.kafka_cluster import LocalKafkaCluster
    from learnrec.shared.config import Settings

    cluster = LocalKafkaCluster.from_settings(Settings())
    assert cluster.bootstrap == "127.0.0.1:19191,127.0.0.1:19192,127.0.0.1:19193"
    lines = local_services.kafka_properties(2, 19192, 19292, tmp_path, quorum="controller.quorum.voters=x",
                                            replicas=3).splitlines()
    assert {"node.id=2", "controller.quorum.voters=x", "default.replication.factor=3", "min.insync.replicas=2",
            "offsets.topic.replication.factor=3", "transaction.state.log.min.isr=2",
            "listeners=PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19292"} <= set(lines)
    single = local_services.kafka_properties(1, 19092, 19093, tmp_path, quorum="q", replicas=1).splitlines()
    assert {"min.insync.replicas=1", "offsets.topic.replication.factor=1"} <= set(single)


def test_every_topic_keeps_one_replica_fewer_in_sync_than_it_has():
    from learnrec.shared.config import Settings
    from learnrec.shared.topics import topic_specs

    for replicas, in_sync in ((1, "1"), (2, "1"), (3, "2")):
        specs = topic_specs(Settings().replace(replication_factor=replicas))
        assert len(specs) == 3 and all(spec.configs["min.insync.replicas"] == in_sync for spec in specs)

