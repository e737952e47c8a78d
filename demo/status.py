"""The demo's live status: a table redrawn in a terminal, printed every 10 s in a log."""

from __future__ import annotations

import time

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from learnrec.demo.metrics import DemoMetrics


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.1f}" if values else "-"


def status_table(metrics: DemoMetrics, total: int, version: str | None) -> Table:
    table = Table(title="learnrec demo", show_header=False)
    recall = metrics.recall(last=500)
    fresh, latency = list(metrics.freshness_ms), list(metrics.latency_ms)
    rows = [
        ("elapsed", f"{metrics.elapsed():.1f} s"),
        ("events published", f"{metrics.items_published + metrics.interactions_published} / {total}"),
        ("model version", version or "-"),
        ("versions published", str(len(metrics.versions))),
        ("freshness p50 / p99", f"{_pct(fresh, 50)} / {_pct(fresh, 99)} ms"),
        ("serving p50 / p99", f"{_pct(latency, 50)} / {_pct(latency, 99)} ms ({metrics.request_errors} errors)"),
        ("Recall@10 (last 500) served / frozen / popularity",
         f"{recall['served']:.3f} / {recall['frozen']:.3f} / {recall['popularity']:.3f}"),
        ("new items recommended", str(len(metrics.cold_starts))),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


class StatusDisplay:
    """Redraws :func:`status_table` twice a second on a terminal, else prints it every 10 s."""

    def __init__(self, console: Console, metrics: DemoMetrics, total: int) -> None:
        self._console = console
        self._metrics = metrics
        self._total = total
        self._live = Live(status_table(metrics, total, None), console=console, refresh_per_second=2,
                          transient=False) if console.is_terminal else None
        self._every_s = 0.5 if self._live else 10.0
        self._last = 0.0

    def __enter__(self) -> StatusDisplay:
        if self._live:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.stop()

    def update(self, version: str | None) -> None:
        if time.monotonic() - self._last < self._every_s:
            return
        self._last = time.monotonic()
        table = status_table(self._metrics, self._total, version)
        if self._live:
            self._live.update(table)
        else:
            self._console.print(table)
