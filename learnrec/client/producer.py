"""Publish item and interaction events (and item removals) to learnrec's Kafka topics.

Every event is validated as the stream workers validate it before anything is sent; delivery
is asynchronous, and :meth:`EventProducer.flush` reports what was delivered and what failed.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeVar

from kafka.errors import KafkaError, KafkaTimeoutError
from pydantic import TypeAdapter, ValidationError

from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import make_producer
from learnrec.shared.schemas import (
    MAX_EVENT_BYTES,
    EventError,
    Identifier,
    InteractionEvent,
    ItemEvent,
)
from learnrec.shared.topics import INTERACTIONS, ITEMS, topic_name

log = logging.getLogger("learnrec.client")

Event = TypeVar("Event", ItemEvent, InteractionEvent)
_ITEM_ID = TypeAdapter(Identifier)


class FailedEvent(NamedTuple):
    topic: str
    key: str
    error: Exception


class PublishError(Exception):
    """Events that were not delivered: ``failures`` lists every one (topic, key, error);
    ``delivered`` counts those of the same flush that were."""

    def __init__(self, failures: list[FailedEvent], delivered: int = 0) -> None:
        self.failures = failures
        self.delivered = delivered
        shown = "; ".join(f"{f.topic} key={f.key!r}: {f.error!r}" for f in failures[:10])
        more = f"; and {len(failures) - 10} more" if len(failures) > 10 else ""
        super().__init__(f"{len(failures)} event(s) not delivered: {shown}{more}")


def _problems(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<event>'}: {e['msg']}"
                     for e in err.errors())


def _validated(model: type[Event], event: Event | Mapping[str, Any]) -> tuple[Event, bytes]:
    """``event`` as a ``model`` and its wire bytes; :class:`EventError` if a worker would refuse it."""
    try:
        valid = event if isinstance(event, model) else model.model_validate(event)
    except ValidationError as err:
        raise EventError(f"invalid {model.__name__}: {_problems(err)}") from None
    raw = valid.to_bytes()
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError(f"event is {len(raw)} bytes, more than the limit of {MAX_EVENT_BYTES}")
    return valid, raw


class EventProducer:
    """A durable, idempotent Kafka producer of learnrec events (``settings``: the topic prefix,
    the brokers and their security options; None reads them from the environment)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._kafka = make_producer(self.settings, client_id="learnrec-client")
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._pending: dict[int, tuple[str, str]] = {}  # send number -> (topic, key)
        self._delivered = 0
        self._failures: list[FailedEvent] = []

    def publish_item(self, item: ItemEvent | Mapping[str, Any]) -> ItemEvent:
        """Send a new or changed item (key: its ``item_id``); returns the validated event."""
        event, raw = _validated(ItemEvent, item)
        self._send(topic_name(self.settings, ITEMS), event.item_id, raw)
        return event

    def publish_interaction(self, interaction: InteractionEvent | Mapping[str, Any]) -> InteractionEvent:
        """Send an interaction (key: its ``user_id``). A mapping without ``event_id`` gets a fresh
        one: resend the returned event, not the mapping, so a retry is recognised downstream."""
        if isinstance(interaction, Mapping) and "event_id" not in interaction:
            interaction = {**interaction, "event_id": uuid.uuid4().hex}
        event, raw = _validated(InteractionEvent, interaction)
        self._send(topic_name(self.settings, INTERACTIONS), event.user_id, raw)
        log.debug("sent interaction", extra={"event_id": event.event_id})
        return event

    def remove_item(self, item_id: str) -> None:
        """Delete an item: a tombstone (its id as the key, a null value) on the items topic."""
        try:
            _ITEM_ID.validate_python(item_id)
        except ValidationError as err:
            raise EventError(f"invalid item id {item_id!r}: {_problems(err)}") from None
        self._send(topic_name(self.settings, ITEMS), item_id, None)

    def _send(self, topic: str, key: str, value: bytes | None) -> None:
        try:
            future = self._kafka.send(topic, key=key.encode("utf-8"), value=value)
        except KafkaError as err:
            raise PublishError([FailedEvent(topic, key, err)]) from err
        number = next(self._numbers)
        with self._lock:
            self._pending[number] = (topic, key)
        future.add_callback(self._settled, number, None)
        future.add_errback(self._settled, number)

    def _settled(self, number: int, error: Exception | None, _metadata: object = None) -> None:
        """A send's outcome (on the producer's I/O thread); ignored once flush gave up on it."""
        with self._lock:
            where = self._pending.pop(number, None)
            if where is None:
                return
            if error is None:
                self._delivered += 1
            else:
                self._failures.append(FailedEvent(*where, error))

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every event sent so far; return how many were delivered since the last
        flush, or raise :class:`PublishError` with every one that failed (or was still
        unconfirmed after ``timeout_s``: it may yet arrive, and resending it is safe)."""
        with self._lock:
            waiting = list(self._pending)
        try:
            self._kafka.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            pass  # the events still pending are reported below
        late = KafkaTimeoutError(f"unconfirmed after {timeout_s} s")
        with self._lock:
            unconfirmed = [FailedEvent(*self._pending.pop(n), late) for n in waiting if n in self._pending]
            failures, self._failures = self._failures + unconfirmed, []
            delivered, self._delivered = self._delivered, 0
        if failures:
            raise PublishError(failures, delivered)
        return delivered

    def close(self, timeout_s: float = 30.0) -> None:
        self._kafka.close(timeout=timeout_s)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.flush()
            finally:
                self.close()
            return
        try:
            self.close()
        except Exception:
            log.warning("closing the producer after an error failed", exc_info=True)
