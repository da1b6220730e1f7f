"""Asterisk REST Interface: our asyncio client (``client.py``, built from ``rest.py``, the resource
operations, ``events.py`` and ``routing.py``) and typed models (``models.py``)."""

from agent.adapters.ari.client import AriClient
from agent.adapters.ari.events import backoff_delay
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
from agent.adapters.ari.routing import CallEvents, EventStream

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
