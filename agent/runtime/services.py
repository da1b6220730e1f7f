"""What the dialog's data commands reach: the patient directory and the schedule.

The dialog core cannot touch a database; it returns ``LookupPatient``, ``FindSlots``, ``BookSlot``…
and the call session hands each to ``CallServices.execute``, which answers with the matching result
event. The two small protocols below are what a backend must offer; the PostgreSQL store
(``agent.adapters.store.patients.PatientDirectory`` and its scheduler) uses the same method names,
so either can be passed in. The in-memory versions at the bottom hold clearly fake patients and
generated slots; the stand-in, the tests and the demo use them.

Every read and write names an ``actor`` (the agent and call id) for the store's audit log. A backend
that fails turns into a result with ``failed=True``: the dialog then takes a message, so the caller's
request is never lost to an outage.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from agent.config import PracticeConfig
from agent.core.dialog.commands import (
    Appointment,
    AppointmentCancelled,
    AppointmentsListed,
    Booked,
    BookSlot,
    CancelAppointment,
    DataCommand,
    DataResult,
    FindSlots,
    ListAppointments,
    LookupPatient,
    PatientLookedUp,
    RescheduleAppointment,
    Rescheduled,
    Slot,
    SlotPreferences,
    SlotsFound,
)
from agent.core.office import WEEKDAYS, parse_span
from agent.log import get_logger

log = get_logger(__name__)

SEARCH_DAYS = 28
"""How far ahead "the earliest opening" looks."""
MIN_NOTICE = timedelta(hours=1)
"""No slot is offered that starts sooner than this: the patient could not get there."""


class PatientRecord(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def dob(self) -> date: ...
    @property
    def phone(self) -> str: ...
    @property
    def medications(self) -> list[str]: ...


class PatientDirectory(Protocol):
    async def find(
        self, name: str, dob: date, *, actor: str, now: datetime
    ) -> Sequence[PatientRecord]:
        """Patients whose normalised name and date of birth match exactly."""
        ...


@dataclass(frozen=True)
class OpenSlot:
    id: str
    provider_id: str
    starts_at: datetime
    """Timezone-aware."""
    ends_at: datetime


@dataclass(frozen=True)
class BookedAppointment:
    id: str
    slot: OpenSlot
    patient_id: str
    appointment_type: str


class Scheduler(Protocol):
    async def open_slots(
        self, *, provider_id: str | None, start: datetime, end: datetime, now: datetime
    ) -> Sequence[OpenSlot]:
        """Free slots starting in ``[start, end)``, soonest first."""
        ...

    async def book(
        self, *, slot_id: str, patient_id: str, appointment_type: str, actor: str, now: datetime
    ) -> BookedAppointment | None:
        """None when the slot is no longer free (another caller was first)."""
        ...

    async def appointments(
        self, patient_id: str, *, after: datetime, actor: str, now: datetime
    ) -> Sequence[BookedAppointment]:
        """The patient's live appointments starting after ``after``, soonest first."""
        ...

    async def cancel(
        self, appointment_id: str, *, patient_id: str, actor: str, now: datetime
    ) -> bool:
        """False unless the appointment exists, is the patient's own and is still booked."""
        ...

    async def reschedule(
        self, appointment_id: str, *, patient_id: str, slot_id: str, actor: str, now: datetime
    ) -> BookedAppointment | None:
        """Move atomically: the new slot is taken and the old one freed, or nothing changes."""
        ...


