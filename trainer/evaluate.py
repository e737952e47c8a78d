"""Full-ranking evaluation: every query is ranked against all items.

Metrics: Recall@K and NDCG@K for K in 10, 20, 50, and MRR, for one held-out target per query.
Ties are counted against the target (rank = items scoring strictly higher + tied others), so a
constant scorer never looks good. ``mask_history`` removes the user's history items from the
ranking (all of them, the target too if it is a repeat: a deployed recommender would).
Groups: ``overall``; ``cold`` (target never seen in training), ``warm`` (the rest), and
``longtail`` (target among the least popular 80% of items by training count).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from learnrec.trainer.data import EvalSet, Split

KS = (10, 20, 50)
# histories (oldest first) -> float32 [len(histories), n_items] scores, higher is better
Scorer = Callable[[Sequence[np.ndarray]], torch.Tensor]


def ranks(
    scorer: Scorer, data: EvalSet, mask_history: bool = True, batch_size: int = 1024
) -> np.ndarray:
    """0-based rank of each query's target among all items. -> int64 [n_queries]."""
    out = np.zeros(len(data.targets), dtype=np.int64)
    for start in range(0, len(data.targets), batch_size):
        hist = data.histories[start : start + batch_size]
        target = torch.as_tensor(data.targets[start : start + batch_size])
        with torch.no_grad():
            scores = scorer(hist).float().clone()
        if mask_history:
            rows = torch.cat([torch.full((len(h),), r) for r, h in enumerate(hist)])
            cols = torch.as_tensor(np.concatenate(hist))
            scores[rows, cols] = -torch.inf
        t_score = scores.gather(1, target[:, None])
        higher = (scores > t_score).sum(1)
        ties = (scores == t_score).sum(1) - 1
        out[start : start + len(hist)] = (higher + ties).numpy()
    return out


def metrics(rank: np.ndarray) -> dict[str, float]:
    """Recall@K, NDCG@K and MRR (means over queries) from 0-based target ranks."""
    if len(rank) == 0:
        return {}
    res: dict[str, float] = {}
    for k in KS:
        hit = rank < k
        res[f"recall@{k}"] = float(hit.mean())
        res[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean())
    res["mrr"] = float((1.0 / (rank + 1.0)).mean())
    return res


def longtail_items(counts: np.ndarray, share: float = 0.8) -> np.ndarray:
    """bool [n_items]: the ``share`` of items with the lowest training counts."""
    order = np.argsort(counts, kind="stable")
    tail = np.zeros(len(counts), dtype=bool)
    tail[order[: int(round(share * len(counts)))]] = True
    return tail


def groups(split: Split, data: EvalSet) -> dict[str, np.ndarray]:
    """Query masks per reported group, from the split's training counts."""
    counts = split.train_counts()
    cold = counts[data.targets] == 0
    return {
        "overall": np.ones(len(data.targets), dtype=bool),
        "cold": cold,
        "warm": ~cold,
        "longtail": longtail_items(counts)[data.targets],
    }


def evaluate(
    scorer: Scorer, split: Split, data: EvalSet | None = None, mask_history: bool = True
) -> dict[str, dict[str, float]]:
    """``{group: {metric: value, "n": queries}}`` on ``data`` (default: the test set)."""
    data = data if data is not None else split.test
    rank = ranks(scorer, data, mask_history)
    return {
        name: {**metrics(rank[sel]), "n": int(sel.sum())}
        for name, sel in groups(split, data).items()
    }
