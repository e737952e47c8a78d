"""Every Kafka client learnrec makes passes the configured SASL mechanism and credentials: topics
created, events produced and consumed through the worker factories, against a broker that
accepts nothing else (PLAIN and SCRAM-SHA-256; SCRAM over TLS too)."""

from __future__ import annotations

import uuid

import pytest
from kafka.errors import KafkaError

from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import ensure_topics, make_consumer, make_producer
from learnrec.shared.schemas import ItemEvent
from learnrec.shared.topics import ITEMS, topic_name
from tests.security.secured_servers import SaslKafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "s3cret-kafka-password"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with SaslKafka(tmp_path_factory.mktemp("kafka-sasl"), PASSWORD) as server:
        yield server


def _settings(broker: SaslKafka, mechanism: str, password: str = PASSWORD, tls: bool = False) -> Settings:
    port, extra = (broker.ssl_port, {"kafka_ssl_cafile": str(broker.certs["ca"])}) if tls else (broker.port, {})
    return Settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", topic_prefix=f"sasl{uuid.uuid4().hex[:8]}.",
                    partitions=1, kafka_security_protocol="SASL_SSL" if tls else "SASL_PLAINTEXT",
                    kafka_sasl_mechanism=mechanism, kafka_sasl_username="learnrec", kafka_sasl_password=password,
                    kafka_metadata_wait_s=30, **extra)


@pytest.mark.parametrize(("mechanism", "tls"), [("PLAIN", False), ("SCRAM-SHA-256", False), ("SCRAM-SHA-256", True)])
def test_events_go_round_with_sasl(broker, mechanism: str, tls: bool) -> None:
    cfg = _settings(broker, mechanism, tls=tls)
    ensure_topics(cfg)
    topic = topic_name(cfg, ITEMS)
    event = ItemEvent(item_id=f"item-{mechanism}", title="a lens")
    producer = make_producer(cfg)
    producer.send(topic, key=event.key, value=event.to_bytes()).get(timeout=30)
    producer.close()
    consumer = make_consumer(cfg, f"group-{mechanism}-{tls}", [topic])
    try:
        got = []
        for _ in range(60):
            got += [r.value for part in consumer.poll(timeout_ms=500).values() for r in part]
            if got:
                break
        assert got == [event.to_bytes()]
    finally:
        consumer.close()


def test_a_wrong_password_is_refused(broker) -> None:
    with pytest.raises(KafkaError):
        producer = make_producer(_settings(broker, "SCRAM-SHA-256", password="wrong"), max_block_ms=5000)
        producer.send("anything", value=b"x").get(timeout=10)
