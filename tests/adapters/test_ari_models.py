"""ARI models: checked against Asterisk's own Swagger docs and parsed from recorded traces."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.adapters.ari.models import (
    EVENT_TYPES,
    RESOURCE_TYPES,
    CallerID,
    Channel,
    ChannelHangupRequest,
    Dial,
    Event,
    EventFormatError,
    PlaybackFinished,
    StasisStart,
    UnknownEvent,
    bridge_ids,
    channel_ids,
    parse_ari_time,
    parse_event,
    parse_model,
)

# Fields we declare that the docs model does not list under that model (inherited from the
# ``Message``/``Event`` base models in events.json).
BASE_FIELDS = {"application", "timestamp", "asterisk_id"}


@pytest.fixture
def api_models(asterisk_reference: Path) -> dict[str, dict[str, Any]]:
    models: dict[str, dict[str, Any]] = {}
    for path in sorted((asterisk_reference / "ari-api-docs").glob("*.json")):
        models.update(json.loads(path.read_text()).get("models", {}))
    return models


def doc_type(tp: Any) -> set[str]:
    """The Swagger type names a Python annotation of ours may stand for."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        return doc_type(args[0])
    if typing.get_origin(tp) is tuple:
        return {f"List[{t}]" for t in doc_type(args[0])}
    if typing.get_origin(tp) is dict:
        return {"object"}
    return {
        str: {"string"},
        int: {"int", "long"},
        bool: {"boolean"},
        datetime: {"Date"},
    }.get(tp, {getattr(tp, "__name__", "?")})


