"""Dead-letter writer: a rejected event goes to the dead-letter topic and the worker goes on.

The record keeps the original key and value bytes untouched; the reason and the source
coordinates travel as headers:

- ``dlq.reason``: why the event was rejected (UTF-8 text)
- ``dlq.source.topic`` / ``dlq.source.partition`` / ``dlq.source.offset``
- ``dlq.stage``: which worker rejected it
- ``dlq.time``: Unix seconds when it was rejected

Delivered dead letters are counted in ``learnrec_dead_letters_total{worker, reason}``, where
``reason`` is a short fixed class of the reason (:func:`reason_class`), never its free text.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from kafka import KafkaProducer
from prometheus_client import Counter

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 2_000

DEAD_LETTERS = Counter("learnrec_dead_letters_total", "Dead letters delivered, by worker and class of reason",
                       ["worker", "reason"])

# The fixed classes of ``learnrec_dead_letters_total``'s ``reason`` label.
REASON_CLASSES = ("empty", "too_large", "invalid_json", "unknown_schema_version", "validation",
                  "tombstone_key", "processing", "other")


def reason_class(reason: str) -> str:
    """The class of a rejection reason (the messages of :mod:`learnrec.shared.schemas`' ``EventError``)."""
    text = reason.lower()
    if text.startswith("empty message"):
        return "empty"
    if "more than the limit" in text:
        return "too_large"
    if text.startswith(("not utf-8 json", "expected a json object")):
        return "invalid_json"
    if "unknown major schema version" in text:
        return "unknown_schema_version"
    if "tombstone" in text:
        return "tombstone_key"
    if text.startswith("invalid "):
        return "validation"
    return "other"


@dataclass(frozen=True)
class DeadLetter:
    """A dead-letter record as read back from the topic."""

    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    stage: str
    key: bytes | None
    value: bytes | None

    @classmethod
    def from_record(cls, record: object) -> DeadLetter:
        headers = {k: v for k, v in (getattr(record, "headers", None) or [])}
        return cls(
            reason=headers.get("dlq.reason", b"").decode("utf-8", "replace"),
            source_topic=headers.get("dlq.source.topic", b"").decode(),
            source_partition=int(headers.get("dlq.source.partition", b"-1")),
            source_offset=int(headers.get("dlq.source.offset", b"-1")),
            stage=headers.get("dlq.stage", b"").decode(),
            key=getattr(record, "key", None),
            value=getattr(record, "value", None),
        )


class DeadLetterError(RuntimeError):
    """Dead letters that the broker did not acknowledge: their offsets must not be committed."""


class DeadLetterWriter:
    """Sends rejected records to one dead-letter topic; :meth:`flush` (which raises unless every
    one was acknowledged) before committing offsets."""

    def __init__(self, producer: KafkaProducer, topic: str, stage: str) -> None:
        self._producer = producer
        self._topic = topic
        self._stage = stage
        self._pending: list = []  # futures of sends not yet checked
        self._classes: list[str] = []  # their reason classes, counted once all are acknowledged
        self.sent = 0

    def send(self, record: object, reason: str, kind: str | None = None) -> None:
        """Queue ``record`` (a kafka-python ConsumerRecord) with ``reason``; ``kind``: its class
        (one of :data:`REASON_CLASSES`; default :func:`reason_class` of ``reason``)."""
        self._classes.append(kind if kind in REASON_CLASSES else reason_class(reason))
        reason = reason[:MAX_REASON_CHARS]
        headers = [
            ("dlq.reason", reason.encode("utf-8")),
            ("dlq.source.topic", str(getattr(record, "topic", "")).encode()),
            ("dlq.source.partition", str(getattr(record, "partition", -1)).encode()),
            ("dlq.source.offset", str(getattr(record, "offset", -1)).encode()),
            ("dlq.stage", self._stage.encode()),
            ("dlq.time", json.dumps(time.time()).encode()),
        ]
        self._pending.append(self._producer.send(
            self._topic,
            key=getattr(record, "key", None),
            value=getattr(record, "value", None),
            headers=headers,
        ))
        self.sent += 1
        log.warning(
            "dead-lettered %s[%s]@%s: %s",
            getattr(record, "topic", "?"),
            getattr(record, "partition", "?"),
            getattr(record, "offset", "?"),
            reason,
        )

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every queued dead letter is acknowledged by the broker; raises
        :class:`DeadLetterError` when one was not (the caller sends them again)."""
        pending, self._pending = self._pending, []
        classes, self._classes = self._classes, []
        self._producer.flush(timeout=timeout)
        failed = [f for f in pending if not f.succeeded()]
        if failed:  # not counted: the caller sends them all again
            raise DeadLetterError(f"{len(failed)} of {len(pending)} dead letters were not acknowledged: "
                                  f"{failed[0].exception!r}")
        for kind in classes:
            DEAD_LETTERS.labels(self._stage, kind).inc()
