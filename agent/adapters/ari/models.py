"""Typed ARI resources and events, named and shaped as Asterisk names them.

The models are the subset of ``ari-api-docs/*.json`` the agent uses; each field is named exactly as in
the Swagger models (``tests/adapters/test_ari_models.py`` checks every field against the docs).
Parsing is tolerant in the ways a long-running controller needs:

- an unknown event ``type`` becomes :class:`UnknownEvent` (never an exception);
- unknown fields are ignored (Asterisk adds fields between versions);
- a field we declare optional may be missing and takes its default, even where the docs say it is
  required (``Dial`` carries no ``caller`` in real traces; ``ChannelHangupRequest`` sometimes has
  neither ``cause`` nor ``soft``).

Only a missing *required* field (a ``StasisStart`` without a ``channel``), a value of the wrong JSON
type, or nesting deeper than any ARI event has (``MAX_EVENT_DEPTH``) raises
:class:`EventFormatError` (a ``ValueError``), with the model and field path in the message and
never the value itself (values carry caller names and numbers; an unmodelled event's ``type`` is
the sender's text too, so it is called ``UnknownEvent`` in messages). The edge logs and drops such
a frame.

Pure: no I/O, no clock. Lists become tuples so the frozen models stay immutable in practice;
``channelvars`` stays a ``dict`` (read it, do not change it).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

MAX_EVENT_DEPTH = 32
"""Containers one event may nest (the event object is 1). Real events nest 4 (event → channel →
caller → name); a frame nested deeper is refused before anything walks it recursively."""


class EventFormatError(ValueError):
    """A decoded frame that is not a valid ARI event or resource. The message names the model and
    field path and never a value, so it may be logged; ``reason`` is one of ``not_object``,
    ``too_deep`` and ``invalid`` (for counters)."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


def parse_ari_time(value: str) -> datetime:
    """ARI's timestamp format, ``2026-11-26T23:53:47.960+0000`` (milliseconds, offset without colon)."""
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        pass
    try:
        # Tolerate the ISO variants (no fraction, ``+00:00``, ``Z``) rather than drop the event.
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ARI timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"ARI timestamp without a UTC offset: {value!r}")
    return parsed


# --------------------------------------------------------------------------------------------------
# Resources (channels.json, bridges.json, playbacks.json, endpoints.json, deviceStates.json,
# applications.json)


@dataclass(frozen=True, kw_only=True)
class CallerID:
    # Kept out of repr: a logged event or channel must not carry the caller's name or number.
    name: str = field(default="", repr=False)
    number: str = field(default="", repr=False)


@dataclass(frozen=True, kw_only=True)
class DialplanCEP:
    """Where the channel is in the dialplan (context, extension, priority) and the app it runs."""

    context: str = ""
    exten: str = ""
    priority: int = 0
    app_name: str = ""
    app_data: str = ""


@dataclass(frozen=True, kw_only=True)
class Channel:
    id: str
    name: str = ""
    state: str = ""
    """``Down``, ``Ring``, ``Ringing``, ``Up`` (and the other ast_state names)."""
    protocol_id: str = ""
    caller: CallerID = field(default_factory=CallerID)
    connected: CallerID = field(default_factory=CallerID)
    accountcode: str = ""
    dialplan: DialplanCEP = field(default_factory=DialplanCEP)
    creationtime: datetime | None = None
    language: str = ""
    channelvars: dict[str, str] = field(default_factory=dict)
    """Only on some responses: externalMedia returns ``UNICASTRTP_LOCAL_ADDRESS``/``_PORT`` here."""


@dataclass(frozen=True, kw_only=True)
class Bridge:
    id: str
    technology: str = ""
    """Changes as channels join: ``simple_bridge``, ``softmix``, ``native_rtp``."""
    bridge_type: str = ""
    bridge_class: str = ""
    creator: str = ""
    name: str = ""
    channels: tuple[str, ...] = ()
    creationtime: datetime | None = None
    video_mode: str = ""


@dataclass(frozen=True, kw_only=True)
class Playback:
    id: str
    media_uri: str = ""
    next_media_uri: str = ""
    target_uri: str = ""
    """``channel:<id>`` or ``bridge:<id>``."""
    language: str = ""
    state: str = ""
    """``queued``, ``playing``, ``done``, ``failed`` (a missing sound file) …"""


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    technology: str
    resource: str
    state: str = ""
    channel_ids: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DeviceState:
    name: str
    state: str
    """``NOT_INUSE``, ``INUSE``, ``BUSY``, ``UNAVAILABLE``, ``RINGING`` …"""


@dataclass(frozen=True, kw_only=True)
class Application:
    name: str
    channel_ids: tuple[str, ...] = ()
    bridge_ids: tuple[str, ...] = ()
    endpoint_ids: tuple[str, ...] = ()
    device_names: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
# Events (events.json). The class name is the ARI ``type``.


