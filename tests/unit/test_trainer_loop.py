"""The trainer loop's cadence: a fenced batch starts no publish clock, and a failing publish
backs off (doubling) instead of exporting a candidate at every poll."""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

import pytest

from learnrec.shared.config import Settings
from learnrec.shared.schemas import InteractionEvent
from learnrec.shared.worker import Accepted
from learnrec.trainer import worker as trainer_worker
from learnrec.trainer.worker import TrainerLoop

Record = namedtuple("Record", "topic partition offset")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(trainer_worker.time, "monotonic", clock)
    return clock


def _loop(trainer=None) -> TrainerLoop:
    settings = Settings(trainer_publish_every_s=10, trainer_publish_retry_s=5, trainer_publish_retry_max_s=30)
    return TrainerLoop(settings, trainer or SimpleNamespace(offsets={}), registry=None)


def test_a_fully_fenced_batch_starts_no_publish_clock(clock):
    added = []
    trainer = SimpleNamespace(offsets={"interactions:0": 10}, add=lambda events, offsets, partitions: added.append(events))
    loop = _loop(trainer)
    event = InteractionEvent(event_id="e", user_id="u", item_id="i")
    loop.handle([Accepted(Record("interactions", 0, 9), event)])  # below the checkpoint: fenced
    assert added == [[]] and loop.unpublished_since is None
    loop.handle([Accepted(Record("interactions", 0, 10), event)])
    assert added[-1] == [event] and loop.unpublished_since == clock.now


def test_a_failing_publish_is_retried_with_a_doubling_backoff(clock, monkeypatch):
    loop = _loop()
    attempts = []

    def fail(*args, **kwargs):
        attempts.append(clock.now)
        raise ConnectionError("redis is down")

    monkeypatch.setattr(loop, "checkpoint", lambda: None)
    monkeypatch.setattr(trainer_worker, "register_model", fail)
    loop.trainer = SimpleNamespace(model=None, encoder="e", ids=SimpleNamespace(items=[]))
    loop.registry = SimpleNamespace()
    loop.unpublished_since = clock.now - 10  # due
    for _ in range(200):  # a poll every half second for 100 s
        loop.tick()
        clock.now += 0.5
    gaps = [round(b - a) for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps == [5, 10, 20, 30, 30]  # not one export per poll
