"""The client options that carry credentials and TLS (servers that need them: tests/security)."""

import pytest

from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import kafka_security
from learnrec.shared.redis_client import redis_security


def test_kafka_options_per_protocol():
    assert kafka_security(Settings()) == {"security_protocol": "PLAINTEXT"}
    sasl = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                    kafka_sasl_username="u", kafka_sasl_password="p", kafka_ssl_cafile="/ca.pem")
    assert kafka_security(sasl) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
        "sasl_plain_password": "p", "ssl_cafile": "/ca.pem"}
    mutual = Settings(kafka_security_protocol="SSL", kafka_ssl_certfile="/c.pem", kafka_ssl_keyfile="/k.pem")
    assert kafka_security(mutual) == {"security_protocol": "SSL", "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"}
    with pytest.raises(ValueError, match="USERNAME"):
        kafka_security(Settings(kafka_security_protocol="SASL_PLAINTEXT"))


def test_redis_options():
    assert redis_security(Settings()) == {}
    cfg = Settings(REDIS_URL="rediss://h:6380/0", redis_username="u", redis_password="p", redis_ssl_ca_certs="/ca")
    assert redis_security(cfg) == {"username": "u", "password": "p", "ssl_ca_certs": "/ca"}