@pytest.mark.parametrize(
    "model",
    [*RESOURCE_TYPES, *EVENT_TYPES.values()],
    ids=lambda m: m.__name__,
)
def test_fields_exist_in_the_api_docs_with_the_same_name_type_and_requiredness(
    model: type[Any], api_models: dict[str, dict[str, Any]]
) -> None:
    documented = api_models[model.__name__]["properties"]
    base = {**api_models["Message"]["properties"], **api_models["Event"]["properties"]}
    hints = typing.get_type_hints(model)
    for f in dataclasses.fields(model):
        spec = documented.get(f.name) or (base.get(f.name) if f.name in BASE_FIELDS else None)
        assert spec is not None, f"{model.__name__}.{f.name} is not in the ARI docs"
        assert spec["type"] in doc_type(hints[f.name]), f"{model.__name__}.{f.name}"
        required_here = (
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        if required_here:
            assert spec.get("required"), f"{model.__name__}.{f.name} is optional in the docs"


def test_documented_deviation_dial_has_no_caller_in_real_traces(asterisk_reference: Path) -> None:
    # The docs allow Dial.caller; Asterisk 23 did not send it even when /dial was given a caller.
    dials = [
        e
        for path in (asterisk_reference / "traces").glob("ari_*.jsonl")
        for e in (json.loads(line).get("event") for line in path.read_text().splitlines())
        if e and e["type"] == "Dial"
    ]
    assert dials and all("caller" not in e for e in dials)
    assert all(parse_event(e).caller is None for e in dials)  # type: ignore[attr-defined]


def test_every_recorded_event_parses_to_its_model(asterisk_reference: Path) -> None:
    seen: set[str] = set()
    for path in sorted((asterisk_reference / "traces").glob("ari_*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["kind"] != "event":
                continue
            raw = record["event"]
            event = parse_event(raw)
            assert type(event).__name__ == raw["type"], path.name
            assert event.timestamp is not None and event.timestamp.tzinfo is not None
            assert event.application == "medical-agent"
            seen.add(raw["type"])
    assert {"StasisStart", "Dial", "ChannelDestroyed", "PlaybackFinished"} <= seen


def test_ari_timestamps() -> None:
    assert parse_ari_time("2026-11-26T23:53:47.960+0000") == datetime(
        2026, 11, 26, 23, 53, 47, 960000, tzinfo=UTC
    )
    assert parse_ari_time("2026-11-26T18:53:47.960-0500") == datetime(
        2026, 11, 26, 18, 53, 47, 960000, tzinfo=timezone(timedelta(hours=-5))
    )
    assert parse_ari_time("2026-11-26T23:53:47Z").tzinfo is not None
    with pytest.raises(ValueError, match="not an ARI timestamp: '26/11/2026'"):
        parse_ari_time("26/11/2026")
    with pytest.raises(ValueError, match="without a UTC offset"):
        parse_ari_time("2026-11-26T23:53:47.960")
    with pytest.raises(ValueError, match=r"^StasisStart.timestamp: not an ARI timestamp$"):
        parse_event({"type": "StasisStart", "timestamp": "yesterday", "channel": {"id": "1"}})


def test_parsing_is_tolerant_of_missing_optional_and_unknown_fields() -> None:
    hangup = parse_event(
        {"type": "ChannelHangupRequest", "channel": {"id": "c1", "new_in_asterisk_24": True}}
    )
    assert hangup == ChannelHangupRequest(channel=Channel(id="c1"))
    assert (hangup.cause, hangup.soft) == (None, None)
    busy = parse_event(
        {"type": "ChannelHangupRequest", "cause": 17, "tech_cause": 486, "channel": {"id": "c1"}}
    )
    assert isinstance(busy, ChannelHangupRequest) and (busy.cause, busy.tech_cause) == (17, 486)
    start = parse_event({"type": "StasisStart", "channel": {"id": "c1"}, "replace_channel": None})
    assert isinstance(start, StasisStart) and start.args == () and start.replace_channel is None


def test_malformed_events_raise_value_error_naming_the_field_not_the_value() -> None:
    cases = {
        "ARI event: missing 'type'": {"channel": {"id": "x"}},
        "ARI event: expected a JSON object, got a string": "StasisStart",
        "ChannelDestroyed: missing required field 'cause'": {
            "type": "ChannelDestroyed",
            "cause_txt": "Normal Clearing",
            "channel": {"id": "x"},
        },
        "StasisStart.channel.caller.number: expected a string, got an integer": {
            "type": "StasisStart",
            "channel": {"id": "x", "caller": {"number": 5551234567}},
        },
        "StasisStart.args[1]: expected a string, got a list": {
            "type": "StasisStart",
            "args": ["a", ["b"]],
            "channel": {"id": "x"},
        },
        "ChannelHangupRequest.soft: expected a boolean, got an integer": {
            "type": "ChannelHangupRequest",
            "soft": 1,
            "channel": {"id": "x"},
        },
    }
    for message, raw in cases.items():
        with pytest.raises(ValueError) as raised:
            parse_event(raw)
        assert str(raised.value) == message
        assert "5551234567" not in str(raised.value)


def deep(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(levels):
        value = {"a": value} if i % 2 else [value]
    return value


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "StasisStart", "channel": {"id": "x", "channelvars": {"v": deep(20_000)}}},
        {"type": "ChannelTalkingStarted", "channel": {"id": "x"}, "extra": deep(20_000)},
        {"type": "StasisStart", "channel": {"id": "x"}, "args": [deep(33)]},
    ],
    ids=["in-a-modelled-field", "in-an-unknown-event", "just-over-the-limit"],
)
def test_an_event_nested_too_deep_is_a_value_error_not_a_recursion_error(raw: Any) -> None:
    with pytest.raises(EventFormatError) as raised:
        parse_event(raw)
    assert str(raised.value) == "ARI event: nested deeper than 32 levels"
    assert raised.value.reason == "too_deep"


def test_depth_within_the_limit_parses() -> None:
    # The event is level 1, ``extra`` holds 30 more: 31 of the 32 allowed.
    event = parse_event(
        {"type": "ChannelTalkingStarted", "channel": {"id": "x"}, "extra": deep(30)}
    )
    assert isinstance(event, UnknownEvent)


def test_errors_say_which_kind_of_problem() -> None:
    reasons = {}
    for raw in ([1], {"channel": {}}, {"type": "StasisStart"}, {"type": "Dial", "peer": 5}):
        with pytest.raises(EventFormatError) as raised:
            parse_event(raw)
        reasons[json.dumps(raw)] = raised.value.reason
    assert list(reasons.values()) == ["not_object", "invalid", "invalid", "invalid"]


def test_an_unknown_types_name_stays_out_of_the_error() -> None:
    """The ``type`` of an event we do not model is the sender's text, not a name of ours."""
    with pytest.raises(ValueError) as raised:
        parse_event({"type": "Jane Patient 5551234567", "timestamp": 5})
    assert (
        str(raised.value) == "UnknownEvent.timestamp: expected a timestamp string, got an integer"
    )


def test_unknown_event_type_keeps_the_raw_object() -> None:
    raw = {
        "type": "ChannelHold",
        "timestamp": "2026-11-27T00:00:44.093+0000",
        "application": "medical-agent",
        "channel": {"id": "c1"},
        "musicclass": "default",
    }
    event = parse_event(raw)
    assert isinstance(event, UnknownEvent)
    assert (event.type, event.application, event.raw["musicclass"]) == (
        "ChannelHold",
        "medical-agent",
        "default",
    )
    assert channel_ids(event) == ("c1",)


def test_channel_and_bridge_routing_keys() -> None:
    dial = parse_event(
        {
            "type": "Dial",
            "dialstatus": "RINGING",
            "peer": {"id": "clin"},
            "caller": {"id": "caller"},
        }
    )
    assert isinstance(dial, Dial) and channel_ids(dial) == ("clin", "caller")
    channel_playback = parse_event(
        {"type": "PlaybackFinished", "playback": {"id": "p", "target_uri": "channel:c1"}}
    )
    assert isinstance(channel_playback, PlaybackFinished)
    assert (channel_ids(channel_playback), bridge_ids(channel_playback)) == (("c1",), ())
    bridge_playback = parse_event(
        {"type": "PlaybackStarted", "playback": {"id": "p", "target_uri": "bridge:b1"}}
    )
    assert (channel_ids(bridge_playback), bridge_ids(bridge_playback)) == ((), ("b1",))
    entered = parse_event({"type": "ChannelEnteredBridge", "bridge": {"id": "b1"}})
    assert (channel_ids(entered), bridge_ids(entered)) == ((), ("b1",))


def test_resources_parse_from_recorded_responses(asterisk_reference: Path) -> None:
    records = [
        json.loads(line)
        for line in (asterisk_reference / "traces" / "ari_call_lifecycle.jsonl")
        .read_text()
        .splitlines()
    ]
    (em,) = [r for r in records if r["kind"] == "rest" and r["path"] == "/channels/externalMedia"]
    channel = parse_model(Channel, em["response_body"])
    assert channel.name.startswith("UnicastRTP/")
    assert channel.channelvars["UNICASTRTP_LOCAL_PORT"] == "10050"
    assert channel.dialplan.priority == 1 and channel.creationtime is not None


def test_caller_identity_stays_out_of_reprs() -> None:
    channel = Channel(id="c1", caller=CallerID(name="Jane Patient", number="5551234567"))
    assert "Jane" not in repr(channel) and "5551234567" not in repr(channel)
    assert channel.caller.name == "Jane Patient"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from([*EVENT_TYPES, "Mystery"]),
    fields=st.dictionaries(
        st.sampled_from(
            ["channel", "peer", "bridge", "playback", "args", "cause", "digit", "timestamp", "x"]
        ),
        json_values,
        max_size=5,
    ),
)
def test_any_json_gives_an_event_or_a_value_error(kind: str, fields: dict[str, Any]) -> None:
    try:
        event = parse_event({**fields, "type": kind})
    except ValueError:
        return
    assert isinstance(event, Event)
