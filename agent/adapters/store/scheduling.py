"""Appointments: the ``Scheduler`` interface and the built-in scheduler on our own tables.

The dialog asks for open slots with the caller's preferences ("Tuesday morning") and books one.
``Scheduler`` is the seam for a FHIR or calendar back end later; ``PgScheduler`` serves it from
provider schedules turned into slots. Double booking is impossible by construction: a unique index
allows one live appointment per slot, so when two calls race for one slot the database lets exactly
one insert commit and the other gets ``SlotTaken`` (and offers another slot).

The slot arithmetic (weekly schedule → slots, part of day, ranking by preference) is pure and takes
the time zone and ``now`` as arguments.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from agent.adapters.store import audit
from agent.adapters.store.audit import AuditKey
from agent.adapters.store.crypto import Keyring
from agent.adapters.store.patients import PgPatientDirectory
from agent.config import PracticeConfig
from agent.errors import StoreError

PartOfDay = Literal["morning", "afternoon", "evening"]


class SlotTaken(StoreError):
    """Someone else booked the slot first (or it does not exist)."""

    code = "store_slot_taken"


@dataclass(frozen=True)
class Slot:
    id: int
    provider_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Appointment:
    id: str
    slot: Slot
    patient_id: str
    type: str
    status: str


@dataclass(frozen=True)
class ScheduleBlock:
    """A provider works ``start``–``end`` on ``weekday`` (0 = Monday) in slots of ``slot_minutes``."""

    provider_id: str
    weekday: int
    start: time
    end: time
    slot_minutes: int


class Scheduler(Protocol):
    async def open_slots(
        self,
        provider_id: str | None,
        appointment_type: str,
        preferred: Sequence[tuple[date, PartOfDay | None]],
        now: datetime,
        limit: int = 3,
    ) -> list[Slot]: ...

    async def book(
        self, slot: Slot, patient_id: str, type: str, *, now: datetime
    ) -> Appointment: ...

    async def appointments_for(self, patient_id: str, now: datetime) -> list[Appointment]: ...

    async def reschedule(
        self, appointment_id: str, new_slot: Slot, *, now: datetime
    ) -> Appointment: ...

    async def cancel(self, appointment_id: str, *, now: datetime) -> None: ...


# -- pure slot arithmetic ---------------------------------------------------------------------


def part_of_day(at: datetime, tz: ZoneInfo) -> PartOfDay:
    hour = at.astimezone(tz).hour
    if hour < 12:
        return "morning"
    return "afternoon" if hour < 17 else "evening"


def slots_from_schedule(
    blocks: Iterable[ScheduleBlock], start: date, days: int, tz: ZoneInfo
) -> list[tuple[str, datetime, datetime]]:
    """(provider, starts, ends) for each slot in ``days`` days from ``start``, local wall time
    converted with the zone's rules (so slots stay at 9:00 across a DST change)."""
    out: list[tuple[str, datetime, datetime]] = []
    blocks = list(blocks)
    for offset in range(days):
        day = start + timedelta(days=offset)
        for b in blocks:
            if b.weekday != day.weekday():
                continue
            t = datetime.combine(day, b.start, tz)
            end = datetime.combine(day, b.end, tz)
            step = timedelta(minutes=b.slot_minutes)
            while t + step <= end:
                out.append((b.provider_id, t, t + step))
                t += step
    out.sort(key=lambda s: (s[1], s[0]))
    return out


def rank_slots(
    slots: Iterable[Slot],
    preferred: Sequence[tuple[date, PartOfDay | None]],
    tz: ZoneInfo,
    limit: int,
) -> list[Slot]:
    """Slots matching the caller's first preference first, then the next…, then the earliest
    others; within each group, earliest first."""

    def rank(s: Slot) -> tuple[int, datetime]:
        local = s.starts_at.astimezone(tz)
        for i, (day, part) in enumerate(preferred):
            if local.date() == day and (part is None or part_of_day(s.starts_at, tz) == part):
                return (i, s.starts_at)
        return (len(preferred), s.starts_at)

    return sorted(slots, key=rank)[:limit]


# -- the built-in scheduler ---------------------------------------------------------------------


