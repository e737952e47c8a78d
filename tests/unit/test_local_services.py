"""The local services' start-up choices that once failed one run in 64."""

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