class CallServices:
    """Runs the dialog's data commands against a directory and a scheduler."""

    def __init__(
        self, directory: PatientDirectory, scheduler: Scheduler, practice: PracticeConfig
    ) -> None:
        self.directory = directory
        self.scheduler = scheduler
        self.tz = ZoneInfo(practice.timezone)
        self.provider_names = {p.id: p.name for p in practice.providers}

    async def execute(self, cmd: DataCommand, *, now: datetime, actor: str) -> DataResult:
        try:
            return await self._execute(cmd, now, actor)
        except Exception as exc:
            # Logged by command type only: the command carries names and birth dates.
            log.error("data command failed", command=type(cmd).__name__, error=type(exc).__name__)
            return _failed(cmd, now)

    async def _execute(self, cmd: DataCommand, now: datetime, actor: str) -> DataResult:
        match cmd:
            case LookupPatient():
                return await self._lookup(cmd, now, actor)
            case FindSlots():
                return SlotsFound(now, await self._find(cmd, now))
            case BookSlot():
                booked = await self.scheduler.book(
                    slot_id=cmd.slot.id,
                    patient_id=cmd.patient_id,
                    appointment_type=cmd.appointment_type,
                    actor=actor,
                    now=now,
                )
                return Booked(now, booked is not None, self._appointment(booked))
            case ListAppointments():
                found = await self.scheduler.appointments(
                    cmd.patient_id, after=now, actor=actor, now=now
                )
                listed = tuple(a for a in map(self._appointment, found) if a is not None)
                return AppointmentsListed(now, listed)
            case CancelAppointment():
                ok = await self.scheduler.cancel(
                    cmd.appointment_id, patient_id=cmd.patient_id, actor=actor, now=now
                )
                return AppointmentCancelled(now, ok)
            case RescheduleAppointment():
                moved = await self.scheduler.reschedule(
                    cmd.appointment_id,
                    patient_id=cmd.patient_id,
                    slot_id=cmd.slot.id,
                    actor=actor,
                    now=now,
                )
                return Rescheduled(now, moved is not None, self._appointment(moved))

    async def _lookup(self, cmd: LookupPatient, now: datetime, actor: str) -> PatientLookedUp:
        try:
            dob = date.fromisoformat(cmd.dob)
        except ValueError:
            return PatientLookedUp(now, False)
        matches = list(await self.directory.find(cmd.name, dob, actor=actor, now=now))
        if not matches:
            return PatientLookedUp(now, False)
        # Two patients with the same name and birth date: the calling number only breaks the tie
        # (it is a hint, never proof: name and date of birth already matched).
        caller = _digits(cmd.caller_number)[-10:]
        best = next((p for p in matches if caller and _digits(p.phone)[-10:] == caller), matches[0])
        return PatientLookedUp(
            now,
            True,
            best.id,
            tuple(m.lower() for m in best.medications),
            best.phone,
        )

    async def _find(self, cmd: FindSlots, now: datetime) -> tuple[Slot, ...]:
        prefs = cmd.preferences
        local_now = now.astimezone(self.tz) + MIN_NOTICE
        if prefs.dates:
            days = sorted(date.fromisoformat(d) for d in prefs.dates)
            start = max(datetime.combine(days[0], time(0), self.tz), local_now)
            end = datetime.combine(days[-1] + timedelta(days=1), time(0), self.tz)
        else:
            start, end = local_now, local_now + timedelta(days=SEARCH_DAYS)
        if end <= start:
            return ()
        found = await self.scheduler.open_slots(
            provider_id=cmd.provider_id or None, start=start, end=end, now=now
        )
        fitting = [s for s in found if _fits(s.starts_at.astimezone(self.tz), s.id, prefs)]
        chosen = _spread(fitting, prefs, self.tz, cmd.limit)
        return tuple(self._slot(s) for s in chosen)

    def _slot(self, s: OpenSlot) -> Slot:
        minutes = int((s.ends_at - s.starts_at).total_seconds() // 60)
        return Slot(
            s.id,
            s.provider_id,
            self.provider_names.get(s.provider_id, "our provider"),
            s.starts_at.astimezone(self.tz),
            minutes,
        )

    def _appointment(self, a: BookedAppointment | None) -> Appointment | None:
        return None if a is None else Appointment(a.id, self._slot(a.slot), a.appointment_type)


def _failed(cmd: DataCommand, now: datetime) -> DataResult:
    match cmd:
        case LookupPatient():
            return PatientLookedUp(now, False, failed=True)
        case FindSlots():
            return SlotsFound(now, failed=True)
        case BookSlot():
            return Booked(now, False, failed=True)
        case ListAppointments():
            return AppointmentsListed(now, failed=True)
        case CancelAppointment():
            return AppointmentCancelled(now, False, failed=True)
        case RescheduleAppointment():
            return Rescheduled(now, False, failed=True)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _fits(local: datetime, slot_id: str, prefs: SlotPreferences) -> bool:
    if slot_id in prefs.exclude:
        return False
    if prefs.dates and local.date().isoformat() not in prefs.dates:
        return False
    if prefs.weekdays and local.weekday() not in prefs.weekdays:
        return False
    hhmm = local.strftime("%H:%M")
    if prefs.not_before and hhmm < prefs.not_before:
        return False
    return not (prefs.not_after and hhmm >= prefs.not_after)


def _spread(
    slots: list[OpenSlot], prefs: SlotPreferences, tz: ZoneInfo, limit: int
) -> list[OpenSlot]:
    """Offer choices that differ: closest to the wished time first when there is one, otherwise
    soonest first but at least an hour apart on the same day (9:00, 9:20, 9:40 is one choice)."""
    if prefs.near:
        wished = _minutes(prefs.near)
        ordered = sorted(
            slots,
            key=lambda s: (
                s.starts_at.astimezone(tz).date(),
                abs(_minutes(s.starts_at.astimezone(tz).strftime("%H:%M")) - wished),
            ),
        )
        return ordered[:limit]
    picked: list[OpenSlot] = []
    for s in sorted(slots, key=lambda s: s.starts_at):
        if all(abs((s.starts_at - p.starts_at).total_seconds()) >= 3600 for p in picked):
            picked.append(s)
        if len(picked) == limit:
            return picked
    rest = [s for s in sorted(slots, key=lambda s: s.starts_at) if s not in picked]
    return sorted([*picked, *rest[: limit - len(picked)]], key=lambda s: s.starts_at)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


# ---------------------------------------------------------------------------------------------
# In-memory backends: synthetic data for the stand-in, the tests and `make demo`. NOT real patients.


@dataclass(frozen=True)
class FakePatient:
    id: str
    name: str
    dob: date
    phone: str = ""
    medications: list[str] = field(default_factory=list)


DEMO_PATIENTS = (
    FakePatient("demo-jane-doe", "Jane Doe", date(1962, 3, 4), "5551234567", ["lisinopril", "metformin"]),
    FakePatient("demo-john-smith", "John Smith", date(1955, 7, 19), "5550100111", ["atorvastatin", "oxycodone"]),
    FakePatient("demo-robert-brown", "Robert Brown", date(1978, 11, 30), "5550100222", ["sertraline", "albuterol"]),
)  # fmt: skip


def normalise_name(name: str) -> str:
    """Case, accents of punctuation and spacing do not matter: "o'brien" = "O Brien"."""
    return " ".join(re.findall(r"[a-z]+", name.casefold()))


class InMemoryDirectory:
    def __init__(self, patients: Sequence[FakePatient] = DEMO_PATIENTS) -> None:
        self.patients = list(patients)
        self.searches = 0

    async def find(
        self, name: str, dob: date, *, actor: str, now: datetime
    ) -> Sequence[PatientRecord]:
        self.searches += 1
        key = normalise_name(name)
        return [p for p in self.patients if normalise_name(p.name) == key and p.dob == dob]


class InMemoryScheduler:
    """Slots generated from the practice's office hours for each provider; a deterministic share
    already taken so the calendar looks lived in. Each method runs without awaiting inside, so two
    calls on one event loop can never book the same slot."""

    def __init__(
        self,
        practice: PracticeConfig,
        today: date,
        *,
        days: int = SEARCH_DAYS + 7,
        slot_minutes: int = 20,
        taken_every: int = 3,
    ) -> None:
        tz = ZoneInfo(practice.timezone)
        self.slots: dict[str, OpenSlot] = {}
        self.booked: dict[str, BookedAppointment] = {}
        counter = itertools.count(1)
        for offset in range(days):
            day = today + timedelta(days=offset)
            span = practice.office_hours.get(WEEKDAYS[day.weekday()])
            if not span or day.isoformat() in practice.holidays:
                continue
            opens, closes = parse_span(span)
            for p in practice.providers:
                at = datetime.combine(day, opens, tz)
                while at.time() < closes and at + timedelta(
                    minutes=slot_minutes
                ) <= datetime.combine(day, closes, tz):
                    sid = f"slot-{next(counter)}"
                    self.slots[sid] = OpenSlot(sid, p.id, at, at + timedelta(minutes=slot_minutes))
                    at += timedelta(minutes=slot_minutes)
        for i, sid in enumerate(list(self.slots)):
            if taken_every and i % taken_every == 1:
                self._book(sid, "demo-someone-else", "follow-up")

    def _book(
        self, slot_id: str, patient_id: str, appointment_type: str
    ) -> BookedAppointment | None:
        if slot_id not in self.slots or any(a.slot.id == slot_id for a in self.booked.values()):
            return None
        appt = BookedAppointment(
            f"appt-{uuid.uuid4().hex[:8]}", self.slots[slot_id], patient_id, appointment_type
        )
        self.booked[appt.id] = appt
        return appt

    async def open_slots(
        self, *, provider_id: str | None, start: datetime, end: datetime, now: datetime
    ) -> Sequence[OpenSlot]:
        taken = {a.slot.id for a in self.booked.values()}
        return sorted(
            (
                s
                for s in self.slots.values()
                if start <= s.starts_at < end
                and s.id not in taken
                and (provider_id is None or s.provider_id == provider_id)
            ),
            key=lambda s: s.starts_at,
        )

    async def book(
        self, *, slot_id: str, patient_id: str, appointment_type: str, actor: str, now: datetime
    ) -> BookedAppointment | None:
        return self._book(slot_id, patient_id, appointment_type)

    async def appointments(
        self, patient_id: str, *, after: datetime, actor: str, now: datetime
    ) -> Sequence[BookedAppointment]:
        return sorted(
            (
                a
                for a in self.booked.values()
                if a.patient_id == patient_id and a.slot.starts_at > after
            ),
            key=lambda a: a.slot.starts_at,
        )

    async def cancel(
        self, appointment_id: str, *, patient_id: str, actor: str, now: datetime
    ) -> bool:
        appt = self.booked.get(appointment_id)
        if appt is None or appt.patient_id != patient_id:
            return False
        del self.booked[appointment_id]
        return True

    async def reschedule(
        self, appointment_id: str, *, patient_id: str, slot_id: str, actor: str, now: datetime
    ) -> BookedAppointment | None:
        old = self.booked.get(appointment_id)
        if old is None or old.patient_id != patient_id:
            return None
        new = self._book(slot_id, patient_id, old.appointment_type)
        if new is None:
            return None
        del self.booked[appointment_id]
        return new


def demo_services(practice: PracticeConfig, now: datetime) -> CallServices:
    """Fake directory and schedule, with one upcoming appointment for Jane Doe to move or cancel."""
    tz = ZoneInfo(practice.timezone)
    scheduler = InMemoryScheduler(practice, now.astimezone(tz).date())
    soon = now + timedelta(days=3)
    for s in sorted(scheduler.slots.values(), key=lambda s: s.starts_at):
        if s.starts_at > soon and scheduler._book(s.id, "demo-jane-doe", "follow-up"):
            break
    return CallServices(InMemoryDirectory(), scheduler, practice)
