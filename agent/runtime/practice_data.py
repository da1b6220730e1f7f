"""What the dialog's data commands reach: the patient directory and the schedule.

The dialog core cannot touch a database; it returns ``LookupPatient``, ``FindSlots``, ``BookSlot``…
and the call session hands each to ``CallServices.execute``, which answers with the matching result
event. The backends are the record store's own interfaces: ``PatientDirectory`` below (which
``agent.adapters.store.patients.PgPatientDirectory`` satisfies) and
``agent.adapters.store.scheduling.Scheduler`` (``PgScheduler``; FHIR or calendar adapters later).
The in-memory versions at the bottom hold the same clearly synthetic patients as the store's demo
seed, and generated slots; the stand-in, the tests and the demo use them when no store is given.

Every directory read names an ``actor`` (the agent and call id) for the store's audit log. A backend
that fails, or does not answer within ``timeout_s`` (a stuck database: a lock nobody releases),
turns into a result with ``failed=True``: the dialog then tells the caller it cannot reach the
records and takes a message, so the caller is never left in silence and the request is never lost
to an outage. Only the caller's own appointments can be moved or cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from agent.adapters.store.scheduling import DEMO_PATIENTS as STORE_DEMO_PATIENTS
from agent.adapters.store.scheduling import (
    Appointment as StoreAppointment,
)
from agent.adapters.store.scheduling import (
    PartOfDay,
    ScheduleBlock,
    Scheduler,
    SlotTaken,
    rank_slots,
    slots_from_schedule,
)
from agent.adapters.store.scheduling import Slot as StoreSlot
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
from agent.core.names import normalise_name
from agent.core.office import WEEKDAYS, parse_span
from agent.log import get_logger

log = get_logger(__name__)

SEARCH_DAYS = 28
"""How far ahead "the earliest opening" looks."""
MIN_NOTICE = timedelta(hours=1)
"""No slot is offered that starts sooner than this: the patient could not get there."""
MAX_OTHER_NAMES = 3
"""Other hypotheses of the caller's name tried against the directory (n-best from Whisper)."""
CANDIDATES = 300
"""Slots asked of the scheduler (ranked by the caller's wishes) before our own filter and spread."""


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


DATA_COMMAND_TIMEOUT_S = 3.0
"""The default bound on one data command (``database.command_timeout_s`` in the service)."""


