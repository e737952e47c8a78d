"""A shortened demo, end to end: every component as a real process on the real servers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_short_demo_runs_end_to_end_and_writes_the_report(kafka_bootstrap, redis_url, tmp_path):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url,
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "learnrec.cli", "demo", "--interactions", "600", "--rate", "120",
         "--history", "1500", "--pretrain-minutes", "0.3", "--publish-every", "4", "--report-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=420,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = tmp_path.glob("demo-*")
    for name in ("report.html", "report.md", "freshness.png", "latency.png", "prequential.png", "prequential.csv"):
        assert (run_dir / name).stat().st_size > 0, name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interactions_published"] == 600
    assert summary["dead_letters"] == summary["malformed_published"] == 2
    assert summary["freshness_ms"]["n"] > 0  # new items arrived during the stream and were announced
    assert summary["serving_latency_ms"]["errors"] == 0
    assert len(summary["model_versions"]) >= 2, "the trainer published at least one version after bootstrap"
    assert (run_dir / "offline").is_dir(), "the first model was pre-trained offline on the history"

    prequential = summary["prequential"]
    assert prequential["scored"] > 500
    assert (run_dir / "frozen" / prequential["frozen_version"] / "user_tower.onnx").is_file()
    for part in ("first_half", "second_half", "overall"):
        for method in ("served", "frozen", "popularity"):
            value = prequential[part][method]
            assert isinstance(value, float) and 0.0 <= value <= 1.0, (part, method, value)
    check = prequential["frozen_check"]
    if check["requests_served_by_frozen_version"] >= 50:  # same model, same request: same answer
        assert check["same_hit"] >= 0.9 * check["requests_served_by_frozen_version"], check
    with (run_dir / "prequential.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == prequential["scored"] and {"served", "frozen", "popularity"} <= set(rows[0])

    gate = summary["gate"]
    assert gate["published"] >= 1, "the online trainer's versions went through the publish gate"
    assert len(gate["decisions"]) == gate["published"] + gate["held"]
    for decision in gate["decisions"]:
        assert {"candidate", "current", "events", "candidate_recall", "current_recall", "published", "reason",
                "at"} <= set(decision)

    ranks = summary["new_item_ranks"]
    assert isinstance(ranks["clicks_probed"], int) and isinstance(ranks["items_clicked"], int)
    if ranks["most_clicked"] is not None:
        assert len(ranks["most_clicked"]["rows"]) >= 1

    html = (run_dir / "report.html").read_text()
    assert "<img src='prequential.png'" in html and "Recommendations" in html
    assert "<td>frozen</td>" in html and f"frozen version {prequential['frozen_version']}" in html
    assert "<h2>Publish gate</h2>" in html
    for decision in gate["decisions"]:
        assert f"<td>{decision['candidate']}</td>" in html, decision["candidate"]
    assert "<h2>A new item, version after version</h2>" in html
