"""Slots from schedules, preference ranking, booking races (exactly one wins), reschedule and
cancel; the patient directory's blind-index lookup; the demo seed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from agent.adapters.store import audit
from agent.adapters.store.audit import AuditKey
from agent.adapters.store.crypto import Keyring
from agent.adapters.store.patients import PgPatientDirectory
from agent.adapters.store.scheduling import (
    DEMO_PATIENTS,
    PgScheduler,
    ScheduleBlock,
    Scheduler,
    Slot,
    SlotTaken,
    part_of_day,
    rank_slots,
    seed_demo,
    slots_from_schedule,
)
from agent.config import PracticeConfig
from agent.errors import StoreError
from tests.fakes import fake_store_pg

pg = fake_store_pg.pg
pg_dsn = fake_store_pg.pg_dsn
pool = fake_store_pg.pool
AUDIT = AuditKey(b"\x05" * 32)
"""The audit chain's key in these tests (its own tests are in test_store_audit.py)."""
keyring = fake_store_pg.keyring

NY = ZoneInfo("America/New_York")
TODAY = date(2026, 11, 2)  # a Monday
NOW = datetime(2026, 11, 2, 7, 30, tzinfo=NY)


# -- pure ---------------------------------------------------------------------------------------


def test_slots_from_schedule_keep_local_wall_time_across_dst() -> None:
    block = ScheduleBlock("patel", 0, time(9, 0), time(10, 0), 30)
    # 2026-11-02 is the Monday after US DST ends (Nov 1); the Monday before is Oct 26.
    slots = slots_from_schedule([block], date(2026, 10, 26), 8, NY)
    assert [(s[1].astimezone(NY).date().isoformat(), s[1].astimezone(NY).hour) for s in slots] == [
        ("2026-10-26", 9),
        ("2026-10-26", 9),
        ("2026-11-02", 9),
        ("2026-11-02", 9),
    ]
    assert slots[0][1].utcoffset() != slots[2][1].utcoffset()
    assert all(end - start == timedelta(minutes=30) for _p, start, end in slots)


def test_a_slot_that_would_overrun_the_block_is_not_made() -> None:
    block = ScheduleBlock("patel", 0, time(9, 0), time(9, 50), 30)
    assert len(slots_from_schedule([block], TODAY, 1, NY)) == 1


def test_part_of_day_and_ranking_by_preference() -> None:
    def slot(i: int, day: int, hour: int) -> Slot:
        start = datetime(2026, 11, day, hour, tzinfo=NY)
        return Slot(i, "patel", start, start + timedelta(minutes=30))

    assert part_of_day(datetime(2026, 11, 3, 16, 59, tzinfo=NY), NY) == "afternoon"
    assert part_of_day(datetime(2026, 11, 3, 17, 0, tzinfo=NY), NY) == "evening"
    slots = [slot(1, 2, 9), slot(2, 3, 9), slot(3, 3, 14), slot(4, 4, 10), slot(5, 5, 15)]
    ranked = rank_slots(slots, [(date(2026, 11, 3), "afternoon"), (date(2026, 11, 5), None)], NY, 3)
    assert [s.id for s in ranked] == [3, 5, 1]
    assert [s.id for s in rank_slots(slots, [], NY, 2)] == [1, 2]


# -- database -----------------------------------------------------------------------------------


async def _seeded(pool: asyncpg.Pool, keyring: Keyring) -> tuple[PgScheduler, str, str]:
    await seed_demo(pool, PracticeConfig(), keyring, AUDIT, today=TODAY, now=NOW, days=7)
    directory = PgPatientDirectory(pool, keyring, AUDIT)
    a = (await directory.find(DEMO_PATIENTS[0][0], DEMO_PATIENTS[0][1], actor="t", now=NOW))[0]
    b = (await directory.find(DEMO_PATIENTS[1][0], DEMO_PATIENTS[1][1], actor="t", now=NOW))[0]
    return PgScheduler(pool, NY, AUDIT), a.id, b.id


@pytest.mark.db
async def test_seed_is_idempotent(pool: asyncpg.Pool, keyring: Keyring) -> None:
    await seed_demo(pool, PracticeConfig(), keyring, AUDIT, today=TODAY, now=NOW, days=7)
    counts = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM providers) p, (SELECT count(*) FROM slots) s,"
        " (SELECT count(*) FROM patients) pt"
    )
    await seed_demo(pool, PracticeConfig(), keyring, AUDIT, today=TODAY, now=NOW, days=7)
    again = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM providers) p, (SELECT count(*) FROM slots) s,"
        " (SELECT count(*) FROM patients) pt"
    )
    # 3 providers x 5 weekdays x 14 half-hour slots; 4 synthetic patients.
    assert tuple(counts) == tuple(again) == (3, 3 * 5 * 14, len(DEMO_PATIENTS))


@pytest.mark.db
async def test_open_slots_follow_preferences_provider_and_type(
    pool: asyncpg.Pool, keyring: Keyring
) -> None:
    sched, _a, _b = await _seeded(pool, keyring)
    tuesday = date(2026, 11, 3)
    slots = await sched.open_slots("nguyen", "follow-up", [(tuesday, "afternoon")], NOW)
    assert len(slots) == 3
    for s in slots:
        local = s.starts_at.astimezone(NY)
        assert (s.provider_id, local.date(), local.hour >= 13) == ("nguyen", tuesday, True)
    any_provider = await sched.open_slots(None, "new patient", [], NOW, limit=5)
    assert [s.starts_at.astimezone(NY).time() for s in any_provider][:3] == [time(9, 0)] * 3
    assert await sched.open_slots(None, "surgery", [], NOW) == []
    # Slots in the past are never offered.
    later = datetime(2026, 11, 6, 16, 45, tzinfo=NY)
    assert all(s.starts_at > later for s in await sched.open_slots(None, "follow-up", [], later))


