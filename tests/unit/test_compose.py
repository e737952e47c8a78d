"""docker-compose.yml parses, names a real command for every component and mounts the monitoring
configuration (no Docker engine here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from learnrec.cli.main import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_declares_servers_and_components():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["redis"]["image"].startswith("redis:")
    for name in ("item-encoder", "history-updater", "trainer", "serving"):
        service = services[name]
        assert service["build"] == "."
        assert service["command"][0] in SUBCOMMANDS, f"{name} runs an unknown subcommand"
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert (ROOT / "Dockerfile").exists()


def test_dockerfile_copies_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("learnrec", "cli", "shared", "versions", "stream", "trainer", "serving", "demo"):
        assert f"COPY {package} ./{package}" in dockerfile
        assert (ROOT / package / "__init__.py").exists()


def test_compose_runs_prometheus_and_grafana_on_the_ops_files():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("item-encoder", "history-updater", "trainer"):
        assert int(services[name]["environment"]["LEARNREC_METRICS_PORT"]) > 0, f"{name} exports no metrics"
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = {}
    for service in (prometheus, grafana):
        for volume in service["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{source} is mounted but missing"
                mounts[source.rstrip("/")] = target
    assert mounts["./ops/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["./ops/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "ops/grafana/provisioning/dashboards/learnrec.yml").read_text())
    (dashboards,) = provider["providers"]
    assert mounts["./ops/grafana/dashboards"] == dashboards["options"]["path"]
    assert (ROOT / "ops/grafana/dashboards/learnrec.json").exists()
