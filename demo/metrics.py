"""What the demo measures while it runs, in one place (thread-safe appends, summaries)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ColdStartExample:
    """A new item that was recommended soon after it arrived."""

    item_id: str
    title: str
    published_at: float
    announced_ms: float
    user_id: str
    rank: int
    seconds_after_publish: float


@dataclass
class UserExample:
    user_id: str
    history: list[str]            # titles, oldest first
    recommendations: list[str]    # titles, best first
    new_items: list[str]          # titles among the recommendations that arrived during the run
    version: str


@dataclass
class DemoMetrics:
    started: float = field(default_factory=time.monotonic)
    items_published: int = 0
    interactions_published_before: int = 0  # the history, published before the live stream
    interactions_published: int = 0
    malformed_published: int = 0
    dead_letters: int = 0
    freshness_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    request_errors: int = 0
    # (events published so far, served model hit, popularity hit)
    prequential: list[tuple[int, bool, bool]] = field(default_factory=list)
    versions: list[tuple[int, str]] = field(default_factory=list)  # (interactions so far, version)
    cold_starts: list[ColdStartExample] = field(default_factory=list)
    cold_start_misses: int = 0
    users: list[UserExample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, value: object) -> None:
        with self._lock:
            getattr(self, name).append(value)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def recall(self, last: int | None = None) -> tuple[float, float]:
        """Recall@10 of the served model and of popularity over the ``last`` scored events."""
        with self._lock:
            rows = self.prequential[-last:] if last else list(self.prequential)
        if not rows:
            return float("nan"), float("nan")
        return float(np.mean([r[1] for r in rows])), float(np.mean([r[2] for r in rows]))

    def summary(self) -> dict[str, object]:
        def pct(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)), 2) if values else None

        half = len(self.prequential) // 2
        second = self.prequential[half:]
        return {
            "seconds": round(self.elapsed(), 1),
            "items_published": self.items_published,
            "history_interactions_published": self.interactions_published_before,
            "interactions_published": self.interactions_published,
            "malformed_published": self.malformed_published,
            "dead_letters": self.dead_letters,
            "freshness_ms": {"n": len(self.freshness_ms), "p50": pct(self.freshness_ms, 50),
                             "p99": pct(self.freshness_ms, 99)},
            "serving_latency_ms": {"n": len(self.latency_ms), "p50": pct(self.latency_ms, 50),
                                   "p99": pct(self.latency_ms, 99), "errors": self.request_errors},
            "prequential_recall@10": {
                "scored": len(self.prequential),
                "served_overall": _mean([r[1] for r in self.prequential]),
                "popularity_overall": _mean([r[2] for r in self.prequential]),
                "served_second_half": _mean([r[1] for r in second]),
                "popularity_second_half": _mean([r[2] for r in second]),
            },
            "model_versions": [v for _, v in self.versions],
            "cold_start_recommended": len(self.cold_starts),
            "cold_start_not_recommended": self.cold_start_misses,
        }


def _mean(values: list[bool]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None
