"""LEARN training losses (pure functions over tower outputs).

Shapes: ``B`` users in the batch, ``H`` history positions and ``T`` targets per user, ``d``
output dim. Inputs are L2-normalised vectors; logits are cosine similarities / temperature.
"""

from __future__ import annotations

import math

import torch


def recency_weights(n: int, a: float = 10.0, b: float = 10_000.0) -> torch.Tensor:
    """Production weights of the paper over ``n`` positions, oldest first:
    ``w_i = log(a + i (b - a) / (n - 1))``, normalised to sum to 1. -> float32 [n]."""
    if n == 1:
        return torch.ones(1)
    i = torch.arange(n, dtype=torch.float32)
    w = torch.log(a + i * (b - a) / (n - 1))
    return w / w.sum()


def dense_all_action_loss(
    user: torch.Tensor,
    user_valid: torch.Tensor,
    target: torch.Tensor,
    target_items: torch.Tensor,
    temperature: float = 0.05,
    history_weights: torch.Tensor | None = None,
    log_q: torch.Tensor | None = None,
    negatives: torch.Tensor | None = None,
    negative_items: torch.Tensor | None = None,
    masked_items: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dense all-action InfoNCE.

    ``user`` [B, H, d] user vectors at H history positions; ``user_valid`` [B, H] bool;
    ``target`` [B, T, d] item-tower vectors of each user's targets; ``target_items`` [B, T]
    int64 item ids, -1 for padding. Every (valid history position, valid target) pair of a user
    is a positive; its negatives are all other users' targets in the batch, except items equal
    to any of this user's targets (identical items masked). ``history_weights`` [B, H] optional
    per-position weights (e.g. :func:`recency_weights`); pairs are averaged with them.
    ``log_q`` [B, T] optional log sampling probability of each target (sampling-bias
    correction, Yi et al. 2019): subtracted from its logits, so that popular items, which are
    in-batch negatives more often, are not pushed down for it. ``negatives`` [M, d] with
    ``negative_items`` [M] replace the in-batch negatives (e.g. the whole catalogue, each item
    encoded alone); items equal to one of the user's targets are masked there too.
    ``masked_items`` [B, K] int64 (-1 padding): more items never used as a user's negatives,
    typically the history (evaluation masks it, and an item tower that encodes an item alone
    gives a one-item history exactly that item's vector). Returns a scalar.
    """
    b, t, d = target.shape
    flat_items = target_items.reshape(b * t)  # [B*T]
    own = target_items if masked_items is None else torch.cat([target_items, masked_items], 1)
    logits = torch.einsum("bhd,kd->bhk", user, target.reshape(b * t, d)) / temperature
    if log_q is not None:
        logits = logits - log_q.reshape(1, 1, b * t)
    if negatives is None:
        cand_items, neg_logits = flat_items, logits
    else:
        cand_items = negative_items
        neg_logits = torch.einsum("bhd,md->bhm", user, negatives) / temperature
    # owned[b, i + 1]: item i is one of user b's own (target or masked) items; column 0 stands
    # for padding (-1), never a negative.
    width = int(max(cand_items.max(), own.max())) + 2
    owned = torch.zeros(b, width, dtype=torch.bool, device=user.device)
    owned.scatter_(1, own + 1, True)
    owned[:, 0] = True
    negative = ~owned[:, cand_items + 1]  # [B, M]; a user's own targets are never negatives
    neg_lse = neg_logits.masked_fill(~negative[:, None, :], -math.inf).logsumexp(-1)  # [B, H]
    positive = logits.view(b, -1, b, t).diagonal(dim1=0, dim2=2).permute(2, 0, 1)  # [B, H, T]
    # -log softmax of the positive against {itself} + negatives
    pair_loss = torch.logaddexp(positive, neg_lse[..., None]) - positive
    weight = user_valid.float()
    if history_weights is not None:
        weight = weight * history_weights
    pair_weight = weight[..., None] * (target_items >= 0)[:, None, :].float()  # [B, H, T]
    return (pair_loss * pair_weight).sum() / pair_weight.sum().clamp(min=1e-12)


def last_position_loss(
    user: torch.Tensor, target: torch.Tensor, target_items: torch.Tensor, temperature: float = 0.05
) -> torch.Tensor:
    """The simpler variant: one user vector (last history position) per user and one target.

    ``user`` [B, d], ``target`` [B, d], ``target_items`` [B] int64. In-batch softmax; other
    rows holding the same item as a row's target are masked. Returns a scalar.
    """
    logits = user @ target.T / temperature  # [B, B]
    same = target_items[None, :] == target_items[:, None]
    logits = logits.masked_fill(same & ~torch.eye(len(user), dtype=torch.bool, device=user.device), -math.inf)
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(user), device=user.device))
