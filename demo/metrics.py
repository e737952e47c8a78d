"""What the demo measures while it runs, in one place (thread-safe appends, summaries)."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from learnrec.trainer.gate import GateDecision

METHODS = ("served", "frozen", "popularity")


class Scored(NamedTuple):
    """One prequential request: interactions published before it, the version that answered,
    and whether each method's top 10 held the item clicked next."""

    position: int
    version: str
    served: bool
    frozen: bool
    popularity: bool


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


@dataclass(frozen=True)
class NewItemClick:
    """A click on an item published during the stream, and the item's rank in the answer the
    user got just before the click (None: not among its ``k`` items)."""

    item_id: str
    click: int         # 1 = the item's first click
    position: int      # interactions published before this one
    version: str       # the version that answered
    source: str        # the answer's source: personal, or popular for a user without history
    id_row: bool       # whether that version has an ID row for the item
    servable: bool     # whether the item's vector had been announced (else no answer can hold it)
    seen: bool         # already in the user's history, which the API excludes
    rank: int | None
    k: int


@dataclass(frozen=True)
class NewItemStory:
    """The clicks of the most clicked new item, each with what the serving version knew of it."""

    item_id: str
    title: str
    first_click_position: int
    rows: list[dict[str, object]]  # click, version and rank as in NewItemClick, after_click, trained_clicks


@dataclass
class DemoMetrics:
    gate_events: int = 0  # interactions the trainer holds back from training for its publish gate
    started: float = field(default_factory=time.monotonic)
    items_published: int = 0
    interactions_published_before: int = 0  # the history, published before the live stream
    interactions_published: int = 0
    malformed_published: int = 0
    dead_letters: int = 0
    freshness_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    request_errors: int = 0
    prequential: list[Scored] = field(default_factory=list)
    frozen_version: str | None = None
    stream_started_at: float | None = None  # wall time the live replay began
    versions: list[tuple[int, str]] = field(default_factory=list)  # (interactions so far, version)
    trainer_consumed: dict[str, int] = field(default_factory=dict)  # version -> trainer's offsets when it appeared
    gate_decisions: list[GateDecision] = field(default_factory=list)
    new_item_clicks: list[NewItemClick] = field(default_factory=list)
    new_item: NewItemStory | None = None
    cold_starts: list[ColdStartExample] = field(default_factory=list)
    cold_start_misses: int = 0
    users: list[UserExample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, value: object) -> None:
        with self._lock:
            getattr(self, name).append(value)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def recall(self, last: int | None = None) -> dict[str, float]:
        """Recall@10 of each method over the ``last`` scored events (NaN before any)."""
        with self._lock:
            rows = self.prequential[-last:] if last else list(self.prequential)
        return {m: float(np.mean([getattr(r, m) for r in rows])) if rows else float("nan") for m in METHODS}

    def live_trained(self, version: str) -> int | None:
        """About how many live-stream interactions ``version`` was trained on: what the trainer
        had consumed when the version appeared, less the history and the held-back events
        (partitions are consumed interleaved, so it is an estimate). None when unknown."""
        consumed = self.trainer_consumed.get(version)
        if consumed is None:
            return None
        return max(0, consumed - self.gate_events - self.interactions_published_before)

    def summary(self) -> dict[str, object]:
        def pct(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)), 2) if values else None

        half = len(self.prequential) // 2
        published = sum(d.published for d in self.gate_decisions)
        # While the frozen version itself serves, served and frozen answer the same request with
        # the same model: their agreement checks that the frozen scoring reproduces serving.
        same_model = [r for r in self.prequential if r.version == self.frozen_version]
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
            "prequential": {  # Recall@10 of each method on the same requests
                "scored": len(self.prequential),
                "frozen_version": self.frozen_version,
                "overall": _recalls(self.prequential),
                "first_half": _recalls(self.prequential[:half]),
                "second_half": _recalls(self.prequential[half:]),
                "frozen_check": {"requests_served_by_frozen_version": len(same_model),
                                 "same_hit": sum(r.served == r.frozen for r in same_model)},
            },
            "model_versions": [v for _, v in self.versions],
            "live_interactions_trained": {v: self.live_trained(v) for _, v in self.versions},  # estimates
            "gate": {"published": published, "held": len(self.gate_decisions) - published,
                     "decisions": [asdict(d) for d in self.gate_decisions]},
            "cold_start_recommended": len(self.cold_starts),
            "cold_start_not_recommended": self.cold_start_misses,
            "new_item_ranks": {
                "clicks_probed": len(self.new_item_clicks),
                "items_clicked": len({c.item_id for c in self.new_item_clicks}),
                "most_clicked": asdict(self.new_item) if self.new_item else None,
            },
        }


def _recalls(rows: list[Scored]) -> dict[str, float | None]:
    return {m: round(float(np.mean([getattr(r, m) for r in rows])), 4) if rows else None for m in METHODS}
