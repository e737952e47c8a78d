"""The consume-validate-process-commit loop every streaming component runs.

Contract (at-least-once, with idempotent handlers giving effectively-once results):

1. poll a batch;
2. decode each record; one that fails goes to the dead-letter topic with the reason;
3. hand the good ones to the handler, which may reject more (also dead-lettered);
4. deliver the dead letters (every send acknowledged by the broker), then commit the batch's
   offsets.

If the handler raises (a sink is down), nothing is committed: the consumer seeks back to the
batch's first offsets and retries after a back-off, so no accepted event is lost. Once the
handler has run, a failed dead-letter delivery is retried on its own (the handler is not run
again) until it succeeds; the offsets are committed only then, so no dead letter is lost. A
commit the group refuses (a rebalance moved the partitions) is logged: the partitions' new
owner re-reads from the last commit, which idempotent handlers absorb. A crash anywhere before
step 4 means the batch is redelivered; handlers must be idempotent. With a
:class:`~learnrec.shared.rebuild.ReplayGuard`, a wiped Redis makes the worker replay its partitions from
the beginning before it handles anything more.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from learnrec.shared.dead_letter import DeadLetterWriter
from learnrec.shared.kafka_io import CLOSE_TIMEOUT_MS
from learnrec.shared.rebuild import ReplayGuard
from learnrec.shared.schemas import EventError

log = logging.getLogger(__name__)

E = TypeVar("E")

EVENTS = Counter("learnrec_events_total", "Events consumed", ["worker", "outcome"])
BATCH_SIZE = Histogram(
    "learnrec_batch_size", "Records per polled batch", ["worker"], buckets=(1, 5, 10, 50, 100, 250, 500, 1000)
)
BATCH_SECONDS = Histogram("learnrec_batch_seconds", "Time to process one batch", ["worker"])
CONSUMER_LAG = Gauge("learnrec_consumer_lag", "Records behind the end of the log", ["worker"])
BATCH_FAILURES = Counter("learnrec_batch_failures_total", "Batches retried after a handler error", ["worker"])


def serve_metrics(port: int, name: str) -> None:
    """Serve the process's Prometheus metrics on ``:port/metrics`` (``settings.process.metrics_port``;
    0: not served)."""
    if port:
        start_http_server(port)
        log.info("%s: metrics on :%d/metrics", name, port)


def values(decode: Callable[[bytes | None], E]) -> Callable[[ConsumerRecord], E]:
    """A record decoder that reads the value only (``decode(raw_value) -> E``)."""
    return lambda record: decode(record.value)


@dataclass
class Accepted(Generic[E]):
    """A record that decoded into an event."""

    record: object
    event: E


@dataclass
class BatchResult:
    """What the handler says about a batch: records it rejected, with reasons."""

    rejected: list[tuple[object, str]] = field(default_factory=list)


@dataclass
class BatchStats:
    polled: int = 0
    accepted: int = 0
    dead_lettered: int = 0


class BatchWorker(Generic[E]):
    """Runs the loop above for one consumer.

    ``decode(record) -> E`` raises :class:`EventError` on bad input (:func:`values` makes one
    from a decoder of the record's value).
    ``handle(batch: list[Accepted[E]]) -> BatchResult`` applies the batch idempotently.
    """

    def __init__(
        self,
        name: str,
        consumer: KafkaConsumer,
        decode: Callable[[ConsumerRecord], E],
        handle: Callable[[Sequence[Accepted[E]]], BatchResult],
        dead_letters: DeadLetterWriter,
        *,
        poll_timeout_ms: int = 200,
        max_records: int = 500,
        retry_backoff_s: float = 1.0,
        lag_every_s: float = 5.0,
        guard: ReplayGuard | None = None,
    ) -> None:
        self.name = name
        self.consumer = consumer
        self._decode = decode
        self._handle = handle
        self._dead_letters = dead_letters
        self._poll_timeout_ms = poll_timeout_ms
        self._max_records = max_records
        self._retry_backoff_s = retry_backoff_s
        self._lag_every_s = lag_every_s
        self._last_lag = 0.0
        self._guard = guard
        self.stop_event = threading.Event()
        self.totals = BatchStats()

    def run_once(self) -> BatchStats:
        """Poll, process and commit one batch. Returns what happened (empty on no records)."""
        if self._guard is not None:
            try:
                self._guard.check(self.consumer)  # a wiped Redis: replay the partitions first
            except Exception:  # Redis unreachable, a commit refused in a rebalance: try again
                log.exception("%s: the replay check failed; trying again in %.1fs", self.name, self._retry_backoff_s)
                self.stop_event.wait(self._retry_backoff_s)
                return BatchStats()
        polled = self.consumer.poll(timeout_ms=self._poll_timeout_ms, max_records=self._max_records)
        records = [r for part in polled.values() for r in part]
        stats = BatchStats(polled=len(records))
        if not records:
            self._maybe_report_lag()
            return stats
        if self._guard is not None and not self._guard.covers(records):
            self._rewind(records)  # partitions assigned inside this poll: the next check comes first
            return stats
        started = time.perf_counter()
        BATCH_SIZE.labels(self.name).observe(len(records))
        accepted: list[Accepted[E]] = []
        rejected: list[tuple[object, str, str | None]] = []  # (record, reason, class or None)
        for record in records:
            try:
                accepted.append(Accepted(record, self._decode(record)))
            except EventError as err:
                rejected.append((record, str(err), None))
        try:
            result = self._handle(accepted) if accepted else BatchResult()
        except Exception:
            BATCH_FAILURES.labels(self.name).inc()
            log.exception("%s: batch of %d failed; will retry after %.1fs", self.name, len(records), self._retry_backoff_s)
            self._rewind(records)
            self.stop_event.wait(self._retry_backoff_s)
            return BatchStats(polled=len(records))
        rejected.extend((record, reason, "processing") for record, reason in result.rejected)
        if not self._deliver_dead_letters(rejected):
            self._rewind(records)  # stopping with undelivered dead letters: commit nothing
            return BatchStats(polled=len(records))
        self._commit()
        stats.dead_lettered = len(rejected)
        stats.accepted = len(records) - len(rejected)
        EVENTS.labels(self.name, "accepted").inc(stats.accepted)
        EVENTS.labels(self.name, "dead_letter").inc(stats.dead_lettered)
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        self.totals.polled += stats.polled
        self.totals.accepted += stats.accepted
        self.totals.dead_lettered += stats.dead_lettered
        self._maybe_report_lag()
        return stats

    def run(self, max_idle_s: float | None = None,
            after_poll: Callable[[], None] | None = None) -> BatchStats:
        """Loop until :attr:`stop_event` is set (or nothing arrived for ``max_idle_s``), then close.

        ``after_poll`` runs after every poll, records or not (periodic work such as publishing);
        idle time counts from its end.
        """
        idle_since = time.monotonic()
        try:
            while not self.stop_event.is_set():
                stats = self.run_once()
                if after_poll is not None:
                    after_poll()
                if stats.polled:
                    idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                    break
        finally:
            self.consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
        return self.totals

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT finish the current batch, commit, and exit the loop; SIGUSR1 writes
        every thread's stack to stderr (a worker that seems stuck can be asked where it is)."""

        def _stop(signum: int, _frame: object) -> None:
            log.info("%s: signal %d, stopping after this batch", self.name, signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    def _deliver_dead_letters(self, rejected: list[tuple[object, str, str | None]]) -> bool:
        """Send and confirm every dead letter, retrying after a back-off; False when the worker
        was told to stop first."""
        while rejected:
            try:
                for record, reason, kind in rejected:
                    self._dead_letters.send(record, reason, kind)
                self._dead_letters.flush()
                return True
            except Exception:
                log.exception("%s: %d dead letters not delivered; sending them again in %.1fs",
                              self.name, len(rejected), self._retry_backoff_s)
                if self.stop_event.wait(self._retry_backoff_s):
                    return False
        return True

    def _commit(self) -> None:
        try:
            self.consumer.commit()
        except CommitFailedError:
            log.warning("%s: commit refused (the group rebalanced); the new owner re-reads the batch", self.name)

    def _rewind(self, records: list[object]) -> None:
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)  # type: ignore[attr-defined]
            first[tp] = min(first.get(tp, r.offset), r.offset)  # type: ignore[attr-defined]
        for tp, offset in first.items():
            self.consumer.seek(tp, offset)

    def _maybe_report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < self._lag_every_s:
            return
        self._last_lag = now
        try:  # never blocks: the log ends the fetches last reported, the positions known
            # (end_offsets and position() without a timeout wait for as long as a dead
            # partition leader stays unanswered: minutes after a broker failover)
            lag = 0
            for tp in self.consumer.assignment():
                end, position = self.consumer.highwater(tp), self.consumer.position(tp, timeout_ms=0)
                if end is not None and position is not None:
                    lag += max(0, end - position)
            CONSUMER_LAG.labels(self.name).set(lag)
        except Exception:  # lag is best-effort telemetry, never a reason to stop
            log.debug("lag report failed", exc_info=True)
