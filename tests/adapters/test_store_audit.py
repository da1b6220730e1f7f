"""The audit log: chain verifies; a modified row and a deleted row are found; the database refuses
UPDATE/DELETE/TRUNCATE; concurrent appenders do not fork the chain."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from agent.adapters.store import audit
from agent.adapters.store.audit import AuditEntry, StoredRow, chain_hash, verify_rows
from tests.fakes import fake_store_pg

pytestmark = pytest.mark.db
pg = fake_store_pg.pg
pg_dsn = fake_store_pg.pg_dsn
pool = fake_store_pg.pool

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def _append_n(pool: asyncpg.Pool, n: int) -> None:
    for i in range(n):
        async with pool.acquire() as conn, conn.transaction():
            await audit.append(
                conn,
                AuditEntry(
                    "agent", "write", "turns", f"row-{i}", T0 + timedelta(seconds=i), {"i": i}
                ),
            )


async def _verify(pool: asyncpg.Pool) -> audit.VerifyResult:
    async with pool.acquire() as conn:
        return await audit.verify(conn)


async def test_empty_and_intact_chains_verify(pool: asyncpg.Pool) -> None:
    assert (await _verify(pool)).ok
    await _append_n(pool, 5)
    result = await _verify(pool)
    assert result.ok and result.rows == 5 and result.first_bad_seq is None
    async with pool.acquire() as conn:
        last = await conn.fetchval("SELECT hash FROM audit_log WHERE seq = 5")
    assert result.last_hash == last


async def test_database_rejects_update_delete_truncate(pool: asyncpg.Pool) -> None:
    await _append_n(pool, 2)
    async with pool.acquire() as conn:
        for sql in (
            "UPDATE audit_log SET actor = 'x' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 1",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
    assert (await _verify(pool)).ok


async def _as_superuser_bypassing_triggers(pool: asyncpg.Pool, sql: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        # What a superuser could do: triggers do not fire in replica mode.
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql)


async def test_modified_row_is_reported(pool: asyncpg.Pool) -> None:
    await _append_n(pool, 5)
    await _as_superuser_bypassing_triggers(
        pool, "UPDATE audit_log SET subject_id = 'row-x' WHERE seq = 3"
    )
    result = await _verify(pool)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert result.reason == "row 3 was modified (hash mismatch)"


async def test_modified_row_with_recomputed_hash_breaks_the_next_link(pool: asyncpg.Pool) -> None:
    await _append_n(pool, 5)
    async with pool.acquire() as conn:
        prev = await conn.fetchval("SELECT hash FROM audit_log WHERE seq = 1")
    forged = AuditEntry("agent", "write", "turns", "row-x", T0 + timedelta(seconds=1), {"i": 1})
    await _as_superuser_bypassing_triggers(
        pool,
        f"UPDATE audit_log SET subject_id = 'row-x', hash = '{chain_hash(prev, 2, forged)}'"
        " WHERE seq = 2",
    )
    result = await _verify(pool)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.reason == "row 3 does not link to row 2"


async def test_deleted_row_is_reported(pool: asyncpg.Pool) -> None:
    await _append_n(pool, 5)
    await _as_superuser_bypassing_triggers(pool, "DELETE FROM audit_log WHERE seq = 2")
    result = await _verify(pool)
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert result.reason == "row 2 is missing (next is 3)"


async def test_deleted_and_renumbered_rows_are_reported(pool: asyncpg.Pool) -> None:
    await _append_n(pool, 4)
    await _as_superuser_bypassing_triggers(
        pool,
        "DELETE FROM audit_log WHERE seq = 2; UPDATE audit_log SET seq = seq - 1 WHERE seq > 2",
    )
    result = await _verify(pool)
    assert (result.ok, result.first_bad_seq) == (False, 2)


async def test_concurrent_appenders_keep_one_chain(pool: asyncpg.Pool) -> None:
    await asyncio.gather(*(_append_n(pool, 5) for _ in range(4)))
    result = await _verify(pool)
    assert result.ok and result.rows == 20


def test_verify_rows_is_pure_and_needs_timezone_aware_times() -> None:
    e = AuditEntry("cli", "read", "patients", "p1", T0)
    h1 = chain_hash(audit.GENESIS, 1, e)
    assert verify_rows([StoredRow(1, e, audit.GENESIS, h1)]).ok
    assert not verify_rows([StoredRow(1, e, audit.GENESIS, "0" * 64)]).ok
    with pytest.raises(ValueError, match="timezone-aware"):
        chain_hash(audit.GENESIS, 1, AuditEntry("cli", "read", "p", "1", datetime(2026, 1, 1)))


async def test_append_outside_a_transaction_is_refused(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the data's transaction"):
            await audit.append(conn, AuditEntry("cli", "read", "patients", "p1", T0))
