"""The consume loop's delivery rules with a fake consumer and producer (no broker): dead letters
are confirmed before a commit and retried without running the handler again, a refused commit
does not stop the worker, and the trainer fences records it already holds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from kafka.errors import CommitFailedError, KafkaTimeoutError

from learnrec.shared.config import Settings
from learnrec.shared.dead_letter import DeadLetterWriter
from learnrec.shared.schemas import EventError, InteractionEvent
from learnrec.shared.worker import Accepted, BatchResult, BatchWorker, values


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    headers: list = field(default_factory=list)


class FakeConsumer:
    def __init__(self, batches: list[list[Record]], refuse_commit: bool = False) -> None:
        self.batches = batches
        self.commits = 0
        self.seeks: list[tuple[object, int]] = []
        self.refuse_commit = refuse_commit

    def poll(self, timeout_ms: int = 0, max_records: int = 0) -> dict:
        return {"tp": self.batches.pop(0)} if self.batches else {}

    def commit(self) -> None:
        if self.refuse_commit:
            raise CommitFailedError("rebalanced")
        self.commits += 1

    def seek(self, tp, offset: int) -> None:
        self.seeks.append((tp, offset))

    def assignment(self) -> set:
        return set()

    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None:
        self.closed_with = {"autocommit": autocommit, "timeout_ms": timeout_ms}


class Future:
    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.exception = None if ok else KafkaTimeoutError("not acknowledged")

    def succeeded(self) -> bool:
        return self.ok


class FakeProducer:
    """Fails the first ``failures`` sends (their futures never succeed)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sends = 0
        self.delivered: list[bytes] = []

    def send(self, topic, key=None, value=None, headers=None) -> Future:
        self.sends += 1
        ok = self.sends > self.failures
        if ok:
            self.delivered.append(value)
        return Future(ok)

    def flush(self, timeout: float = 0) -> None:
        pass


def _decode(raw: bytes) -> bytes:
    if raw.startswith(b"bad"):
        raise EventError("bad input")
    return raw


def _worker(consumer, producer, handled: list) -> BatchWorker:
    def handle(batch):
        handled.append([a.event for a in batch])
        return BatchResult()

    return BatchWorker("test", consumer, values(_decode), handle, DeadLetterWriter(producer, "dlq", "test"),
                       retry_backoff_s=0.0)


def test_dead_letters_are_confirmed_before_the_commit_and_the_handler_runs_once():
    consumer = FakeConsumer([[Record("t", 0, 0, b"good"), Record("t", 0, 1, b"bad one")]])
    producer = FakeProducer(failures=2)
    handled: list = []
    stats = _worker(consumer, producer, handled).run_once()
    assert handled == [[b"good"]]  # not run again while the dead letter was retried
    assert producer.sends == 3 and producer.delivered == [b"bad one"]
    assert consumer.commits == 1 and stats.dead_lettered == 1 and stats.accepted == 1


def test_stopping_with_undelivered_dead_letters_commits_nothing():
    consumer = FakeConsumer([[Record("t", 0, 5, b"bad")]])
    worker = _worker(consumer, FakeProducer(failures=10**6), [])
    worker.stop_event.set()
    worker.run_once()
    assert consumer.commits == 0 and consumer.seeks and consumer.seeks[0][1] == 5


def test_a_stopping_worker_leaves_its_group_within_a_bounded_time():
    # kafka-python waits without limit for the leave-group answer unless told otherwise: a busy
    # broker could hold a worker that was told to stop
    consumer = FakeConsumer([[Record("t", 0, 0, b"a")]])
    worker = _worker(consumer, FakeProducer(), [])
    worker.run(max_idle_s=0.0)
    assert consumer.closed_with["autocommit"] is False
    assert 0 < consumer.closed_with["timeout_ms"] <= 10_000


def test_a_refused_commit_does_not_stop_the_worker():
    consumer = FakeConsumer([[Record("t", 0, 0, b"a")], [Record("t", 0, 1, b"b")]], refuse_commit=True)
    handled: list = []
    worker = _worker(consumer, FakeProducer(), handled)
    worker.run_once()
    worker.run_once()
    assert handled == [[b"a"], [b"b"]]


def test_the_trainer_never_applies_a_redelivered_record_twice():
    from learnrec.trainer.config import TrainConfig
    from learnrec.trainer.content import ContentTable
    from learnrec.trainer.online import OnlineTrainer
    from learnrec.trainer.worker import TrainerLoop

    table = ContentTable(4)
    table.update(["i0", "i1"], np.eye(2, 4, dtype=np.float32))
    trainer = OnlineTrainer.from_scratch(table, TrainConfig.from_settings(Settings()).override(gate_events=10), "test")
    loop = TrainerLoop(Settings(), trainer, registry=None)  # type: ignore[arg-type]
    batch = [Accepted(Record("t", 0, n, b""), InteractionEvent(event_id=f"e{n}", user_id="u", item_id=f"i{n % 2}"))
             for n in range(4)]
    loop.handle(batch)
    loop.handle(batch[2:])  # redelivered (a rewind, a rebalance)
    loop.handle(batch + [Accepted(Record("t", 0, 4, b""), InteractionEvent(event_id="e4", user_id="u", item_id="i0"))])
    assert trainer.pending == 5 and [e for e, *_ in trainer.holdback] == ["e0", "e1", "e2", "e3", "e4"]
    assert trainer.offsets == {"t:0": 5}