class CallServices:
    """Runs the dialog's data commands against a directory and a scheduler, each bounded by
    ``timeout_s`` as a whole (a lookup may search the directory several times)."""

    def __init__(
        self,
        directory: PatientDirectory,
        scheduler: Scheduler,
        practice: PracticeConfig,
        *,
        timeout_s: float = DATA_COMMAND_TIMEOUT_S,
    ) -> None:
        self.directory = directory
        self.scheduler = scheduler
        self.tz = ZoneInfo(practice.timezone)
        self.provider_names = {p.id: p.name for p in practice.providers}
        self.timeout_s = timeout_s

    async def execute(self, cmd: DataCommand, *, now: datetime, actor: str) -> DataResult:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._execute(cmd, now, actor)
        except TimeoutError:
            # The caller is waiting on the line: a stuck backend is an unreachable one. (A write
            # that did commit before the bound is not undone; the message the dialog then takes
            # tells the staff what the caller wanted either way.)
            log.error("data command timed out", command=type(cmd).__name__, bound_s=self.timeout_s)
            return _failed(cmd, now)
        except SlotTaken:
            # Another call booked the slot first: the dialog offers another one.
            if isinstance(cmd, BookSlot):
                return Booked(now, False)
            return Rescheduled(now, False)
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
                    _store_slot(cmd.slot), cmd.patient_id, cmd.appointment_type, now=now
                )
                return Booked(now, True, self._appointment(booked))
            case ListAppointments():
                found = await self.scheduler.appointments_for(cmd.patient_id, now)
                return AppointmentsListed(now, tuple(map(self._appointment, found)))
            case CancelAppointment():
                if not await self._owns(cmd.patient_id, cmd.appointment_id, now):
                    return AppointmentCancelled(now, False)
                await self.scheduler.cancel(cmd.appointment_id, now=now)
                return AppointmentCancelled(now, True)
            case RescheduleAppointment():
                if not await self._owns(cmd.patient_id, cmd.appointment_id, now):
                    return Rescheduled(now, False, failed=True)
                moved = await self.scheduler.reschedule(
                    cmd.appointment_id, _store_slot(cmd.slot), now=now
                )
                return Rescheduled(now, True, self._appointment(moved))

    async def _owns(self, patient_id: str, appointment_id: str, now: datetime) -> bool:
        """The store moves any appointment it is asked to; the caller may only touch their own."""
        own = await self.scheduler.appointments_for(patient_id, now)
        return any(a.id == appointment_id for a in own)

    async def _lookup(self, cmd: LookupPatient, now: datetime, actor: str) -> PatientLookedUp:
        try:
            dob = date.fromisoformat(cmd.dob)
        except ValueError:
            return PatientLookedUp(now, False)
        matches = list(await self.directory.find(cmd.name, dob, actor=actor, now=now))
        for other in cmd.other_names[:MAX_OTHER_NAMES]:
            if matches:
                break
            # What the recogniser also heard ("Robert Chin" / "Robert Chen"): still an exact match
            # of name and birth date, so no weaker than the first try; each search is audited.
            matches = list(await self.directory.find(other, dob, actor=actor, now=now))
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
            tuple(dict.fromkeys(g for g in map(generic_name, best.medications) if g)),
            best.phone,
        )

    async def _find(self, cmd: FindSlots, now: datetime) -> tuple[Slot, ...]:
        prefs = cmd.preferences
        earliest = now + MIN_NOTICE
        found = await self.scheduler.open_slots(
            cmd.provider_id or None,
            cmd.appointment_type,
            _preferred(prefs, earliest.astimezone(self.tz).date()),
            earliest,
            CANDIDATES,
        )
        fitting = [s for s in found if _fits(s.starts_at.astimezone(self.tz), str(s.id), prefs)]
        chosen = _spread(fitting, prefs, self.tz, cmd.limit)
        return tuple(self._slot(s) for s in chosen)

    def _slot(self, s: StoreSlot) -> Slot:
        minutes = int((s.ends_at - s.starts_at).total_seconds() // 60)
        return Slot(
            str(s.id),
            s.provider_id,
            self.provider_names.get(s.provider_id, "our provider"),
            s.starts_at.astimezone(self.tz),
            minutes,
        )

    def _appointment(self, a: StoreAppointment) -> Appointment:
        return Appointment(a.id, self._slot(a.slot), a.type)


def generic_name(medication: str) -> str:
    """``"lisinopril 10 mg"`` → ``"lisinopril"``: the directory keeps strength with the name; the
    dialog matches on the drug."""
    m = re.match(r"\s*([a-z][a-z /-]*?)\s*(?:\d|$)", medication.lower())
    return m.group(1).strip() if m else ""


def _store_slot(slot: Slot) -> StoreSlot:
    # The store books by slot id; the rest travels for its messages.
    return StoreSlot(
        int(slot.id),
        slot.provider_id,
        slot.starts_at,
        slot.starts_at + timedelta(minutes=slot.minutes),
    )


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


def _part(prefs: SlotPreferences) -> PartOfDay | None:
    """The store ranks by part of day; the exact window is applied by ``_fits`` afterwards."""
    if not prefs.not_before and not prefs.not_after:
        return None
    start = prefs.not_before or "00:00"
    return "morning" if start < "12:00" else "afternoon" if start < "17:00" else "evening"


def _preferred(prefs: SlotPreferences, first: date) -> list[tuple[date, PartOfDay | None]]:
    part = _part(prefs)
    if prefs.dates:
        days = [date.fromisoformat(d) for d in prefs.dates]
    elif prefs.weekdays:
        horizon = (first + timedelta(days=i) for i in range(SEARCH_DAYS))
        days = [d for d in horizon if d.weekday() in prefs.weekdays]
    elif part is not None:
        days = [first + timedelta(days=i) for i in range(SEARCH_DAYS)]
    else:
        return []
    return [(d, part) for d in days]


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
    slots: list[StoreSlot], prefs: SlotPreferences, tz: ZoneInfo, limit: int
) -> list[StoreSlot]:
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
    by_time = sorted(slots, key=lambda s: s.starts_at)
    picked: list[StoreSlot] = []
    for s in by_time:
        if all(abs((s.starts_at - p.starts_at).total_seconds()) >= 3600 for p in picked):
            picked.append(s)
        if len(picked) == limit:
            return picked
    rest = [s for s in by_time if s not in picked]
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


