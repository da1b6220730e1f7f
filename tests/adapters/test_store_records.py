"""PgRecords through the same calls the call session makes; encryption at rest; audit rows; the
spool when the database goes away mid-call, and its replay (once, in order) when it returns."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from agent.adapters.store import audit
from agent.adapters.store.audit import AuditKey
from agent.adapters.store.crypto import Keyring
from agent.adapters.store.embedded import EmbeddedPostgres
from agent.adapters.store.records import PgRecords, apply_record
from agent.adapters.store.spool import Spool, SpooledRecord
from agent.runtime.hooks import Records
from tests.fakes import fake_store_pg

pytestmark = pytest.mark.db
pg = fake_store_pg.pg
pg_dsn = fake_store_pg.pg_dsn
pool = fake_store_pg.pool
keyring = fake_store_pg.keyring
audit_key = fake_store_pg.audit_key

T0 = datetime(2026, 11, 2, 21, 15, tzinfo=UTC)
CALLER = "6175550142"
SAID = "I need a refill of my lisinopril, my date of birth is March 4th 1962"


async def _a_call(records: Records, call_id: str = "call-1") -> None:
    """What ``agent.runtime.call`` writes for a refill call, in its order."""
    await records.call_started(call_id, channel_id="1795737644.7", caller_number=CALLER, at=T0)
    await records.turn(call_id, speaker="agent", text="How can I help you today?", at=T0)
    await records.turn(call_id, speaker="caller", text=SAID, at=T0 + timedelta(seconds=4))
    await records.save(
        call_id,
        kind="refill",
        data={"medication": "lisinopril", "dob": "1962-03-04", "callback_number": CALLER},
        urgent=False,
        at=T0 + timedelta(seconds=9),
    )
    await records.save(
        call_id,
        kind="message",
        data={"text": "please call me back about my chest tightness"},
        urgent=True,
        at=T0 + timedelta(seconds=12),
    )
    summary: dict[str, Any] = {
        "reasons": ["refill", "message"],
        "urgency": "urgent",
        "actions": [{"intent": "refill", "medication": "lisinopril"}],
        "open_items": [],
        "final_state": "ended",
    }
    await records.save(
        call_id, kind="summary", data=summary, urgent=False, at=T0 + timedelta(seconds=14)
    )
    await records.call_ended(
        call_id, summary=summary, outcome="completed", at=T0 + timedelta(seconds=15)
    )


async def _check_call_stored(
    pool: asyncpg.Pool, records: PgRecords, call_id: str = "call-1"
) -> None:
    staff_now = T0 + timedelta(hours=12)
    transcript = await records.transcript(call_id, actor="staff:frontdesk", now=staff_now)
    assert [(t["speaker"], t["text"]) for t in transcript] == [
        ("agent", "How can I help you today?"),
        ("caller", SAID),
    ]
    open_requests = await records.open_requests(actor="staff:frontdesk", now=staff_now)
    assert [(r.kind, r.urgency, r.status) for r in open_requests] == [
        ("message", "urgent", "new"),
        ("refill", "routine", "new"),
    ]
    assert open_requests[1].data["medication"] == "lisinopril"
    summary = await records.export_summary(call_id, actor="staff:frontdesk", now=staff_now)
    assert summary["urgency"] == "urgent"
    assert summary["outcome"] == "completed"
    assert summary["reasons"] == ["refill", "message"]
    assert summary["ended_at"] == (T0 + timedelta(seconds=15)).isoformat()
    assert json.loads(json.dumps(summary)) == summary  # exportable as JSON as it stands
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT outcome FROM calls WHERE id = $1", call_id) == "completed"
        )


async def test_a_call_is_stored_encrypted_and_audited(
    pool: asyncpg.Pool, keyring: Keyring, audit_key: AuditKey, tmp_path: Path
) -> None:
    records = PgRecords(pool, keyring, Spool(tmp_path / "spool", keyring), audit_key=audit_key)
    await _a_call(records)
    await _check_call_stored(pool, records)
    async with pool.acquire() as conn:
        # Nothing the patient said, nor their number or medication, is in the database in clear.
        dump = b"".join(
            bytes(r[0]) if isinstance(r[0], bytes) else str(r[0]).encode()
            for r in await conn.fetch(
                "SELECT caller_number_enc FROM calls UNION ALL SELECT text_enc FROM turns"
                " UNION ALL SELECT data_enc FROM requests UNION ALL SELECT summary_enc FROM call_summaries"
                " UNION ALL SELECT detail::text::bytea FROM audit_log"
            )
        )
        for secret in (CALLER.encode(), b"lisinopril", b"1962", b"chest"):
            assert secret not in dump
        actions = [
            (r["actor"], r["action"], r["subject"])
            for r in await conn.fetch("SELECT actor, action, subject FROM audit_log ORDER BY seq")
        ]
        assert actions[:7] == [
            ("agent", "write", "calls"),
            ("agent", "write", "turns"),
            ("agent", "write", "turns"),
            ("agent", "write", "requests"),
            ("agent", "write", "requests"),
            ("agent", "write", "call_summaries"),
            ("agent", "write", "call_summaries"),
        ]
        assert actions[7:] == [
            ("staff:frontdesk", "read", "turns"),
            ("staff:frontdesk", "read", "requests"),
            ("staff:frontdesk", "read", "call_summaries"),
        ]
        assert (await audit.verify(conn, audit_key)).ok


async def test_staff_status_changes_are_checked_and_audited(
    pool: asyncpg.Pool, keyring: Keyring, audit_key: AuditKey, tmp_path: Path
) -> None:
    records = PgRecords(pool, keyring, Spool(tmp_path / "spool", keyring), audit_key=audit_key)
    await _a_call(records)
    now = T0 + timedelta(hours=12)
    first = (await records.open_requests(actor="staff:a", now=now))[0]
    await records.set_request_status(first.id, "in_progress", actor="staff:a", now=now)
    await records.set_request_status(first.id, "done", actor="staff:a", now=now)
    left = await records.open_requests(actor="staff:a", now=now)
    assert [r.kind for r in left] == ["refill"]
    with pytest.raises(ValueError, match="status must be one of new, in_progress, done"):
        await records.set_request_status(first.id, "closed", actor="staff:a", now=now)
    async with pool.acquire() as conn:
        n = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'update'")
    assert n == 2


async def test_a_record_replayed_twice_is_stored_once(
    pool: asyncpg.Pool, keyring: Keyring, audit_key: AuditKey
) -> None:
    started = SpooledRecord(
        "3f1c1c5e-6f59-4d61-9a64-2d4e5d0a0001",
        "call_started",
        "call-9",
        {"channel_id": "c", "caller_number": CALLER, "at": T0.isoformat()},
    )
    turn = SpooledRecord(
        "3f1c1c5e-6f59-4d61-9a64-2d4e5d0a0002",
        "turn",
        "call-9",
        {"speaker": "caller", "text": SAID, "at": T0.isoformat()},
    )
    async with pool.acquire() as conn:
        assert await apply_record(conn, keyring, audit_key, started, actor="agent")
        assert await apply_record(conn, keyring, audit_key, turn, actor="agent")
        assert not await apply_record(conn, keyring, audit_key, started, actor="agent")
        assert not await apply_record(conn, keyring, audit_key, turn, actor="agent")
        assert await conn.fetchval("SELECT count(*) FROM turns") == 1
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 2


# -- outage --------------------------------------------------------------------------------------


@pytest.fixture
async def own_cluster() -> AsyncIterator[EmbeddedPostgres]:
    """A cluster of its own: this test stops the server under a live pool."""
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="medagent-test-outage-")))
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.destroy)


async def test_database_down_mid_call_spools_then_replays_everything(
    own_cluster: EmbeddedPostgres, keyring: Keyring, audit_key: AuditKey, tmp_path: Path
) -> None:
    from agent.adapters.store.db import migrate

    conn = await asyncpg.connect(own_cluster.dsn())
    await migrate(conn)
    await conn.close()
    pool = await asyncpg.create_pool(own_cluster.dsn(), min_size=1, max_size=2)
    spool = Spool(tmp_path / "spool", keyring)
    records = PgRecords(
        pool, keyring, spool, retry_initial_s=0.05, retry_max_s=0.2, audit_key=audit_key
    )
    try:
        call_id = "call-outage"
        await records.call_started(call_id, channel_id="c1", caller_number=CALLER, at=T0)
        await records.turn(call_id, speaker="agent", text="How can I help you today?", at=T0)
        assert records.reachability.ok is True

        await asyncio.to_thread(own_cluster.stop)  # the database goes away mid-call
        with capture_logs() as logs:
            await records.turn(call_id, speaker="caller", text=SAID, at=T0 + timedelta(seconds=4))
            await records.save(
                call_id,
                kind="refill",
                data={"medication": "lisinopril", "dob": "1962-03-04", "callback_number": CALLER},
                urgent=False,
                at=T0 + timedelta(seconds=9),
            )
            await records.save(
                call_id,
                kind="message",
                data={"text": "please call me back about my chest tightness"},
                urgent=True,
                at=T0 + timedelta(seconds=12),
            )
            summary = {
                "reasons": ["refill", "message"],
                "urgency": "urgent",
                "actions": [],
                "open_items": [],
            }
            await records.save(
                call_id, kind="summary", data=summary, urgent=False, at=T0 + timedelta(seconds=14)
            )
            await records.call_ended(
                call_id, summary=summary, outcome="completed", at=T0 + timedelta(seconds=15)
            )
            await asyncio.sleep(0.3)  # the replayer retries against the dead server meanwhile
        assert len(spool) == 5
        assert records.reachability.ok is False  # what /health reports as database_ok
        assert "database unreachable; spooling records" in [e["event"] for e in logs]
        assert SAID not in repr(logs) and CALLER not in repr(logs)
        # The spool files are sealed too.
        for f in (tmp_path / "spool").glob("*.rec"):
            content = f.read_bytes()
            assert b"lisinopril" not in content and CALLER.encode() not in content
            assert f.stat().st_mode & 0o777 == 0o600

        await asyncio.to_thread(own_cluster.start)  # the database comes back
        await asyncio.wait_for(records.wait_replayed(), 10)
        assert len(spool) == 0
        assert records.reachability.ok is True
        async with pool.acquire() as conn:
            # Replay again from a copy of what was spooled: still stored once.
            assert await conn.fetchval("SELECT count(*) FROM turns") == 2
            assert await conn.fetchval("SELECT count(*) FROM requests") == 2
            assert (await audit.verify(conn, audit_key)).ok
        await _check_call_stored_after_outage(records, call_id)
    finally:
        await records.aclose()
        await pool.close()


async def _check_call_stored_after_outage(records: PgRecords, call_id: str) -> None:
    now = T0 + timedelta(hours=1)
    transcript = await records.transcript(call_id, actor="staff:a", now=now)
    assert [t["text"] for t in transcript] == ["How can I help you today?", SAID]
    reqs = await records.open_requests(actor="staff:a", now=now)
    assert sorted(r.kind for r in reqs) == ["message", "refill"]
    summary = await records.export_summary(call_id, actor="staff:a", now=now)
    assert (summary["outcome"], summary["urgency"]) == ("completed", "urgent")


async def test_spool_left_over_from_a_previous_run_is_replayed_at_start(
    pool: asyncpg.Pool, keyring: Keyring, audit_key: AuditKey, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool", keyring)
    rec_ids = [f"3f1c1c5e-6f59-4d61-9a64-2d4e5d0a00{i:02d}" for i in range(1, 4)]
    spool.put(
        SpooledRecord(
            rec_ids[0],
            "call_started",
            "c",
            {"channel_id": "x", "caller_number": CALLER, "at": T0.isoformat()},
        )
    )
    spool.put(
        SpooledRecord(
            rec_ids[1], "turn", "c", {"speaker": "caller", "text": SAID, "at": T0.isoformat()}
        )
    )
    # A crash after the database stored this one but before the spool file was removed:
    spooled = SpooledRecord(
        rec_ids[2], "turn", "c", {"speaker": "agent", "text": "Thanks", "at": T0.isoformat()}
    )
    spool.put(spooled)
    records = PgRecords(pool, keyring, Spool(tmp_path / "spool", keyring), audit_key=audit_key)
    try:
        await asyncio.wait_for(records.wait_replayed(), 10)
    finally:
        await records.aclose()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM turns") == 2
        assert not await apply_record(conn, keyring, audit_key, spooled, actor="agent")


async def test_a_record_the_database_rejects_is_kept_aside_not_lost(
    pool: asyncpg.Pool, keyring: Keyring, audit_key: AuditKey, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool", keyring)
    records = PgRecords(pool, keyring, spool, audit_key=audit_key)
    # A turn for a call that was never started violates the foreign key: not an outage.
    with capture_logs() as logs:
        await records.turn("no-such-call", speaker="caller", text=SAID, at=T0)
    assert len(spool) == 0
    kept = list((tmp_path / "spool" / "failed").glob("*.rec"))
    assert len(kept) == 1
    assert "record could not be stored; kept in spool/failed" in [e["event"] for e in logs]
    assert SAID not in repr(logs)


async def test_a_request_held_up_by_a_lock_is_spooled_not_lost(
    pool: asyncpg.Pool, keyring: Keyring, audit_key: AuditKey, tmp_path: Path
) -> None:
    """A stuck database (not a down one): the caller's request is spooled within the write bound,
    then stored once the lock goes."""
    spool = Spool(tmp_path / "spool", keyring)
    records = PgRecords(
        pool, keyring, spool, audit_key=audit_key, write_timeout_s=0.5, retry_initial_s=0.05
    )
    await records.call_started("c1", channel_id="ch", caller_number=CALLER, at=T0)
    locker = await pool.acquire()
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE requests IN ACCESS EXCLUSIVE MODE")
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(
            records.save(
                "c1",
                kind="message",
                data={"message": "please call me back", "system_unavailable": True},
                urgent=False,
                at=T0,
            ),
            5,
        )
        assert loop.time() - start < 2.0
        assert len(spool) == 1 and records.reachability.ok is False
        await tx.rollback()
    finally:
        await pool.release(locker)
    try:
        await asyncio.wait_for(records.wait_replayed(), 10)
    finally:
        await records.aclose()
    reqs = await records.open_requests(actor="staff:a", now=T0)
    assert [(r.kind, r.data["system_unavailable"]) for r in reqs] == [("message", True)]


def test_a_tampered_spool_file_is_set_aside(keyring: Keyring, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", keyring)
    path = spool.put(
        SpooledRecord("3f1c1c5e-6f59-4d61-9a64-2d4e5d0a0001", "turn", "c", {"at": T0.isoformat()})
    )
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert spool.pending() == []
    assert (tmp_path / "spool" / "failed" / path.name).exists()
