"""Event contracts: good events round-trip, bad input is rejected with a reason and nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnrec.shared.schemas import (
    MAX_ATTRIBUTES,
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    MAX_TITLE_CHARS,
    EventError,
    InteractionEvent,
    ItemEvent,
    ItemRemoved,
    decode_interaction_event,
    decode_item_event,
    decode_item_record,
)

ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=MAX_ID_CHARS
)
titles = st.text(min_size=1, max_size=200).filter(lambda s: s.strip())


@given(item_id=ids, title=titles, price=st.none() | st.floats(min_value=0, max_value=1e6),
       attributes=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=50), max_size=5))
def test_item_events_round_trip(item_id, title, price, attributes):
    event = ItemEvent(item_id=item_id, title=title, price=price, attributes=attributes, timestamp=1.0)
    assert decode_item_event(event.to_bytes()) == event


@given(event_id=ids, user_id=ids, item_id=ids,
       action=st.sampled_from(["view", "click", "like", "add_to_cart", "purchase", "rate"]))
def test_interaction_events_round_trip(event_id, user_id, item_id, action):
    event = InteractionEvent(event_id=event_id, user_id=user_id, item_id=item_id, action=action, timestamp=2.0)
    assert decode_interaction_event(event.to_bytes()) == event


@settings(max_examples=300)
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_event_error(raw):
    for decode in (decode_item_event, decode_interaction_event):
        try:
            decode(raw)
        except EventError as err:
            assert str(err)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(payload=st.dictionaries(
    st.sampled_from(["item_id", "title", "brand", "price", "attributes", "timestamp", "schema_version",
                     "event_id", "user_id", "action", "extra"]),
    json_values, max_size=8))
def test_arbitrary_json_objects_raise_only_event_error(payload):
    raw = json.dumps(payload, allow_nan=True).encode()
    for decode in (decode_item_event, decode_interaction_event):
        try:
            event = decode(raw)
        except EventError as err:
            assert str(err).startswith("invalid ")
        else:  # whatever got through satisfies the contract
            assert event.schema_version == 1


def item(**overrides):
    fields = {"item_id": "i1", "title": "Caliper", "timestamp": 1.0} | overrides
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "null value"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (item(item_id=""), "item_id"),
        (item(item_id="has space"), "item_id"),
        (item(item_id="x" * (MAX_ID_CHARS + 1)), "item_id"),
        (item(title="   "), "title must not be blank"),
        (item(title="t" * (MAX_TITLE_CHARS + 1)), "title"),
        (item(price=-1), "price"),
        (item(timestamp=-5), "timestamp"),
        (item(schema_version=2), "unknown major schema version 2"),
        (item(schema_version="one"), "schema_version"),
        (item(attributes={f"k{n}": "v" for n in range(MAX_ATTRIBUTES + 1)}), "at most 50 attributes"),
        (b"{" + b" " * MAX_EVENT_BYTES + b"}", "more than the limit"),
    ],
)
def test_bad_item_events_say_what_is_wrong(raw, reason):
    with pytest.raises(EventError, match=reason):
        decode_item_event(raw)


def test_bad_interaction_action_is_rejected():
    raw = json.dumps({"event_id": "e", "user_id": "u", "item_id": "i", "action": "teleport"}).encode()
    with pytest.raises(EventError, match="action"):
        decode_interaction_event(raw)


def test_keys_follow_the_topic_layout():
    assert ItemEvent(item_id="i9", title="t").key == b"i9"
    assert InteractionEvent(event_id="e", user_id="u7", item_id="i").key == b"u7"


class NextItemEvent(ItemEvent):
    """What a newer producer of the same major version might write: one more optional field."""

    colour: str | None = None


def test_an_older_consumer_reads_a_newer_producers_events():
    newer = NextItemEvent(item_id="i1", title="Caliper", colour="red", timestamp=1.0).to_bytes()
    assert b'"colour":"red"' in newer
    event = decode_item_event(newer)  # the unknown field is ignored, not dead-lettered
    assert (event.item_id, event.title) == ("i1", "Caliper") and not hasattr(event, "colour")
    interaction = json.dumps({"event_id": "e", "user_id": "u", "item_id": "i", "session": "s9"}).encode()
    assert decode_interaction_event(interaction).user_id == "u"


def test_a_newer_consumer_reads_an_older_producers_events():
    older = ItemEvent(item_id="i1", title="Caliper", timestamp=1.0).to_bytes()
    event = NextItemEvent.model_validate_json(older)  # the field it does not get takes its default
    assert event.colour is None and event.title == "Caliper"


def test_a_tombstone_removes_the_item_named_by_its_key():
    assert decode_item_record(b"sku-1", None) == ItemRemoved("sku-1")
    event = ItemEvent(item_id="sku-1", title="a lens")
    assert decode_item_record(b"sku-1", event.to_bytes()) == event
    off = decode_item_record(b"sku-1", ItemEvent(item_id="sku-1", title="a lens", available=False).to_bytes())
    assert isinstance(off, ItemEvent) and off.available is False
    for key in (None, b"", b"two words", b"\xff\xfe"):
        with pytest.raises(EventError, match="tombstone"):
            decode_item_record(key, None)