@dataclass(frozen=True, kw_only=True)
class Event:
    """Fields every ARI event carries (``Message`` + ``Event`` in events.json)."""

    application: str = ""
    timestamp: datetime | None = None
    asterisk_id: str = ""


@dataclass(frozen=True, kw_only=True)
class StasisStart(Event):
    args: tuple[str, ...] = ()
    channel: Channel
    replace_channel: Channel | None = None


@dataclass(frozen=True, kw_only=True)
class StasisEnd(Event):
    channel: Channel


@dataclass(frozen=True, kw_only=True)
class ChannelCreated(Event):
    channel: Channel


@dataclass(frozen=True, kw_only=True)
class ChannelStateChange(Event):
    channel: Channel


@dataclass(frozen=True, kw_only=True)
class ChannelConnectedLine(Event):
    channel: Channel


@dataclass(frozen=True, kw_only=True)
class ChannelDtmfReceived(Event):
    """One per digit, sent at the end of the RFC 4733 event."""

    digit: str
    duration_ms: int = 0
    channel: Channel


@dataclass(frozen=True, kw_only=True)
class ChannelHangupRequest(Event):
    cause: int | None = None
    tech_cause: int | None = None
    soft: bool | None = None
    channel: Channel


@dataclass(frozen=True, kw_only=True)
class ChannelDestroyed(Event):
    cause: int
    cause_txt: str
    tech_cause: int | None = None
    channel: Channel


@dataclass(frozen=True, kw_only=True)
class ChannelEnteredBridge(Event):
    bridge: Bridge
    channel: Channel | None = None


@dataclass(frozen=True, kw_only=True)
class ChannelLeftBridge(Event):
    bridge: Bridge
    channel: Channel


@dataclass(frozen=True, kw_only=True)
class BridgeCreated(Event):
    bridge: Bridge


@dataclass(frozen=True, kw_only=True)
class BridgeDestroyed(Event):
    bridge: Bridge


@dataclass(frozen=True, kw_only=True)
class PlaybackStarted(Event):
    playback: Playback


@dataclass(frozen=True, kw_only=True)
class PlaybackContinuing(Event):
    playback: Playback


@dataclass(frozen=True, kw_only=True)
class PlaybackFinished(Event):
    playback: Playback


@dataclass(frozen=True, kw_only=True)
class Dial(Event):
    """The dialed channel is ``peer`` (not ``channel``); ``dialstatus`` is ``""`` first, then
    ``RINGING``, ``ANSWER``, ``BUSY``, ``NOANSWER`` … Asterisk 23 sent no ``caller`` even when
    ``/dial`` was given one."""

    peer: Channel
    caller: Channel | None = None
    forwarded: Channel | None = None
    dialstatus: str
    dialstring: str = ""
    forward: str = ""


@dataclass(frozen=True, kw_only=True)
class ChannelVarset(Event):
    variable: str
    value: str = ""
    channel: Channel | None = None
    """Missing for a global variable."""


@dataclass(frozen=True, kw_only=True)
class ChannelDialplan(Event):
    channel: Channel
    dialplan_app: str = ""
    dialplan_app_data: str = ""


@dataclass(frozen=True, kw_only=True)
class DeviceStateChanged(Event):
    device_state: DeviceState


@dataclass(frozen=True, kw_only=True)
class ApplicationReplaced(Event):
    """Another websocket subscribed to our application; this one gets no more events."""


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """An event type this module does not model; ``raw`` is the decoded JSON object."""

    type: str
    raw: Mapping[str, Any] = field(default_factory=dict)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        StasisStart,
        StasisEnd,
        ChannelCreated,
        ChannelStateChange,
        ChannelConnectedLine,
        ChannelDtmfReceived,
        ChannelHangupRequest,
        ChannelDestroyed,
        ChannelEnteredBridge,
        ChannelLeftBridge,
        BridgeCreated,
        BridgeDestroyed,
        PlaybackStarted,
        PlaybackContinuing,
        PlaybackFinished,
        Dial,
        ChannelVarset,
        ChannelDialplan,
        DeviceStateChanged,
        ApplicationReplaced,
    )
}
"""ARI ``type`` → model, for every event we parse."""

RESOURCE_TYPES: tuple[type[Any], ...] = (
    CallerID,
    DialplanCEP,
    Channel,
    Bridge,
    Playback,
    Endpoint,
    DeviceState,
    Application,
)


# --------------------------------------------------------------------------------------------------
# Client signals: not ARI events, delivered in the same stream to ``AriClient.subscribe()``.


@dataclass(frozen=True)
class Connected:
    """The events websocket is open. ``reconnect``: it was open before and dropped, so events in the
    gap are lost; the supervisor should reconcile its calls with ``list_channels()``."""

    reconnect: bool


