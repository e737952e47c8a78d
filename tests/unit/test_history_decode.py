"""The history updater's decoding fast path (``model_validate_json`` in :mod:`learnrec.shared.schemas`):
whatever it accepts, ``json.loads`` + ``model_validate`` (the checked path, which gives the
dead letters' reasons) accepts too, as an equal event. Mutated events, seeded."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError

from learnrec.shared.schemas import InteractionEvent, ItemEvent, decode_interaction_event

TOKENS = [b'"', b"\\", b",", b":", b"{", b"}", b"[", b"]", b"NaN", b"-Infinity", b"\x00", b"\xff", b"\xc3\xa9",
          b"\\u0000", b"\\ud83d\\ude00", b"\\ud800", b"1e999", b"-0", b"true", b"null", b" ", b"\t", b"1.5",
          b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"01", b"1.", b'"x":1', b'"timestamp":"7"', b'"schema_version":true',
          b'"action":"rate"', b'"event_id":"z"', b'"price":-1', b'"attributes":{"a":"b"}', b'"title":" "']


def _valid(rng: random.Random, model: type) -> bytes:
    if model is InteractionEvent:
        event = {"event_id": f"e{rng.randint(0, 99)}", "user_id": "u\u00e9", "item_id": "i/1",
                 "timestamp": rng.random() * 2e9, "action": rng.choice(["view", "click", "rate"])}
    else:
        event = {"item_id": "it1", "title": "A title", "brand": "b", "price": 3.5, "attributes": {"k": "v"}}
    return json.dumps(event, ensure_ascii=rng.random() < 0.5).encode()


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        at, op = rng.randint(0, len(data)), rng.random()
        if op < 0.5:
            data[at:at] = rng.choice(TOKENS)
        elif op < 0.75:
            del data[at:at + rng.randint(1, 4)]
        elif at < len(data):
            data[at] = rng.randint(0, 255)
    return bytes(data)


def _without_default_time(event, raw: bytes) -> dict:
    return event.model_dump(exclude=set() if b'"timestamp"' in raw else {"timestamp"})


@pytest.mark.parametrize("model", [InteractionEvent, ItemEvent])
def test_the_fast_path_accepts_nothing_the_checked_path_refuses(model):
    rng, accepted = random.Random(7), 0
    for _ in range(20_000):
        raw = _mutate(rng, _valid(rng, model))
        try:
            fast = model.model_validate_json(raw)
        except ValidationError:
            continue
        accepted += 1
        checked = model.model_validate(json.loads(raw.decode("utf-8")))
        assert _without_default_time(fast, raw) == _without_default_time(checked, raw), raw
    assert accepted > 500  # the mutations left enough events valid to mean something


def test_inputs_only_the_checked_path_reads_are_still_accepted():
    """A lone surrogate escape in an unknown field: pydantic's parser refuses it, json.loads not."""
    raw = b'{"event_id":"e","user_id":"u","item_id":"i","timestamp":5,"note":"\\ud800"}'
    with pytest.raises(ValidationError):
        InteractionEvent.model_validate_json(raw)
    assert decode_interaction_event(raw).event_id == "e"
