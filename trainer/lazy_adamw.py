"""AdamW whose step costs what the batch touched, not what the ID table holds.

The online trainer's ID table has a row per item that collected ``id_min_count`` interactions,
so it grows with the catalogue, while a step looks up a few thousand rows (the batch's histories
and targets, the sampled negatives). ``torch.optim.AdamW`` updates every row of it every step
(and the dense gradient it needs is as large as the table): the update alone took 9 / 80 / 734 ms
for 10,000 / 100,000 / 1,000,000 rows of 128 here, and the trainer learned 9.3x slower with a
million rows (bench/results/trainer-id-table.json). :class:`LazyAdamW` takes a sparse gradient for such a table
(``LearnModel.sparse_id_grads``) and updates the moments and weights of the rows with a non-zero
gradient only, AdamW's decoupled weight decay included; the other rows, and their moments, stay
as they are until a step touches them again (what "lazy Adam" means). A dense gradient gets
AdamW's update unchanged. The state has AdamW's layout (``step``, ``exp_avg``, ``exp_avg_sq`` per
parameter), so a checkpoint of either loads into the other.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class LazyAdamW(torch.optim.Optimizer):
    """AdamW for dense gradients; for a sparse one (a COO gradient of a ``[rows, dim]`` table), the
    same update restricted to the rows whose gradient is not zero."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch.optim.Optimizer's signature
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                t = float(state["step"])
                scale, root = lr / (1 - beta1**t), (1 - beta2**t) ** 0.5
                if param.grad.is_sparse:
                    _rows_update(param, param.grad, state, (beta1, beta2), eps, lr * decay, scale, root)
                    continue
                grad, avg, avg_sq = param.grad, state["exp_avg"], state["exp_avg_sq"]
                param.mul_(1 - lr * decay)
                avg.lerp_(grad, 1 - beta1)
                avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                param.addcdiv_(avg, avg_sq.sqrt().div_(root).add_(eps), value=-scale)
        return None


def _rows_update(param: torch.Tensor, grad: torch.Tensor, state: dict, betas: tuple[float, float], eps: float,
                 decay: float, scale: float, root: float) -> None:
    """AdamW's update of the rows of ``param`` ``[rows, dim]`` where the sparse ``grad`` is not zero."""
    grad = grad.coalesce()
    values = grad.values()  # [n, dim]
    touched = values.abs().sum(1) > 0  # a looked-up row whose occurrences were all masked has none
    rows, values = grad.indices()[0][touched], values[touched]
    if not len(rows):
        return
    beta1, beta2 = betas
    avg = state["exp_avg"][rows].lerp_(values, 1 - beta1)
    avg_sq = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
    state["exp_avg"][rows], state["exp_avg_sq"][rows] = avg, avg_sq
    param[rows] = param[rows].mul_(1 - decay).addcdiv_(avg, avg_sq.sqrt().div_(root).add_(eps), value=-scale)