def _slot(r: asyncpg.Record) -> Slot:
    return Slot(r["slot_id"], r["provider_id"], r["starts_at"], r["ends_at"])


_APPOINTMENT_SELECT = (
    "SELECT a.id, a.patient_id, a.type, a.status, s.id AS slot_id, s.provider_id, s.starts_at,"
    " s.ends_at FROM appointments a JOIN slots s ON s.id = a.slot_id"
)


def _appointment(r: asyncpg.Record) -> Appointment:
    return Appointment(str(r["id"]), _slot(r), str(r["patient_id"]), r["type"], r["status"])


class PgScheduler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        tz: ZoneInfo,
        audit_key: AuditKey,
        *,
        actor: str = "agent",
        horizon_days: int = 28,
    ) -> None:
        self.pool = pool
        self.tz = tz
        self.audit_key = audit_key
        self.actor = actor
        self.horizon_days = horizon_days

    async def open_slots(
        self,
        provider_id: str | None,
        appointment_type: str,
        preferred: Sequence[tuple[date, PartOfDay | None]],
        now: datetime,
        limit: int = 3,
    ) -> list[Slot]:
        rows = await self.pool.fetch(
            "SELECT s.id AS slot_id, s.provider_id, s.starts_at, s.ends_at FROM slots s"
            " JOIN providers p ON p.id = s.provider_id"
            " WHERE s.starts_at > $1 AND s.starts_at < $2 AND $3 = ANY (p.appointment_types)"
            " AND ($4::text IS NULL OR s.provider_id = $4)"
            " AND NOT EXISTS (SELECT 1 FROM appointments a"
            "                 WHERE a.slot_id = s.id AND a.status = 'booked')"
            " ORDER BY s.starts_at LIMIT 5000",
            now,
            now + timedelta(days=self.horizon_days),
            appointment_type,
            provider_id,
        )
        return rank_slots((_slot(r) for r in rows), preferred, self.tz, limit)

    async def _book(
        self, conn: asyncpg.Connection, slot: Slot, patient_id: str, type: str, now: datetime
    ) -> Appointment:
        offered = await conn.fetchval(
            "SELECT $2 = ANY (p.appointment_types) FROM slots s JOIN providers p"
            " ON p.id = s.provider_id WHERE s.id = $1",
            slot.id,
            type,
        )
        if offered is None:
            raise SlotTaken(f"no slot {slot.id}")
        if not offered:
            raise ValueError(f"provider {slot.provider_id} does not offer {type!r} appointments")
        appointment_id = str(uuid.uuid4())
        try:
            # A savepoint: losing the race must not abort the caller's transaction (reschedule).
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO appointments (id, slot_id, patient_id, type, created_at)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    uuid.UUID(appointment_id),
                    slot.id,
                    uuid.UUID(patient_id),
                    type,
                    now,
                )
        except asyncpg.UniqueViolationError:
            raise SlotTaken(f"slot {slot.id} was just booked by another call") from None
        await audit.append(
            conn,
            self.audit_key,
            audit.AuditEntry(
                self.actor, "write", "appointments", appointment_id, now, {"slot": slot.id}
            ),
        )
        return Appointment(appointment_id, slot, patient_id, type, "booked")

    async def book(self, slot: Slot, patient_id: str, type: str, *, now: datetime) -> Appointment:
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._book(conn, slot, patient_id, type, now)

    async def appointments_for(self, patient_id: str, now: datetime) -> list[Appointment]:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                _APPOINTMENT_SELECT + " WHERE a.patient_id = $1 AND a.status = 'booked'"
                " AND s.starts_at > $2 ORDER BY s.starts_at",
                uuid.UUID(patient_id),
                now,
            )
            await audit.append(
                conn,
                self.audit_key,
                audit.AuditEntry(
                    self.actor, "read", "appointments", patient_id, now, {"rows": len(rows)}
                ),
            )
        return [_appointment(r) for r in rows]

    async def _cancel(self, conn: asyncpg.Connection, appointment_id: str, now: datetime) -> str:
        row = await conn.fetchrow(
            "UPDATE appointments SET status = 'cancelled' WHERE id = $1 AND status = 'booked'"
            " RETURNING patient_id, type",
            uuid.UUID(appointment_id),
        )
        if row is None:
            raise StoreError(f"no booked appointment {appointment_id}")
        await audit.append(
            conn,
            self.audit_key,
            audit.AuditEntry(self.actor, "cancel", "appointments", appointment_id, now),
        )
        return str(row["type"])

    async def cancel(self, appointment_id: str, *, now: datetime) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._cancel(conn, appointment_id, now)

    async def reschedule(
        self, appointment_id: str, new_slot: Slot, *, now: datetime
    ) -> Appointment:
        """Move to ``new_slot`` atomically: if it is taken, the old appointment stays booked."""
        async with self.pool.acquire() as conn, conn.transaction():
            patient_id = await conn.fetchval(
                "SELECT patient_id FROM appointments WHERE id = $1", uuid.UUID(appointment_id)
            )
            if patient_id is None:
                raise StoreError(f"no appointment {appointment_id}")
            type_ = await self._cancel(conn, appointment_id, now)
            return await self._book(conn, new_slot, str(patient_id), type_, now)


