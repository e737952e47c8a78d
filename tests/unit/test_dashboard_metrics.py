"""The Grafana dashboard queries only metrics the components export, has every panel the runbook
names, and Prometheus scrapes the ports docker-compose.yml gives the components.

A metric renamed in code (or in the dashboard) fails here: the names come from the components'
own registries, the default one for the workers and the trainer, serving's own per app.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "learnrec.json"
PROMETHEUS = ROOT / "ops" / "prometheus" / "prometheus.yml"
DATASOURCES = ROOT / "ops" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

PANELS = (
    "Item freshness p50/p99",
    "Consumer lag per worker/group",
    "Events/s by worker and outcome",
    "Dead letters by reason",
    "Model version (serving)",
    "Published versions",
    "Publish gate decisions",
    "Publish gate recall",
    "Request rate by route/status",
    "Latency p50/p99",
    "Errors: 5xx and shed 503",
    "Index items",
)

# PromQL words that are not metric names.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan"}


def _panels() -> list[dict]:
    out: list[dict] = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return out


def _exprs() -> list[str]:
    return [t["expr"] for p in _panels() for t in p.get("targets", []) if t.get("expr")]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label names and
    values, ranges and Grafana variables left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        if match.group(2) is None and match.group(1) not in _KEYWORDS:
            names.add(match.group(1))
    return names


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every series name ``registry`` exposes (or will, once a labelled metric has a child):
    a Counter ``x`` as ``x_total``, a Histogram as ``x_bucket``/``x_sum``/``x_count``."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("", "_sum", "_count"), "info": ("_info",), "stateset": ("",), "unknown": ("",)}
    names = set()
    for family in registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
        names |= {s.name for s in family.samples if not s.name.endswith("_created")}
    return names


def _serving_registry() -> CollectorRegistry:
    from learnrec.serving.content_cache import ContentCache
    from learnrec.serving.metrics import ServingMetrics
    from learnrec.serving.shedding import LoadShedder
    from learnrec.serving.versions import VersionHolder

    metrics = ServingMetrics(VersionHolder(), ContentCache(10))  # what serving.service builds per app
    LoadShedder(None, max_in_flight=1, max_queue_ms=10, registry=metrics.registry)  # type: ignore[arg-type]  # as serving.api
    return metrics.registry


@pytest.fixture(scope="module")
def exported() -> set[str]:
    import learnrec.shared.dead_letter  # noqa: F401
    import learnrec.shared.worker  # noqa: F401
    import learnrec.stream.history_updater  # noqa: F401
    import learnrec.stream.item_encoder  # noqa: F401
    import learnrec.stream.item_store  # noqa: F401
    import learnrec.trainer.gate  # noqa: F401
    import learnrec.trainer.worker  # noqa: F401

    return exposed_names(REGISTRY) | exposed_names(_serving_registry())


def test_the_name_extraction_reads_promql():
    expr = ('histogram_quantile(0.99, sum by (le, route) (rate(learnrec_x_bucket{status=~"5..", a="b"}'
            '[$__rate_interval]))) / on (job) group_left (v) learnrec_y_total offset 5m')
    assert metric_names(expr) == {"learnrec_x_bucket", "learnrec_y_total"}
    assert metric_names("sum(learnrec_index_items) > bool 0") == {"learnrec_index_items"}


def test_every_metric_the_dashboard_queries_is_exported(exported):
    exprs = _exprs()
    assert len(exprs) >= len(PANELS)
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        missing = names - exported
        assert not missing, f"{expr!r} queries {sorted(missing)}, which no component exports"


def test_histogram_queries_use_buckets_and_counters_their_total(exported):
    for expr in _exprs():
        if "histogram_quantile" in expr:
            assert re.search(r"_bucket\b", expr), expr
        for name in metric_names(expr):
            if name.endswith("_total"):
                assert re.search(rf"\b(rate|increase)\({name}\b", expr), f"{expr!r}: a counter needs rate/increase"


def test_the_dashboard_has_every_panel_on_a_templated_prometheus():
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [p["title"] for p in _panels() if p.get("type") != "row"]
    assert sorted(set(PANELS) - set(titles)) == []
    assert len(titles) == len(set(titles)), "duplicate panel titles"
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    for panel in _panels():
        if panel.get("type") == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == variable["current"]["value"]
    assert source["url"] == "http://prometheus:9090"


def _compose_port(service: dict) -> int:
    env = service.get("environment") or {}
    if "LEARNREC_METRICS_PORT" in env:
        return int(env["LEARNREC_METRICS_PORT"])
    command = service.get("command") or []
    assert "--port" in command, "a scraped service needs LEARNREC_METRICS_PORT or --port"
    return int(command[command.index("--port") + 1])


def test_prometheus_scrapes_the_ports_compose_gives_the_components():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    config = yaml.safe_load(PROMETHEUS.read_text())
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                assert host in services, f"{target}: no such compose service"
                assert int(port) == _compose_port(services[host]), f"{target}: compose uses another port"
                scraped[host] = int(port)
    assert set(scraped) == {"serving", "item-encoder", "history-updater", "trainer"}
    exporting = {name for name, s in services.items() if "LEARNREC_METRICS_PORT" in (s.get("environment") or {})}
    assert exporting <= set(scraped), "a component exports metrics that nothing scrapes"


# The new metrics record what the dashboard says they do.

class _Future:
    exception = None

    def succeeded(self) -> bool:
        return True


class _Producer:
    def send(self, topic, key=None, value=None, headers=None) -> _Future:
        return _Future()

    def flush(self, timeout: float = 0) -> None:
        pass


def _reject(decode, *args) -> str:
    from learnrec.shared.schemas import EventError

    with pytest.raises(EventError) as err:
        decode(*args)
    return str(err.value)


def test_dead_letters_are_counted_by_a_fixed_class_of_reason():
    from learnrec.shared.dead_letter import DeadLetterWriter, reason_class
    from learnrec.shared.schemas import (
        MAX_EVENT_BYTES,
        decode_interaction_event,
        decode_item_record,
    )

    ok = {"event_id": "e", "user_id": "u", "item_id": "i"}
    cases = {
        "empty": _reject(decode_interaction_event, None),
        "too_large": _reject(decode_interaction_event, b" " * (MAX_EVENT_BYTES + 1)),
        "invalid_json": _reject(decode_interaction_event, b"{not json"),
        "unknown_schema_version": _reject(decode_interaction_event, json.dumps(ok | {"schema_version": 9}).encode()),
        "validation": _reject(decode_interaction_event, json.dumps({"user_id": "u"}).encode()),
        "tombstone_key": _reject(decode_item_record, b"has space", None),
    }
    assert {kind: reason_class(reason) for kind, reason in cases.items()} == {k: k for k in cases}
    assert reason_class("anything else") == "other"

    def count(reason: str) -> float:
        return REGISTRY.get_sample_value("learnrec_dead_letters_total", {"worker": "dash-test", "reason": reason}) or 0

    writer = DeadLetterWriter(_Producer(), "dlq", "dash-test")  # type: ignore[arg-type]
    before = count("invalid_json"), count("processing")
    writer.send(object(), cases["invalid_json"])
    writer.send(object(), "the sink refused it", "processing")
    assert (count("invalid_json"), count("processing")) == before  # counted once acknowledged
    writer.flush()
    assert (count("invalid_json"), count("processing")) == (before[0] + 1, before[1] + 1)


def test_item_freshness_is_observed_when_the_vectors_are_written_and_never_negative():
    from learnrec.shared.schemas import ItemEvent
    from learnrec.shared.worker import Accepted
    from learnrec.stream.item_encoder import ItemEncoderHandler
    from learnrec.stream.item_store import WriteResult

    class Encoder:
        content_dim, model_id = 4, "fake"

        def encode(self, texts):
            return np.ones((len(texts), 4), np.float32)

    class Store:
        def stored_hashes(self, ids):
            return [None] * len(ids)

        def write(self, changed, unchanged):
            return WriteResult()

        def remove(self, deleted, unavailable):
            pass

    def sample(suffix: str, le: str | None = None) -> float:
        labels = {} if le is None else {"le": le}
        return REGISTRY.get_sample_value(f"learnrec_item_freshness_seconds{suffix}", labels) or 0

    count, fast, total = sample("_count"), sample("_bucket", "0.05"), sample("_sum")
    now = time.time()
    batch = [Accepted(None, ItemEvent(item_id="old", title="a", timestamp=now - 30)),
             Accepted(None, ItemEvent(item_id="ahead", title="b", timestamp=now + 3600))]  # a clock ahead
    ItemEncoderHandler(Encoder(), Store())(batch)  # type: ignore[arg-type]
    assert sample("_count") == count + 2
    assert sample("_bucket", "0.05") == fast + 1  # the one from the future counts as 0
    assert 30 <= sample("_sum") - total < 40
