"""A Redis server that wants an ACL user and password and speaks TLS, and a Kafka broker that
wants SASL (PLAIN and SCRAM-SHA-256): started for these tests only, on free ports, and stopped
after them. Certificates come from the openssl command line tool."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.serving_support import free_port


def wait_for_port(port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on {port} within {timeout_s:.0f} s")


def make_certificates(folder: Path) -> dict[str, Path]:
    """A test CA and a server certificate for 127.0.0.1 signed by it."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command line tool is needed to make test certificates"
    run = lambda *args: subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=learnrec-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.cnf")
    return {"ca": folder / "ca.crt", "cert": folder / "server.crt", "key": folder / "server.key"}


class SecuredRedis:
    """redis-server with user ``learnrec`` / ``password`` (the default user off), a plain port
    and a TLS port."""

    def __init__(self, folder: Path, password: str) -> None:
        self.folder = folder
        self.password = password
        self.port, self.tls_port = free_port(), free_port()
        self.certs = make_certificates(folder)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> SecuredRedis:
        server = shutil.which("redis-server")
        assert server, "redis-server is needed (python -m devtools.services up installs it)"
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--tls-port", str(self.tls_port),
             "--tls-cert-file", str(self.certs["cert"]), "--tls-key-file", str(self.certs["key"]),
             "--tls-ca-cert-file", str(self.certs["ca"]), "--tls-auth-clients", "no",
             "--user", "default", "off",
             "--user", "learnrec", "on", f">{self.password}", "~*", "&*", "+@all"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.tls_port, 20, "redis-server")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)


class SaslKafka:
    """A one-node KRaft broker whose client listeners are SASL_PLAINTEXT (``port``) and SASL_SSL
    (``ssl_port``, a certificate from a test CA), with PLAIN user ``learnrec`` / ``password``
    (static, in the listeners' JAAS lines) and the same user for SCRAM-SHA-256 (created when the
    storage is formatted)."""

    def __init__(self, folder: Path, password: str) -> None:
        from devtools.local_services import LocalServices, new_kafka_cluster_id
        from learnrec.shared.config import Settings

        self.folder = folder
        self.password = password
        self.port, self.ssl_port, self.controller_port = free_port(), free_port(), free_port()
        self.certs = make_certificates(folder)
        keystore = folder / "server-keystore.pem"  # PKCS#8 key, then the certificate
        pkcs8 = subprocess.run([shutil.which("openssl") or "openssl", "pkcs8", "-topk8", "-nocrypt",
                                "-in", str(self.certs["key"])], check=True, capture_output=True).stdout
        keystore.write_bytes(pkcs8 + self.certs["cert"].read_bytes())
        self.keystore = keystore
        self.jars = LocalServices(Settings()).fetch_kafka_jars()
        self.cluster_id = new_kafka_cluster_id()
        self.process: subprocess.Popen | None = None

    def _properties(self) -> str:
        plain = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                 f'username="learnrec" password="{self.password}" user_learnrec="{self.password}";')
        return "\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
            f"listeners=SASL_PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.ssl_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.ssl_port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            "ssl.keystore.type=PEM", f"ssl.keystore.location={self.keystore}",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={plain}",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "inter.broker.listener.name=SASL_PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
            "sasl.mechanism.inter.broker.protocol=PLAIN",
            f"listener.name.sasl_plaintext.plain.sasl.jaas.config={plain}",
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"log.dirs={self.folder / 'data'}", "num.partitions=2",
            "offsets.topic.replication.factor=1", "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1", "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1", "group.initial.rebalance.delay.ms=0", "",
        ])

    def __enter__(self) -> SaslKafka:
        java = shutil.which("java")
        assert java, "java is needed to run a Kafka broker"
        config = self.folder / "server.properties"
        config.write_text(self._properties())
        classpath = f"{self.jars}/*"
        subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}",
             "-c", str(config), "--standalone",
             "--add-scram", f"SCRAM-SHA-256=[name=learnrec,password={self.password}]"],
            check=True, capture_output=True,
        )
        log = open(self.folder / "kafka.out", "wb")
        self.process = subprocess.Popen(
            [java, "-Xmx256m", "-Xms256m", "-cp", classpath, "kafka.Kafka", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 120, "the SASL Kafka broker")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
