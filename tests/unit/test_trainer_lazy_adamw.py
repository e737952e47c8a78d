"""LazyAdamW: AdamW on dense gradients, AdamW restricted to the touched rows on a sparse one, and
AdamW's state layout (a checkpoint of either loads into the other). The online trainer's step
leaves the ID rows its batch did not use as they were."""

from __future__ import annotations

import copy

import torch

from learnrec.trainer.lazy_adamw import LazyAdamW

HYPER = {"lr": 0.01, "weight_decay": 0.1}


def _params(seed: int) -> list[torch.nn.Parameter]:
    torch.manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(4))]


def _steps(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], seeds: range) -> None:
    for seed in seeds:
        torch.manual_seed(100 + seed)
        for p in params:
            p.grad = torch.randn_like(p)
        optimizer.step()


def test_dense_gradients_get_adamw_updates() -> None:
    lazy, reference = _params(0), _params(0)
    _steps(LazyAdamW(lazy, **HYPER), lazy, range(6))
    _steps(torch.optim.AdamW(reference, **HYPER), reference, range(6))
    for mine, theirs in zip(lazy, reference, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-5)


def _sparse(rows: list[int], values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.tensor([rows]), values, shape, check_invariants=True)


def test_a_sparse_gradient_moves_the_rows_it_touches_only() -> None:
    torch.manual_seed(1)
    table = torch.nn.Parameter(torch.randn(10, 4))
    reference = torch.nn.Parameter(table.detach().clone())
    lazy, adamw = LazyAdamW([table], **HYPER), torch.optim.AdamW([reference], **HYPER)
    start = table.detach().clone()
    grad = torch.randn(2, 4)
    # rows 1 and 3 used; row 5 looked up but masked (an item without a row), so its values are zero
    table.grad = _sparse([1, 3, 5], torch.cat([grad, torch.zeros(1, 4)]), (10, 4))
    reference.grad = torch.zeros(10, 4)
    reference.grad[[1, 3]] = grad
    lazy.step()
    adamw.step()
    torch.testing.assert_close(table[[1, 3]], reference[[1, 3]])  # touched: AdamW's update
    untouched = [r for r in range(10) if r not in (1, 3)]
    assert torch.equal(table[untouched], start[untouched])  # the rest: no decay, no step
    assert not torch.equal(reference[untouched], start[untouched])  # (AdamW decays every row)
    after_first = table.detach().clone()
    table.grad = _sparse([3, 7], torch.randn(2, 4), (10, 4))
    lazy.step()
    moved = (table.detach() != after_first).any(1)
    assert moved.nonzero().flatten().tolist() == [3, 7]  # row 1's momentum does not carry it on
    assert lazy.state[table]["exp_avg"][[0, 2, 4, 5, 6, 8, 9]].abs().sum() == 0


def test_an_adamw_checkpoint_loads_and_the_training_goes_on_alike() -> None:
    first, second = _params(2), _params(2)
    adamw = torch.optim.AdamW(first, **HYPER)
    _steps(adamw, first, range(3))
    with torch.no_grad():
        for mine, theirs in zip(second, first, strict=True):
            mine.copy_(theirs)
    lazy = LazyAdamW(second, **HYPER)
    lazy.load_state_dict(copy.deepcopy(adamw.state_dict()))  # as from a file: no shared moments
    _steps(adamw, first, range(3, 6))
    _steps(lazy, second, range(3, 6))
    for mine, theirs in zip(second, first, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-5)
    back = torch.optim.AdamW(_params(3), **HYPER)
    back.load_state_dict(lazy.state_dict())  # and the other way
    assert float(back.state_dict()["state"][0]["step"]) == 6
