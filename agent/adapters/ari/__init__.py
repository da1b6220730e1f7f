"""Asterisk REST Interface: our asyncio client (``client.py``) and typed models (``models.py``)."""

from agent.adapters.ari.client import AriClient, CallEvents, EventStream, backoff_delay
from agent.adapters.ari.models import (
    Bridge,
    Channel,
    Connected,
    Disconnected,
    Event,
    Playback,
    UnknownEvent,
    parse_event,
)

__all__ = [
    "AriClient",
    "Bridge",
    "CallEvents",
    "Channel",
    "Connected",
    "Disconnected",
    "Event",
    "EventStream",
    "Playback",
    "UnknownEvent",
    "backoff_delay",
    "parse_event",
]
