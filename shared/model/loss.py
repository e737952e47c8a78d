"""Next-item softmax losses (pure functions over tower outputs).

Shapes: ``R`` rows (one per (user, position) that predicts a next item), ``d`` output dim,
``N`` catalogue items, ``K`` sampled negatives. Inputs are L2-normalised vectors; logits are
cosine similarities / temperature. Positives and negatives are item-tower outputs of items
encoded alone, exactly as serving encodes them (train/serve parity).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def full_softmax_loss(
    user: torch.Tensor,
    items: torch.Tensor,
    target: torch.Tensor,
    temperature: float,
    excluded: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of each row's target against the whole catalogue.

    ``user`` [R, d], ``items`` [N, d] (every item), ``target`` int64 [R] (index into ``items``),
    ``excluded`` bool [R, N] optional: candidates that are not negatives for that row (e.g.
    the user's own history); the target itself is never excluded. Returns a scalar.
    """
    logits = user @ items.T / temperature  # [R, N]
    if excluded is not None:
        excluded = excluded.clone()
        excluded[torch.arange(len(target)), target] = False
        logits = logits.masked_fill(excluded, -math.inf)
    return F.cross_entropy(logits, target)


def sampled_softmax_loss(
    user: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float,
    log_q: torch.Tensor | float = 0.0,
    excluded: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each row's positive against ``K`` sampled negatives, with the sampling-bias (logQ)
    correction of Yi et al. (RecSys 2019).

    ``user`` [R, d], ``positive`` [R, d] (the row's target), ``negatives`` [K, d] shared by all
    rows, ``log_q`` [K] or a scalar: log of each negative's probability of being in the sample
    (``log(K / N)`` for a uniform sample of K of N items), subtracted from its logit so that the
    sampled sum estimates the full softmax's; ``excluded`` bool [R, K]:
    negatives that are not negatives for that row (the target itself, the user's history).
    Returns a scalar.
    """
    pos = (user * positive).sum(-1) / temperature  # [R]
    neg = user @ negatives.T / temperature - log_q  # [R, K]
    if excluded is not None:
        neg = neg.masked_fill(excluded, -math.inf)
    return (torch.logaddexp(pos, neg.logsumexp(-1)) - pos).mean()