@dataclass(frozen=True)
class Disconnected:
    """The events websocket dropped; the client is reconnecting. ``reason`` is for logs."""

    reason: str


AriEvent = Event
"""Everything ``parse_event`` returns (an :class:`Event` subclass, maybe :class:`UnknownEvent`)."""
Signal = Connected | Disconnected


# --------------------------------------------------------------------------------------------------
# Parsing


def parse_event(raw: Any) -> Event:
    """A decoded websocket frame → its typed event. Raises :class:`EventFormatError` (a
    ``ValueError``; see the module doc)."""
    if not isinstance(raw, dict):
        raise EventFormatError(
            f"ARI event: expected a JSON object, got {_json_type(raw)}", "not_object"
        )
    _check_depth(raw)
    kind = raw.get("type")
    if not isinstance(kind, str) or not kind:
        raise EventFormatError("ARI event: missing 'type'")
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        base = _build(Event, raw, UnknownEvent.__name__)
        return UnknownEvent(
            type=kind,
            raw=raw,
            application=base.application,
            timestamp=base.timestamp,
            asterisk_id=base.asterisk_id,
        )
    return _build(cls, raw, kind)


def parse_model(cls: type[T], raw: Any) -> T:
    """A REST response body → ``cls`` (one of :data:`RESOURCE_TYPES`). Raises
    :class:`EventFormatError` (a ``ValueError``)."""
    _check_depth(raw)
    return _build(cls, raw, cls.__name__)


def _check_depth(raw: Any) -> None:
    """Refuse nesting deeper than ``MAX_EVENT_DEPTH`` without recursing (``str()`` of a deep value
    or our own conversion would otherwise raise ``RecursionError``)."""
    stack: list[tuple[Any, int]] = [(raw, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_EVENT_DEPTH:
            raise EventFormatError(
                f"ARI event: nested deeper than {MAX_EVENT_DEPTH} levels", "too_deep"
            )
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def channel_ids(event: Event) -> tuple[str, ...]:
    """The channels an event concerns, for routing to per-call queues (``Dial``: peer and caller;
    a playback on ``channel:<id>``: that channel)."""
    ids: list[str] = []
    for name in ("channel", "peer", "caller", "forwarded", "replace_channel"):
        value = getattr(event, name, None)
        if isinstance(event, UnknownEvent):
            # Unmodelled events (ChannelHold, ChannelTalkingStarted …) still reach their call.
            value = event.raw.get(name)
            value = value.get("id") if isinstance(value, dict) else None
        elif isinstance(value, Channel):
            value = value.id
        if isinstance(value, str) and value not in ids:
            ids.append(value)
    playback = getattr(event, "playback", None)
    if isinstance(playback, Playback) and playback.target_uri.startswith("channel:"):
        target = playback.target_uri.removeprefix("channel:")
        if target not in ids:
            ids.append(target)
    return tuple(ids)


def bridge_ids(event: Event) -> tuple[str, ...]:
    """The bridges an event concerns (bridge membership, bridge playbacks)."""
    bridge = getattr(event, "bridge", None)
    if isinstance(bridge, Bridge):
        return (bridge.id,)
    if isinstance(event, UnknownEvent):
        raw = event.raw.get("bridge")
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            return (raw["id"],)
    playback = getattr(event, "playback", None)
    if isinstance(playback, Playback) and playback.target_uri.startswith("bridge:"):
        return (playback.target_uri.removeprefix("bridge:"),)
    return ()


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _build(cls: type[T], raw: Any, where: str) -> T:
    if not isinstance(raw, dict):
        raise EventFormatError(f"{where}: expected a JSON object, got {_json_type(raw)}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # cls is always a dataclass here
        if f.name in ("raw", "type") and cls is UnknownEvent:
            continue
        if f.name not in raw or raw[f.name] is None:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise EventFormatError(f"{where}: missing required field {f.name!r}")
            continue
        kwargs[f.name] = _convert(hints[f.name], raw[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        # Only ``X | None`` occurs; None was handled by the caller.
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise EventFormatError(f"{where}: expected a list, got {_json_type(value)}")
        item = typing.get_args(tp)[0]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise EventFormatError(f"{where}: expected an object, got {_json_type(value)}")
        # Asterisk sends channel variables as strings; keep that invariant for callers.
        return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is datetime:
        if not isinstance(value, str):
            raise EventFormatError(f"{where}: expected a timestamp string, got {_json_type(value)}")
        try:
            return parse_ari_time(value)
        except ValueError:
            raise EventFormatError(f"{where}: not an ARI timestamp") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise EventFormatError(f"{where}: expected a boolean, got {_json_type(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventFormatError(f"{where}: expected an integer, got {_json_type(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise EventFormatError(f"{where}: expected a string, got {_json_type(value)}")
        return value
    raise TypeError(f"{where}: unsupported model type {tp!r}")  # pragma: no cover


def _json_type(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)