# -- slots and demo data ---------------------------------------------------------------------------


async def generate_slots(pool: asyncpg.Pool, start: date, days: int, tz: ZoneInfo) -> int:
    """Turn the provider schedules into slots for ``days`` days from ``start`` (idempotent)."""
    async with pool.acquire() as conn, conn.transaction():
        blocks = [
            ScheduleBlock(
                r["provider_id"], r["weekday"], r["start_time"], r["end_time"], r["slot_minutes"]
            )
            for r in await conn.fetch("SELECT * FROM provider_schedules")
        ]
        slots = slots_from_schedule(blocks, start, days, tz)
        before = await conn.fetchval("SELECT count(*) FROM slots")
        await conn.executemany(
            "INSERT INTO slots (provider_id, starts_at, ends_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (provider_id, starts_at) DO NOTHING",
            slots,
        )
        after = await conn.fetchval("SELECT count(*) FROM slots")
    return int(after - before)


# Invented people: no real patient is ever in the demo data. Ordinary names, so the demo call's
# speech recognition hears them; phone numbers in the 555-01xx range reserved for fiction.
DEMO_PATIENTS: tuple[tuple[str, date, str, tuple[str, ...]], ...] = (
    ("Mary Jones", date(1962, 3, 4), "5550100001", ("lisinopril 10 mg",)),
    ("Robert Chen", date(1948, 11, 12), "5550100002", ("metformin 500 mg",)),
    (
        "Linda Garcia",
        date(1975, 7, 21),
        "5550100003",
        ("atorvastatin 20 mg", "amlodipine 5 mg"),
    ),
    ("James Walker", date(1990, 1, 30), "5550100004", ()),
)

_DEMO_HOURS = ((time(9, 0), time(12, 0)), (time(13, 0), time(17, 0)))


async def seed_demo(
    pool: asyncpg.Pool,
    practice: PracticeConfig,
    keys: Keyring,
    audit_key: AuditKey,
    *,
    today: date,
    now: datetime,
    days: int = 21,
) -> None:
    """Providers from the practice config, weekday schedules, slots for ``days`` days and the
    synthetic patients. Safe to run again: nothing is duplicated."""
    tz = ZoneInfo(practice.timezone)
    async with pool.acquire() as conn, conn.transaction():
        for p in practice.providers:
            await conn.execute(
                "INSERT INTO providers (id, name, appointment_types) VALUES ($1, $2, $3)"
                " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
                " appointment_types = EXCLUDED.appointment_types",
                p.id,
                p.name,
                list(p.appointment_types),
            )
            for weekday in range(5):
                for start, end in _DEMO_HOURS:
                    await conn.execute(
                        "INSERT INTO provider_schedules VALUES ($1, $2, $3, $4, 30)"
                        " ON CONFLICT DO NOTHING",
                        p.id,
                        weekday,
                        start,
                        end,
                    )
    await generate_slots(pool, today, days, tz)
    directory = PgPatientDirectory(pool, keys, audit_key)
    for name, dob, phone, meds in DEMO_PATIENTS:
        if not await directory.find(name, dob, actor="seed", now=now):
            await directory.add(
                name=name, dob=dob, phone=phone, medications=list(meds), actor="seed", now=now
            )
