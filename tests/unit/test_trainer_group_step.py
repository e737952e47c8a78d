"""A trainer group's steps over a real gloo process group (members in spawned processes, no
Kafka or Redis): the members keep one model, and the round plan."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from learnrec.trainer.group_step import Report, plan
from tests.group_helpers import member_events, run_member, small_trainer


def _run_group(tmp_path, events_per_round: list[int]) -> list[tuple]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    size = len(events_per_round)
    members = [ctx.Process(target=run_member, args=(rank, size, str(tmp_path / "store"), events_per_round, results))
               for rank in range(size)]
    for member in members:
        member.start()
    out = sorted(results.get(timeout=120) for _ in members)
    for member in members:
        member.join(timeout=30)
        assert member.exitcode == 0
    return out


def test_two_members_keep_one_model(tmp_path):
    """Members with different events (one has fewer, so some of its steps are empty) end with
    identical weights and ID rows, every event trained once by the member that took it."""
    (_, weights0, ids0, steps0, trained0, audit0), (_, weights1, ids1, steps1, trained1, audit1) = \
        _run_group(tmp_path, [40, 7])
    assert ids0 == ids1 and steps0 == steps1 > 4
    assert all(np.array_equal(weights0[k], weights1[k]) for k in weights0)
    initial = small_trainer().model.state_dict()
    assert not np.array_equal(weights0["blocks.0.qkv.weight"], initial["blocks.0.qkv.weight"].numpy())  # it trained
    assert (trained0, trained1) == (160, 28)
    assert set(audit0) == {e.event_id for e in member_events(0, 160)} and set(audit0.values()) == {1}
    assert set(audit1) == {e.event_id for e in member_events(1, 28)} and set(audit1.values()) == {1}
    assert set(ids0) == set(_targets(0)) | set(_targets(1))  # each member's targets have rows on both


def _targets(rank: int) -> list[str]:
    """The items of the member's events that formed an example (not a user's first)."""
    seen: set[str] = set()
    out = []
    for event in member_events(rank, 160 if rank == 0 else 28):
        if event.user_id in seen:
            out.append(event.item_id)
        seen.add(event.user_id)
    return out


def test_a_group_of_one_trains_as_a_single_trainer(tmp_path):
    """The group step is the single trainer's step: the same weights after the same events."""
    ((_, weights, ids, steps, trained, _),) = _run_group(tmp_path, [40])
    single = small_trainer()
    for round_ in range(4):
        single.add(member_events(0, 160)[round_ * 40 : (round_ + 1) * 40])
    single.flush()
    assert (single.steps, single.trained, list(single.ids.items)) == (steps, trained, ids)
    expected = single.model.state_dict()
    # to rounding: the attention's key bias has a gradient that is zero but for rounding, and
    # Adam divides it by its own tiny scale (7.8e-5 apart here; every other weight within 2e-7)
    assert all(np.allclose(weights[k], expected[k].numpy(), atol=1e-6) for k in weights if k != "blocks.0.qkv.bias")
    assert np.allclose(weights["blocks.0.qkv.bias"], expected["blocks.0.qkv.bias"].numpy(), atol=1e-3)


def _report(**kw) -> Report:
    return Report(**{"released": 0, "added": 0, "idle": False, "leaving": False} | kw)


@pytest.mark.parametrize(("reports", "expected"), [
    # full batches only, the member with the most sets the count
    ([_report(released=40, added=40), _report(released=10, added=10)], (2, 50, False, (), False, False, False)),
    # a checkpoint trains every released event first
    ([_report(released=40, checkpoint=True), _report(released=10)], (3, 0, False, (), False, True, False)),
    # a member leaving: checkpoint, it stops and the rest re-form; no publish then
    ([_report(publish=True), _report(leaving=True)], (0, 0, False, (1,), True, True, False)),
    # everyone idle: checkpoint and stop; one member still busy: go on
    ([_report(idle=True), _report(idle=True, released=1)], (1, 0, True, (), False, True, False)),
    ([_report(idle=True), _report()], (0, 0, False, (), False, False, False)),
    # only rank 0's cadence and membership count
    ([_report(), _report(reform=True, checkpoint=True, publish=True)], (0, 0, False, (), False, False, False)),
    ([_report(publish=True), _report()], (0, 0, False, (), False, True, True)),
])
def test_the_round_plan(reports, expected):
    p = plan(reports, batch_size=16)
    assert (p.steps, p.added, p.stop, p.leaving, p.reform, p.checkpoint, p.publish) == expected
