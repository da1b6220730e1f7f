"""Where a call's outcome goes: the record store, and observers (simulate, metrics).

``Records`` is what the call session writes through (the PostgreSQL store implements it, with an
encrypted spool when the database is down); ``MemoryRecords`` keeps everything in memory for the
stand-in, the demo and tests. ``CallObserver`` sees what happens in a call as it happens, for
``medagent simulate``'s report and for metrics; it never changes the call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class Records(Protocol):
    async def call_started(
        self, call_id: str, *, channel_id: str, caller_number: str, at: datetime
    ) -> None: ...

    async def turn(self, call_id: str, *, speaker: str, text: str, at: datetime) -> None: ...

    async def save(
        self, call_id: str, *, kind: str, data: dict[str, Any], urgent: bool, at: datetime
    ) -> None: ...

    async def call_ended(
        self, call_id: str, *, summary: dict[str, Any], outcome: str, at: datetime
    ) -> None: ...


@dataclass
class Record:
    call_id: str
    kind: str
    data: dict[str, Any]
    urgent: bool
    at: datetime


@dataclass
class MemoryRecords:
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    turns: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    async def call_started(
        self, call_id: str, *, channel_id: str, caller_number: str, at: datetime
    ) -> None:
        self.calls[call_id] = {
            "channel_id": channel_id,
            "caller_number": caller_number,
            "started": at,
        }

    async def turn(self, call_id: str, *, speaker: str, text: str, at: datetime) -> None:
        self.turns.append((call_id, speaker, text, at))

    async def save(
        self, call_id: str, *, kind: str, data: dict[str, Any], urgent: bool, at: datetime
    ) -> None:
        self.records.append(Record(call_id, kind, data, urgent, at))

    async def call_ended(
        self, call_id: str, *, summary: dict[str, Any], outcome: str, at: datetime
    ) -> None:
        self.calls.setdefault(call_id, {}).update(
            {"summary": summary, "outcome": outcome, "ended": at}
        )


class CallObserver:
    """Hooks called by the call session; the default does nothing. Must not raise or block."""

    def call_started(self, call_id: str, channel_id: str) -> None:
        pass

    def said(self, call_id: str, text: str) -> None:
        pass

    def listening(self, call_id: str) -> None:
        """The agent finished speaking and waits for the caller."""

    def heard(self, call_id: str, text: str) -> None:
        pass

    def transfer(self, call_id: str, target: str, status: str) -> None:
        pass

    def record(self, call_id: str, kind: str, data: dict[str, Any], urgent: bool) -> None:
        pass

    def ended(self, call_id: str, outcome: str) -> None:
        pass

    def turn_latency(self, call_id: str, seconds: float) -> None:
        """End of the caller's utterance → the agent's reply starts playing."""

    def stt_time(self, call_id: str, seconds: float) -> None:
        """How long the call waited, after the utterance ended, for its words (both listens;
        less when the speculative pass started at the caller's silence)."""

    def second_listen(self, call_id: str, seconds: float) -> None:
        """How long the second model took to hear a turn again (``stt.second_model``)."""

    def media_stats(self, call_id: str, stats: Any) -> None:
        """The call's RTP counters (``MediaStats``), once, when the call ends."""

    def fallback(self, reason: str) -> None:
        """A call was handed to the dialplan fallback before any call session existed (capacity)."""


class FanOut(CallObserver):
    """Several observers as one (metrics + simulate's report). A failing observer is skipped."""

    def __init__(self, *observers: CallObserver) -> None:
        self.observers = [o for o in observers if o is not None]

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_") or name == "observers":
            return object.__getattribute__(self, name)
        observers = object.__getattribute__(self, "observers")

        def call_all(*args: Any) -> None:
            for observer in observers:
                try:
                    getattr(observer, name)(*args)
                except Exception:  # an observer must never break a call
                    continue

        return call_all