DEMO_PATIENTS = tuple(
    FakePatient(f"demo-{i + 1}", name, dob, phone, list(meds))
    for i, (name, dob, phone, meds) in enumerate(STORE_DEMO_PATIENTS)
)
"""The record store's demo people (``seed_demo``), so a demo call works against either backend."""


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
    """The store's ``Scheduler`` over slots generated from the practice's office hours for each
    provider, a deterministic share already taken so the calendar looks lived in. No method awaits
    inside, so two calls on one event loop can never book the same slot."""

    def __init__(
        self,
        practice: PracticeConfig,
        today: date,
        *,
        days: int = SEARCH_DAYS + 7,
        slot_minutes: int = 20,
        taken_every: int = 3,
    ) -> None:
        self.tz = ZoneInfo(practice.timezone)
        self.types = {p.id: set(p.appointment_types) for p in practice.providers}
        blocks = []
        for p in practice.providers:
            for weekday, day_name in enumerate(WEEKDAYS):
                span = practice.office_hours.get(day_name)
                if span:
                    opens, closes = parse_span(span)
                    blocks.append(ScheduleBlock(p.id, weekday, opens, closes, slot_minutes))
        ids = itertools.count(1)
        self.slots: dict[int, StoreSlot] = {}
        for provider, starts, ends in slots_from_schedule(blocks, today, days, self.tz):
            if starts.date().isoformat() not in practice.holidays:
                sid = next(ids)
                self.slots[sid] = StoreSlot(sid, provider, starts, ends)
        self.booked: dict[str, StoreAppointment] = {}
        per_provider: dict[str, int] = {}
        for slot in list(self.slots.values()):
            n = per_provider[slot.provider_id] = per_provider.get(slot.provider_id, 0) + 1
            if taken_every and n % taken_every == 2:
                self._book(slot, "demo-someone-else", "follow-up")

    def _book(self, slot: StoreSlot, patient_id: str, type: str) -> StoreAppointment:
        live = self.slots.get(slot.id)
        if live is None or any(a.slot.id == slot.id for a in self.booked.values()):
            raise SlotTaken(f"slot {slot.id} was just booked by another call")
        if type not in self.types.get(live.provider_id, {type}):
            raise ValueError(f"provider {live.provider_id} does not offer {type!r} appointments")
        appt = StoreAppointment(f"appt-{uuid.uuid4().hex[:8]}", live, patient_id, type, "booked")
        self.booked[appt.id] = appt
        return appt

    async def open_slots(
        self,
        provider_id: str | None,
        appointment_type: str,
        preferred: Sequence[tuple[date, PartOfDay | None]],
        now: datetime,
        limit: int = 3,
    ) -> list[StoreSlot]:
        taken = {a.slot.id for a in self.booked.values()}
        free = (
            s
            for s in self.slots.values()
            if s.starts_at > now
            and s.id not in taken
            and (provider_id is None or s.provider_id == provider_id)
            and appointment_type in self.types.get(s.provider_id, {appointment_type})
        )
        return rank_slots(free, preferred, self.tz, limit)

    async def book(
        self, slot: StoreSlot, patient_id: str, type: str, *, now: datetime
    ) -> StoreAppointment:
        return self._book(slot, patient_id, type)

    async def appointments_for(self, patient_id: str, now: datetime) -> list[StoreAppointment]:
        return sorted(
            (
                a
                for a in self.booked.values()
                if a.patient_id == patient_id and a.slot.starts_at > now
            ),
            key=lambda a: a.slot.starts_at,
        )

    async def cancel(self, appointment_id: str, *, now: datetime) -> None:
        if self.booked.pop(appointment_id, None) is None:
            raise KeyError(f"no booked appointment {appointment_id}")

    async def reschedule(
        self, appointment_id: str, new_slot: StoreSlot, *, now: datetime
    ) -> StoreAppointment:
        old = self.booked[appointment_id]
        new = self._book(new_slot, old.patient_id, old.type)  # raises SlotTaken: old one stays
        del self.booked[appointment_id]
        return new


def demo_services(practice: PracticeConfig, now: datetime) -> CallServices:
    """Fake directory and schedule; the first demo patient has an appointment in a few days to move
    or cancel."""
    scheduler = InMemoryScheduler(practice, now.astimezone(ZoneInfo(practice.timezone)).date())
    soon = now + timedelta(days=3)
    for s in sorted(scheduler.slots.values(), key=lambda s: s.starts_at):
        if s.starts_at > soon and all(a.slot.id != s.id for a in scheduler.booked.values()):
            scheduler._book(s, DEMO_PATIENTS[0].id, "follow-up")
            break
    return CallServices(InMemoryDirectory(), scheduler, practice)
