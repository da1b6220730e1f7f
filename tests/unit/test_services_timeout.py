"""A directory or schedule that never answers (a stuck database) must not freeze the caller: each
data command is bounded, the caller hears that the records cannot be reached, and the call goes on
to take a message, so the request is kept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime

from structlog.testing import capture_logs

from agent.adapters.store.scheduling import Appointment as StoreAppointment
from agent.config import PracticeConfig
from agent.core.dialog.commands import (
    AppointmentsListed,
    Booked,
    BookSlot,
    CallStarted,
    Command,
    FindSlots,
    Heard,
    ListAppointments,
    LookupPatient,
    PatientLookedUp,
    SaveRecord,
    Say,
    Slot,
    SlotPreferences,
    SlotsFound,
)
from agent.core.dialog.machine import Dialog, DialogSettings, State
from agent.core.understanding import Entity, Understanding
from agent.runtime.practice_data import CallServices, InMemoryScheduler, PatientRecord

PRACTICE = PracticeConfig()
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
ACTOR = "agent:test"
BOUND_S = 0.2
WELL_WITHIN_S = 3.0
"""A bounded command ends near BOUND_S; on a loaded box (a whole make test) later, but far sooner
than the 5 s guard that an unbounded one runs into."""


class HangingDirectory:
    """A directory whose database never answers (a lock nobody releases)."""

    def __init__(self) -> None:
        self.never = asyncio.Event()
        self.searches = 0

    async def find(
        self, name: str, dob: date, *, actor: str, now: datetime
    ) -> Sequence[PatientRecord]:
        self.searches += 1
        await self.never.wait()
        return []


class HangingScheduler(InMemoryScheduler):
    def __init__(self) -> None:
        super().__init__(PRACTICE, NOW.date())
        self.never = asyncio.Event()

    async def open_slots(self, *args: object, **kwargs: object) -> list:  # type: ignore[override,type-arg]
        await self.never.wait()
        return []

    async def appointments_for(self, patient_id: str, now: datetime) -> list:  # type: ignore[override,type-arg]
        await self.never.wait()
        return []

    async def book(self, *args: object, **kwargs: object) -> StoreAppointment:  # type: ignore[override]
        await self.never.wait()
        raise AssertionError("unreachable")


def services() -> CallServices:
    return CallServices(HangingDirectory(), HangingScheduler(), PRACTICE, timeout_s=BOUND_S)


async def _timed(s: CallServices, cmd: object) -> tuple[object, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(5):  # the test's own guard: an unbounded call fails here
        result = await s.execute(cmd, now=NOW, actor=ACTOR)  # type: ignore[arg-type]
    return result, loop.time() - start


async def test_each_data_command_is_bounded_and_fails_instead_of_hanging() -> None:
    s = services()
    slot = Slot("1", "patel", "Doctor Patel", NOW)
    with capture_logs() as logs:
        for cmd, kind in (
            (LookupPatient("Mary Jones", "1962-03-04", "5550100001"), PatientLookedUp),
            (FindSlots("", "follow-up", SlotPreferences()), SlotsFound),
            (ListAppointments("demo-1"), AppointmentsListed),
        ):
            result, took = await _timed(s, cmd)
            assert isinstance(result, kind) and result.failed, (cmd, result)
            assert took < WELL_WITHIN_S, took
    timed_out = [e for e in logs if e["event"] == "data command timed out"]
    assert [e["command"] for e in timed_out] == ["LookupPatient", "FindSlots", "ListAppointments"]
    assert "Mary" not in repr(logs) and "1962" not in repr(logs)
    # A booking whose write never returns is a failed booking, not a silent caller.
    result, took = await _timed(s, BookSlot(slot, "demo-1", "follow-up"))
    assert isinstance(result, Booked) and result.failed and not result.ok
    assert took < WELL_WITHIN_S


def heard(text: str, **values: object) -> Heard:
    ents = [Entity(label, text, value) for label, value in values.items()]
    return Heard(NOW, Understanding(text, "en", "message", 0.7, "routine", [], ents))


def said(out: list[Command]) -> str:
    return " ".join(c.text for c in out if isinstance(c, Say))


async def test_the_caller_hears_the_records_are_unreachable_and_leaves_a_message() -> None:
    s = services()
    d = Dialog(DialogSettings(greeting="Hello."))
    d.handle(CallStarted(NOW, "5551234567"))
    d.handle(Heard(NOW, Understanding("i need a refill", "en", "refill", 0.9, "routine")))
    d.handle(heard("mary jones"))
    out = d.handle(heard("march 4 1962", dob="1962-03-04"))
    lookup = out[-1]
    assert isinstance(lookup, LookupPatient)
    result, took = await _timed(s, lookup)
    assert took < WELL_WITHIN_S
    out = d.handle(result)  # type: ignore[arg-type]
    assert "can't reach our records right now" in said(out)
    assert d.state is State.MESSAGE
    out = d.handle(heard("please refill my lisinopril, call me back"))
    saved = [c for c in out if isinstance(c, SaveRecord)]
    assert len(saved) == 1 and saved[0].data["system_unavailable"] is True
    assert saved[0].data["message"] == "please refill my lisinopril, call me back"
