"""Next-item losses: agreement with brute-force definitions, exclusions, the logQ correction."""

import math

import torch
import torch.nn.functional as F

from learnrec.shared.model.loss import full_softmax_loss, sampled_softmax_loss

TAU = 0.05


def _unit(*shape):
    return F.normalize(torch.randn(*shape), dim=-1)


def test_full_softmax_matches_brute_force_with_exclusions():
    torch.manual_seed(0)
    user, items = _unit(5, 8), _unit(7, 8)
    target = torch.tensor([0, 3, 3, 6, 1])
    excluded = torch.rand(5, 7) < 0.4
    excluded[1, 3] = True  # the target is never excluded
    want = 0.0
    for r in range(5):
        cands = [j for j in range(7) if j == target[r] or not excluded[r, j]]
        logits = torch.stack([user[r] @ items[j] / TAU for j in cands])
        want += float(torch.logsumexp(logits, 0) - user[r] @ items[target[r]] / TAU)
    got = full_softmax_loss(user, items, target, TAU, excluded)
    assert math.isclose(float(got), want / 5, rel_tol=1e-5)


def test_sampled_softmax_matches_brute_force():
    torch.manual_seed(1)
    user, pos, neg = _unit(4, 8), _unit(4, 8), _unit(6, 8)
    excluded = torch.zeros(4, 6, dtype=torch.bool)
    excluded[2, [0, 5]] = True
    log_q = math.log(6 / 100)
    want = 0.0
    for r in range(4):
        p = user[r] @ pos[r] / TAU
        negs = [user[r] @ neg[j] / TAU - log_q for j in range(6) if not excluded[r, j]]
        want += float(torch.logsumexp(torch.stack([p, *negs]), 0) - p)
    got = sampled_softmax_loss(user, pos, neg, TAU, log_q, excluded)
    assert math.isclose(float(got), want / 4, rel_tol=1e-5)


def test_uniform_sample_with_logq_estimates_the_full_softmax():
    """The whole catalogue as the 'sample' with log q = 0 is the full softmax; a uniform half of
    it with log q = log(1/2) comes close on average."""
    torch.manual_seed(2)
    user, items = _unit(64, 16), _unit(400, 16)
    target = torch.randint(0, 400, (64,))
    full = float(full_softmax_loss(user, items, target, 0.2))
    others = torch.ones(64, 400, dtype=torch.bool)
    others[torch.arange(64), target] = False
    every = sampled_softmax_loss(user, items[target], items, 0.2, 0.0, ~others)
    assert math.isclose(float(every), full, rel_tol=1e-5)
    halves = []
    for seed in range(20):
        pick = torch.randperm(400, generator=torch.Generator().manual_seed(seed))[:200]
        excluded = pick[None, :] == target[:, None]
        halves.append(float(sampled_softmax_loss(user, items[target], items[pick], 0.2, math.log(0.5), excluded)))
    assert abs(sum(halves) / len(halves) - full) < 0.05 * full
