"""docker-compose.yml parses and names a real command for every component (no Docker engine here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from shared.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_declares_servers_and_components():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["redis"]["image"].startswith("redis:")
    for name in ("item-encoder", "history-updater", "trainer", "serving"):
        service = services[name]
        assert service["build"] == "."
        assert service["command"][0] in COMMANDS, f"{name} runs an unknown subcommand"
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert (ROOT / "Dockerfile").exists()


def test_dockerfile_copies_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("shared", "stream", "trainer", "serving"):
        assert f"COPY {package} ./{package}" in dockerfile
        assert (ROOT / package / "__init__.py").exists()
