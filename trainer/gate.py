"""The publish gate: a candidate version must not serve worse than the current one.

Before a version becomes current it is scored, with its exported towers (what would serve),
on the trainer's held-back events: the most recent interactions, which the online trainer has
not trained on. For each, the user's history ranks every item with content (history items
excluded, ties against the target) and a hit is the true next item in the top ``k``; the
current version is scored on the same events, so the two are compared event by event. The
candidate is held only when it is worse by more than ``tolerance`` beyond the noise of the
comparison: when ``mean(d) + Z * se(d) < -tolerance``, ``d`` the per-event difference of hits
(candidate minus current) and ``se`` its standard error. On a few hundred events Recall@10
moves by about a point and a half from sampling alone, so a bare ``ours >= theirs - tolerance``
would hold or pass on the draw. With no current version, too few events to judge, or an
operator's forced publish, the candidate passes without a comparison. Every decision is logged,
counted in Prometheus and kept in Redis (``{p}:model:gate``, newest first, bounded) for reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import redis
from prometheus_client import Counter, Gauge

from learnrec.shared.redis_keys import RedisKeys
from learnrec.trainer.content import ContentTable
from learnrec.trainer.examples import Example, collate
from learnrec.trainer.id_index import IdIndex
from learnrec.versions.towers import LoadedVersion

DECISIONS = Counter("learnrec_gate_decisions_total", "Publish-gate decisions", ["decision"])
RECALL = Gauge("learnrec_gate_recall", "Recall@10 on held-back events at the last gate", ["model"])
KEPT_DECISIONS = 200
Z = 2.0  # standard errors of the paired difference treated as noise


@dataclass(frozen=True)
class GateDecision:
    """One gate decision with both figures (``current_recall`` None: nothing served yet)."""

    candidate: str
    current: str | None
    events: int
    candidate_recall: float | None
    current_recall: float | None
    published: bool
    reason: str
    at: float


def hits_at_k(version: LoadedVersion, examples: Sequence[Example], content: ContentTable, k: int = 10,
              batch: int = 256) -> np.ndarray:
    """bool [n]: whether ``version`` ranks each usable example's next item (one with content
    and a history with content; the others are left out) in its top ``k`` of every item."""
    catalogue = content.item_ids(np.arange(len(content)))
    items = version.item_vectors(content.lookup(np.arange(len(content))), catalogue)  # [N, out]
    hits: list[np.ndarray] = []
    for start in range(0, len(examples), batch):
        chunk = collate(examples[start : start + batch], content, IdIndex(), version.info.max_history)
        if chunk is None:
            continue
        rows, mask = chunk.history.numpy(), chunk.history_mask.numpy()
        histories = [content.item_ids(r[m]) for r, m in zip(rows, mask, strict=True)]
        users = version.user_vectors(content.lookup(rows), mask.astype(np.int64), histories)
        scores = users @ items.T  # [B, N]
        for b, (r, m) in enumerate(zip(rows, mask, strict=True)):
            scores[b, r[m]] = -np.inf
        target = chunk.target.numpy()
        own = scores[np.arange(len(target)), target][:, None]
        rank = (scores > own).sum(1) + (scores == own).sum(1) - 1  # ties count against the target
        hits.append(rank < k)
    return np.concatenate(hits) if hits else np.zeros(0, bool)


def recall_at_k(version: LoadedVersion, examples: Sequence[Example], content: ContentTable, k: int = 10) -> float:
    """Recall@k of ``version`` on the usable ``examples`` (0 when none is usable)."""
    hits = hits_at_k(version, examples, content, k)
    return float(hits.mean()) if len(hits) else 0.0


def not_worse(ours: np.ndarray, theirs: np.ndarray, tolerance: float) -> tuple[bool, float, float]:
    """The gate's rule on paired hits (bool [n] each, the same events): (passed, mean difference,
    noise margin ``Z * se``); it fails only when ``difference + margin < -tolerance``."""
    diff = ours.astype(float) - theirs.astype(float)
    margin = Z * float(diff.std(ddof=1)) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    return bool(diff.mean() + margin >= -tolerance), float(diff.mean()), margin


def decide(candidate: LoadedVersion, current: LoadedVersion | None, examples: Sequence[Example],
           content: ContentTable, tolerance: float, min_events: int, forced: bool = False) -> GateDecision:
    """Score both versions on ``examples`` and decide (see the module docstring)."""
    name, now = candidate.info.version, time.time()
    current_name = current.info.version if current is not None else None
    if forced or current is None or len(examples) < min_events:
        reason = "forced" if forced else "no current version" if current is None else "too few held-back events"
        return GateDecision(name, current_name, len(examples), None, None, True, reason, now)
    ours, theirs = hits_at_k(candidate, examples, content), hits_at_k(current, examples, content)
    if len(ours) < min_events:
        return GateDecision(name, current_name, len(ours), None, None, True, "too few held-back events", now)
    passed, difference, margin = not_worse(ours, theirs, tolerance)
    reason = (f"recall@10 {ours.mean():.4f} vs {theirs.mean():.4f}: difference {difference:+.4f} "
              f"+ noise {margin:.4f} {'>=' if passed else '<'} -{tolerance}")
    return GateDecision(name, current_name, len(ours), float(ours.mean()), float(theirs.mean()), passed, reason, now)


def record(decision: GateDecision, client: redis.Redis, keys: RedisKeys) -> None:
    """Count, expose and keep the decision (newest first, the last ``KEPT_DECISIONS``); a
    published decision is recorded once the version serves."""
    DECISIONS.labels("published" if decision.published else "held").inc()
    if decision.candidate_recall is not None:
        RECALL.labels("candidate").set(decision.candidate_recall)
    if decision.current_recall is not None:
        RECALL.labels("current").set(decision.current_recall)
    pipe = client.pipeline(transaction=False)
    pipe.lpush(keys.model_gate(), json.dumps(asdict(decision)))
    pipe.ltrim(keys.model_gate(), 0, KEPT_DECISIONS - 1)
    pipe.execute()


def decisions(client: redis.Redis, keys: RedisKeys) -> list[GateDecision]:
    """The kept decisions, oldest first."""
    return [GateDecision(**json.loads(raw)) for raw in reversed(client.lrange(keys.model_gate(), 0, -1))]
