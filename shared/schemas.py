"""Event contracts: JSON on the wire, validated with explicit size limits.

Decoding never raises anything but :class:`EventError`, whose message is the reason a
dead-letter record carries.

Schema evolution: ``schema_version`` is the *major* version. Within a major version producers
may add optional fields; a consumer ignores the fields it does not know (a newer producer's),
and a field it knows but an older producer leaves out takes its default. An event of a major
version this consumer does not read goes to the dead letters with that reason. A change that
old consumers could misread (a field renamed, retyped or made required) is a new major version.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

SCHEMA_VERSION = 1  # the major version this code writes and reads

MAX_EVENT_BYTES = 64 * 1024
MAX_ID_CHARS = 128
MAX_TITLE_CHARS = 1_000
MAX_BRAND_CHARS = 200
MAX_CATEGORY_CHARS = 500
MAX_DESCRIPTION_CHARS = 20_000
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_KEY_CHARS = 64
MAX_ATTRIBUTE_VALUE_CHARS = 1_000

# Ids are opaque strings: printable, no whitespace or control characters, so they are safe in
# Redis key names, URLs and logs.
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[^\s\x00-\x1f\x7f]+$"),
]

Action = Literal["view", "click", "like", "add_to_cart", "purchase", "rate"]


class EventError(ValueError):
    """An event that cannot be accepted; ``str(err)`` is the reason."""


def _check_timestamp(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError("timestamp must be a finite, non-negative number of Unix seconds")
    return value


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)

    schema_version: int = SCHEMA_VERSION
    timestamp: float = Field(default_factory=time.time, description="Unix seconds")

    @field_validator("timestamp")
    @classmethod
    def _finite_timestamp(cls, value: float) -> float:
        return _check_timestamp(value)

    @field_validator("schema_version")
    @classmethod
    def _known_major_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unknown major schema version {value} (this consumer reads {SCHEMA_VERSION})")
        return value

    def to_bytes(self) -> bytes:
        """The wire form: compact UTF-8 JSON."""
        return self.model_dump_json(exclude_none=True).encode("utf-8")


class ItemEvent(_Event):
    """A new or changed item in the catalogue. Key on the wire: ``item_id``."""

    item_id: Identifier
    title: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE_CHARS)]
    brand: Annotated[str, StringConstraints(max_length=MAX_BRAND_CHARS)] | None = None
    category: Annotated[str, StringConstraints(max_length=MAX_CATEGORY_CHARS)] | None = None
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS)] | None = None
    price: float | None = Field(default=None, ge=0)
    attributes: dict[str, str] = Field(default_factory=dict)
    available: bool = Field(default=True, description="False: kept, but never recommended until True again")

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("title must not be blank")
        return value

    @field_validator("price")
    @classmethod
    def _finite_price(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("price must be finite")
        return value

    @field_validator("attributes")
    @classmethod
    def _bounded_attributes(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} attributes, got {len(value)}")
        for key, text in value.items():
            if not 1 <= len(key) <= MAX_ATTRIBUTE_KEY_CHARS:
                raise ValueError(f"attribute names must be 1..{MAX_ATTRIBUTE_KEY_CHARS} characters")
            if len(text) > MAX_ATTRIBUTE_VALUE_CHARS:
                raise ValueError(
                    f"attribute {key!r} is longer than {MAX_ATTRIBUTE_VALUE_CHARS} characters"
                )
        return value

    @property
    def key(self) -> bytes:
        return self.item_id.encode("utf-8")


class InteractionEvent(_Event):
    """One user action on one item. Key on the wire: ``user_id``."""

    event_id: Identifier
    user_id: Identifier
    item_id: Identifier
    action: Action = "click"

    @property
    def key(self) -> bytes:
        return self.user_id.encode("utf-8")


def _decode(model: type[_Event], raw: bytes | None) -> _Event:
    if raw is None:
        raise EventError("empty message (null value)")
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError(f"event is {len(raw)} bytes, more than the limit of {MAX_EVENT_BYTES}")
    try:  # the fast path: pydantic's own JSON parser accepts nothing json.loads refuses
        return model.model_validate_json(raw)
    except ValidationError:
        pass  # the path below decides (it also reads a few inputs that parser refuses) and says why
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EventError(f"not UTF-8 JSON: {err}") from None
    if not isinstance(payload, dict):
        raise EventError(f"expected a JSON object, got {type(payload).__name__}")
    try:
        return model.model_validate(payload)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<event>'}: {e['msg']}" for e in err.errors()
        )
        raise EventError(f"invalid {model.__name__}: {problems}") from None


@dataclass(frozen=True)
class ItemRemoved:
    """A tombstone on the ``items`` topic (the item's key, a null value): the item is deleted."""

    item_id: str


def decode_item_record(key: bytes | None, raw: bytes | None) -> ItemEvent | ItemRemoved:
    """An ``items`` record: a null value is a tombstone for the item named by ``key``; anything
    else is an item event. Raises :class:`EventError`."""
    if raw is not None:
        return decode_item_event(raw)
    try:
        item_id = (key or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise EventError("tombstone key is not UTF-8") from None
    try:
        _ItemKey(item_id=item_id)
    except ValidationError:
        raise EventError(f"a tombstone (null value) needs an item id as its key, got {key!r}") from None
    return ItemRemoved(item_id)


class _ItemKey(BaseModel):
    item_id: Identifier


def decode_item_event(raw: bytes | None) -> ItemEvent:
    """Parse and validate an item event from its wire bytes; raises :class:`EventError`."""
    event = _decode(ItemEvent, raw)
    assert isinstance(event, ItemEvent)
    return event


def decode_interaction_event(raw: bytes | None) -> InteractionEvent:
    """Parse and validate an interaction event from its wire bytes; raises :class:`EventError`."""
    event = _decode(InteractionEvent, raw)
    assert isinstance(event, InteractionEvent)
    return event
