"""Loss functions: agreement with a brute-force definition, identical-item masking, weights."""

import math

import pytest
import torch
import torch.nn.functional as F

from shared.model.loss import dense_all_action_loss, last_position_loss, recency_weights

TAU = 0.05


def _unit(*shape):
    return F.normalize(torch.randn(*shape), dim=-1)


def _brute(user, valid, target, items):
    """Mean over valid (b, h, t) of -log softmax(positive vs other users' distinct targets)."""
    b_n, h_n, _ = user.shape
    t_n = target.shape[1]
    total, count = 0.0, 0
    for b in range(b_n):
        own = set(items[b].tolist())
        for h in range(h_n):
            if not valid[b, h]:
                continue
            negs = [user[b, h] @ target[c, s] / TAU for c in range(b_n) for s in range(t_n)
                    if c != b and items[c, s] >= 0 and int(items[c, s]) not in own]
            for t in range(t_n):
                if items[b, t] < 0:
                    continue
                pos = user[b, h] @ target[b, t] / TAU
                total += float(torch.logsumexp(torch.stack([pos, *negs]), 0) - pos)
                count += 1
    return total / count


def test_dense_matches_brute_force_with_padding_and_duplicates():
    torch.manual_seed(0)
    user, target = _unit(4, 3, 8), _unit(4, 2, 8)
    items = torch.tensor([[1, 2], [2, 3], [4, -1], [5, 6]])  # item 2 shared by users 0 and 1
    valid = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1]], dtype=torch.bool)
    got = dense_all_action_loss(user, valid, target, items, TAU)
    assert got.item() == pytest.approx(_brute(user, valid, target, items), rel=1e-5)


def test_identical_items_are_not_negatives():
    # Two users with the same target and the same vectors: masking makes the loss minimal.
    torch.manual_seed(1)
    v = _unit(1, 1, 8)
    user = torch.cat([v, v])
    items = torch.tensor([[7], [7]])
    loss = dense_all_action_loss(user, torch.ones(2, 1, dtype=torch.bool), user.clone(), items, TAU)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # no negatives left at all
    unmasked = dense_all_action_loss(user, torch.ones(2, 1, dtype=torch.bool), user.clone(),
                                     torch.tensor([[7], [8]]), TAU)
    assert unmasked.item() == pytest.approx(math.log(2), rel=1e-5)


def test_loss_decreases_when_positives_align():
    torch.manual_seed(2)
    target = _unit(8, 3, 16)
    aligned = dense_all_action_loss(target[:, :1].expand(-1, 2, -1), torch.ones(8, 2, dtype=torch.bool),
                                    target, torch.arange(24).view(8, 3), TAU)
    random = dense_all_action_loss(_unit(8, 2, 16), torch.ones(8, 2, dtype=torch.bool), target,
                                   torch.arange(24).view(8, 3), TAU)
    assert aligned < random


def test_history_weights_select_positions():
    torch.manual_seed(3)
    user, target, items = _unit(3, 2, 8), _unit(3, 2, 8), torch.arange(6).view(3, 2)
    valid = torch.ones(3, 2, dtype=torch.bool)
    only_last = torch.tensor([[0.0, 1.0]]).expand(3, -1)
    want = dense_all_action_loss(user[:, 1:], valid[:, 1:], target, items, TAU)
    got = dense_all_action_loss(user, valid, target, items, TAU, history_weights=only_last)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_recency_weights():
    w = recency_weights(10)
    assert w.sum().item() == pytest.approx(1.0)
    assert torch.all(w[1:] > w[:-1])
    assert w[0].item() == pytest.approx(math.log(10) / sum(math.log(10 + i * 9990 / 9) for i in range(10)))
    assert recency_weights(1).tolist() == [1.0]


def test_last_position_loss_masks_duplicates():
    torch.manual_seed(4)
    user, target = _unit(3, 8), _unit(3, 8)
    items = torch.tensor([5, 5, 9])
    logits = user @ target.T / TAU
    want = [
        -(logits[0, 0] - torch.logsumexp(logits[0, [0, 2]], 0)),
        -(logits[1, 1] - torch.logsumexp(logits[1, [1, 2]], 0)),
        -(logits[2, 2] - torch.logsumexp(logits[2], 0)),
    ]
    got = last_position_loss(user, target, items, TAU)
    assert got.item() == pytest.approx(torch.stack(want).mean().item(), rel=1e-5)


def test_log_q_correction():
    torch.manual_seed(5)
    user, target, items = _unit(4, 2, 8), _unit(4, 3, 8), torch.arange(12).view(4, 3)
    valid = torch.ones(4, 2, dtype=torch.bool)
    plain = dense_all_action_loss(user, valid, target, items, TAU)
    constant = dense_all_action_loss(user, valid, target, items, TAU, log_q=torch.full((4, 3), -2.0))
    assert constant.item() == pytest.approx(plain.item(), rel=1e-5)  # a constant shift cancels
    # For user 0, whose own targets keep log q = 0, popular negatives (log q = 3) weigh less.
    log_q = torch.zeros(4, 3)
    log_q[1:, :] = 3.0
    only_user0 = torch.tensor([[1, 1], [0, 0], [0, 0], [0, 0]], dtype=torch.bool)
    args = (user, only_user0, target, items, TAU)
    assert dense_all_action_loss(*args, log_q=log_q) < dense_all_action_loss(*args)


def test_explicit_negatives_replace_in_batch_ones():
    torch.manual_seed(6)
    user, target, items = _unit(2, 2, 8), _unit(2, 2, 8), torch.tensor([[0, 1], [2, -1]])
    catalogue = _unit(4, 8)
    valid = torch.ones(2, 2, dtype=torch.bool)
    got = dense_all_action_loss(user, valid, target, items, TAU, negatives=catalogue,
                                negative_items=torch.arange(4))
    total, count = 0.0, 0
    for b in range(2):
        negs = [c for c in range(4) if c not in items[b].tolist()]
        for h in range(2):
            for t in range(2):
                if items[b, t] < 0:
                    continue
                pos = user[b, h] @ target[b, t] / TAU
                neg = catalogue[negs] @ user[b, h] / TAU
                total += float(torch.logsumexp(torch.cat([pos[None], neg]), 0) - pos)
                count += 1
    assert got.item() == pytest.approx(total / count, rel=1e-5)


def test_masked_items_are_not_negatives():
    torch.manual_seed(7)
    user, target = _unit(3, 1, 8), _unit(3, 1, 8)
    items = torch.tensor([[0], [1], [2]])
    valid = torch.ones(3, 1, dtype=torch.bool)
    # Masking item 1 for user 0 and nothing else equals the brute force with item 1 removed.
    masked = torch.tensor([[1, -1], [-1, -1], [-1, -1]])
    got = dense_all_action_loss(user, valid, target, items, TAU, masked_items=masked)
    logit = lambda b, c: user[b, 0] @ target[c, 0] / TAU  # noqa: E731
    rows = [[0, 2], [1, 0, 2], [2, 0, 1]]  # positive first, then the negatives left
    want = sum(torch.logsumexp(torch.stack([logit(b, c) for c in r]), 0) - logit(b, b)
               for b, r in enumerate(rows)) / 3
    assert got.item() == pytest.approx(float(want), rel=1e-5)
