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
    own = target_items if masked_items is None else torch.cat([target_items, masked_items], 1)
    if negatives is None:
        logits = torch.einsum("bhd,kd->bhk", user, target.reshape(b * t, d)) / temperature  # [B, H, B*T]
        if log_q is not None:
            logits = logits - log_q.reshape(1, 1, b * t)
        cand_items, neg_logits = target_items.reshape(b * t), logits
        positive = logits.view(b, -1, b, t).diagonal(dim1=0, dim2=2).permute(2, 0, 1)  # [B, H, T]
    else:
        # only a user's own targets are positives: no [B, H, B*T] product
        positive = torch.einsum("bhd,btd->bht", user, target) / temperature
        if log_q is not None:
            positive = positive - log_q[:, None, :]
        cand_items = negative_items
        neg_logits = torch.einsum("bhd,md->bhm", user, negatives) / temperature
    negative = _not_owned(own, cand_items)  # [B, M]
    neg_lse = neg_logits.masked_fill(~negative[:, None, :], -math.inf).logsumexp(-1)  # [B, H]
    # -log softmax of the positive against {itself} + negatives
    pair_loss = torch.logaddexp(positive, neg_lse[..., None]) - positive
    weight = user_valid.float()
    if history_weights is not None:
        weight = weight * history_weights
    pair_weight = weight[..., None] * (target_items >= 0)[:, None, :].float()  # [B, H, T]
    return (pair_loss * pair_weight).sum() / pair_weight.sum().clamp(min=1e-12)


def _not_owned(own: torch.Tensor, cand_items: torch.Tensor) -> torch.Tensor:
    """``own`` [B, K] item ids (-1 padding), ``cand_items`` [M] (-1 padding) -> bool [B, M]:
    candidate ``m`` is a real item that is none of user ``b``'s own items. The ids are first
    renumbered over the candidates and own items alone, so the work does not grow with the
    largest item id (the catalogue size)."""
    m = cand_items.shape[0]
    _, index = torch.unique(torch.cat([cand_items, own.reshape(-1)]), return_inverse=True)
    owned = torch.zeros(own.shape[0], int(index.max()) + 1, dtype=torch.bool, device=own.device)
    owned.scatter_(1, index[m:].view(own.shape), True)
    return ~owned[:, index[:m]] & (cand_items >= 0)[None, :]


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