@pytest.mark.db
async def test_two_calls_booking_one_slot_exactly_one_wins(
    pool: asyncpg.Pool, keyring: Keyring
) -> None:
    sched, a, b = await _seeded(pool, keyring)
    slot = (await sched.open_slots("patel", "follow-up", [], NOW, limit=1))[0]
    results = await asyncio.gather(
        *(sched.book(slot, pid, "follow-up", now=NOW) for pid in (a, b, a, b)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 3
    assert all(isinstance(e, SlotTaken) for e in lost)
    # The slot is no longer offered.
    again = await sched.open_slots("patel", "follow-up", [], NOW, limit=50)
    assert slot.id not in {s.id for s in again}


@pytest.mark.db
async def test_interleaved_transactions_second_insert_fails_at_the_first_commit(
    pg_dsn: str, pool: asyncpg.Pool, keyring: Keyring
) -> None:
    """The race made explicit: B inserts while A's insert is uncommitted; B waits, A commits, B
    fails. (A check-then-insert without the index would have let both through.)"""
    sched, a, b = await _seeded(pool, keyring)
    slot = (await sched.open_slots("garcia", "follow-up", [], NOW, limit=1))[0]
    conn_a, conn_b = await asyncpg.connect(pg_dsn), await asyncpg.connect(pg_dsn)
    try:
        tx_a, tx_b = conn_a.transaction(), conn_b.transaction()
        await tx_a.start()
        await tx_b.start()
        sql = (
            "INSERT INTO appointments (id, slot_id, patient_id, type, created_at)"
            " VALUES (gen_random_uuid(), $1, $2, 'follow-up', now())"
        )
        # Both checked "is it free?" and saw yes.
        for conn in (conn_a, conn_b):
            assert not await conn.fetchval(
                "SELECT count(*) FROM appointments WHERE slot_id = $1 AND status = 'booked'",
                slot.id,
            )
        await conn_a.execute(sql, slot.id, uuid.UUID(a))
        b_insert = asyncio.create_task(conn_b.execute(sql, slot.id, uuid.UUID(b)))
        await asyncio.sleep(0.1)
        assert not b_insert.done()  # blocked on A's uncommitted row
        await tx_a.commit()
        with pytest.raises(asyncpg.UniqueViolationError):
            await b_insert
        await tx_b.rollback()
    finally:
        await conn_a.close()
        await conn_b.close()


@pytest.mark.db
async def test_reschedule_cancel_and_listing(pool: asyncpg.Pool, keyring: Keyring) -> None:
    scheduler, a, b = await _seeded(pool, keyring)
    sched: Scheduler = scheduler  # exercised through the interface the dialog will use
    first, second, third = await sched.open_slots("patel", "follow-up", [], NOW)
    appt = await sched.book(first, a, "follow-up", now=NOW)
    taken = await sched.book(third, b, "follow-up", now=NOW)
    assert [x.slot.id for x in await sched.appointments_for(a, NOW)] == [first.id]

    # Rescheduling onto a taken slot fails and leaves the old booking in place.
    with pytest.raises(SlotTaken):
        await sched.reschedule(appt.id, third, now=NOW)
    assert [x.id for x in await sched.appointments_for(a, NOW)] == [appt.id]

    moved = await sched.reschedule(appt.id, second, now=NOW)
    assert [x.slot.id for x in await sched.appointments_for(a, NOW)] == [second.id]
    # The freed slot is offered again.
    assert first.id in {s.id for s in await sched.open_slots("patel", "follow-up", [], NOW)}
    await sched.cancel(moved.id, now=NOW)
    assert await sched.appointments_for(a, NOW) == []
    with pytest.raises(StoreError, match="no booked appointment"):
        await sched.cancel(moved.id, now=NOW)
    with pytest.raises(ValueError, match="does not offer 'surgery'"):
        await sched.book(first, a, "surgery", now=NOW)
    assert taken.status == "booked"
    async with pool.acquire() as conn:
        assert (await audit.verify(conn, AUDIT)).ok


@pytest.mark.db
async def test_patient_lookup_by_name_and_dob(pool: asyncpg.Pool, keyring: Keyring) -> None:
    directory = PgPatientDirectory(pool, keyring, AUDIT)
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)
    pid = await directory.add(
        name="Ann O'Example",
        dob=date(1901, 5, 6),
        phone="5550100099",
        medications=["metformin 500 mg"],
        actor="t",
        now=now,
    )
    await directory.add(name="Ann O'Example", dob=date(1901, 5, 7), actor="t", now=now)
    found = await directory.find("ann oexample", date(1901, 5, 6), actor="agent", now=now)
    assert [(p.id, p.name, p.phone, p.medications) for p in found] == [
        (pid, "Ann O'Example", "5550100099", ["metformin 500 mg"])
    ]
    assert await directory.find("Ann Example", date(1901, 5, 6), actor="agent", now=now) == []
    assert (await directory.get(pid, actor="staff:a", now=now)).dob == date(1901, 5, 6)
    row = await pool.fetchrow("SELECT * FROM patients WHERE id = $1", uuid.UUID(pid))
    assert b"Example" not in bytes(row["name_enc"]) and b"5550100099" not in bytes(row["phone_enc"])
    searches = await pool.fetch(
        "SELECT actor, action, detail::text FROM audit_log WHERE action IN ('search', 'read')"
    )
    assert [(r[0], r[1]) for r in searches] == [
        ("agent", "search"),
        ("agent", "search"),
        ("staff:a", "read"),
    ]
