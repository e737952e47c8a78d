"""A trainer group's rounds: every member takes the same steps, so the group keeps one model.

Data parallel over PyTorch's distributed package (gloo on CPU): in a step each member computes
the gradient of the loss summed over its own examples (none is fine), one all-reduce sums the
gradients and the example counts, and every member applies the same AdamW step to the mean.
The ID rows stay identical too: before the step the members share the targets they train
(all-gather) and count them in rank order.

A round (:func:`plan_round`) starts with an all-gather of each member's :class:`Report`, so
every member derives the same plan: how many steps, and whether the group checkpoints,
publishes, re-forms or stops. Rank 0 decides the cadence (checkpoints, publishes) and watches
the membership; any member may be leaving (SIGTERM), and the group stops when every member
has been idle for ``max_idle_s``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist

from learnrec.trainer.online import OnlineTrainer, Released


@dataclass(frozen=True)
class Report:
    """One member's state at the start of a round."""

    released: int  # events released from the hold-back, not trained yet
    added: int  # events taken since the last round
    idle: bool  # nothing polled for max_idle_s
    leaving: bool  # told to stop
    reform: bool = False  # rank 0: the live members differ from the world's
    checkpoint: bool = False  # rank 0: a checkpoint is due
    publish: bool = False  # rank 0: a publish is due


@dataclass(frozen=True)
class Plan:
    steps: int
    added: int  # events the whole group took since the last round
    stop: bool  # every member idle: checkpoint and stop
    leaving: tuple[int, ...]  # ranks that leave after a checkpoint (the rest re-form)
    reform: bool
    checkpoint: bool
    publish: bool


def plan_round(report: Report, batch_size: int) -> Plan:
    """Collective: gather every member's report and derive the plan (the same on all)."""
    gathered: list[dict | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, asdict(report))
    return plan([Report(**r) for r in gathered if r is not None], batch_size)


def plan(reports: list[Report], batch_size: int) -> Plan:
    """The round's plan from every member's report, in rank order: a checkpoint trains every
    released event first; otherwise only full batches are trained."""
    lead = reports[0]
    stop = all(r.idle for r in reports)
    leaving = tuple(n for n, r in enumerate(reports) if r.leaving)
    reform = lead.reform or bool(leaving)
    checkpoint = stop or reform or lead.checkpoint or lead.publish
    per_member = [-(-r.released // batch_size) if checkpoint else r.released // batch_size for r in reports]
    return Plan(max(per_member), sum(r.added for r in reports), stop, leaving, reform, checkpoint,
                lead.publish and not (stop or reform))


def group_step(trainer: OnlineTrainer, released: Released) -> None:
    """Collective: one step of the group on every member's ``released`` events (maybe none)."""
    targets = [target for _, target in released.examples]
    gathered: list[list[str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, targets)
    batch = trainer.batch(released, [t for member in gathered for t in member or ()])
    trainer.optimizer.zero_grad(set_to_none=True)
    n = 0
    if batch is not None:
        loss = trainer.loss(batch)
        n = len(batch.target)
        (loss * n).backward()
        trainer.last_loss = float(loss.detach())
    table = trainer.model.id_table  # after the batch: counting its targets may have grown it
    params = [p for p in trainer.model.parameters() if p is not table]
    flat = torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.reshape(-1) for p in params]
                     + [torch.tensor([float(n)])])
    dist.all_reduce(flat)
    total = float(flat[-1])
    table_grad = _reduce_rows(table)
    if total > 0:
        at = 0
        for p in params:
            p.grad = (flat[at : at + p.numel()] / total).view_as(p).clone()
            at += p.numel()
        table.grad = table_grad / total
        trainer.apply_gradients()
    trainer.count_trained(released)


def _reduce_rows(table: torch.nn.Parameter) -> torch.Tensor:
    """The ID table's gradient summed over the members, sparse: only the rows some member's step
    touched travel (a step touches a few thousand of a catalogue's rows), and only they are
    updated (:mod:`learnrec.trainer.lazy_adamw`)."""
    mine, values = torch.zeros(0, dtype=torch.long), torch.zeros(0, table.shape[1])
    if table.grad is not None:
        local = table.grad.coalesce()
        nonzero = local.values().abs().sum(1) > 0
        mine, values = local.indices()[0][nonzero], local.values()[nonzero]
    gathered: list[list[int] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine.tolist())
    rows = torch.tensor(sorted({r for member in gathered for r in member or ()}), dtype=torch.long)
    block = torch.zeros(len(rows), table.shape[1])  # [rows, dim]
    if len(rows):
        block[torch.searchsorted(rows, mine)] = values
        dist.all_reduce(block)
    return torch.sparse_coo_tensor(rows[None], block, tuple(table.shape))


def train_released(trainer: OnlineTrainer, steps: int, batch_size: int) -> None:
    """The plan's ``steps`` group steps, each on up to ``batch_size`` of this member's events."""
    for _ in range(steps):
        group_step(trainer, trainer.take_released(batch_size))


def same_model(trainer: OnlineTrainer) -> None:
    """Collective: every member takes rank 0's weights (a start from scratch or from a file)."""
    for tensor in trainer.model.state_dict().values():
        dist.broadcast(tensor, src=0)
