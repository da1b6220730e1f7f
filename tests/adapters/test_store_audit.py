"""The audit log: the HMAC chain verifies; a modified, deleted or re-chained row and a cut tail are
found, each done with the database owner's rights (superuser, triggers off) but without the audit
key; the agent's own database role can only read and append; concurrent appenders do not fork it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from agent.adapters.store import audit
from agent.adapters.store.anchor import Anchorer, AnchorFile
from agent.adapters.store.audit import AuditEntry, AuditKey, chain_mac
from agent.adapters.store.db import AGENT_ROLE
from agent.adapters.store.embedded import EmbeddedPostgres, socket_dsn
from tests.fakes import fake_store_pg

pytestmark = pytest.mark.db
pg = fake_store_pg.pg
pg_dsn = fake_store_pg.pg_dsn
pool = fake_store_pg.pool
audit_key = fake_store_pg.audit_key

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WRONG_KEY = AuditKey(b"\x07" * 32)


def _entry(i: int) -> AuditEntry:
    return AuditEntry("agent", "write", "turns", f"row-{i}", T0 + timedelta(seconds=i), {"i": i})


async def _append_n(pool: asyncpg.Pool, key: AuditKey, n: int, *, first: int = 0) -> None:
    for i in range(first, first + n):
        async with pool.acquire() as conn, conn.transaction():
            await audit.append(conn, key, _entry(i))


async def _verify(
    pool: asyncpg.Pool, key: AuditKey, anchors: tuple[audit.Anchor, ...] = ()
) -> audit.VerifyResult:
    async with pool.acquire() as conn:
        return await audit.verify(conn, key, anchors)


async def _as_owner_bypassing_triggers(pool: asyncpg.Pool, sql: str, *args: object) -> None:
    """What the database owner can do: triggers do not fire in replica mode (the test pool is the
    superuser's)."""
    async with pool.acquire() as conn, conn.transaction():
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def _rechain_from(pool: asyncpg.Pool, seq: int, mac: object) -> None:
    """Recompute ``prev_mac``/``mac`` of every row from ``seq`` on with ``mac(prev, row)``: a
    forger's repair of the chain after deleting a row."""
    async with pool.acquire() as conn:
        prev = (
            audit.GENESIS
            if seq == 1
            else await conn.fetchval("SELECT mac FROM audit_log WHERE seq = $1", seq - 1)
        )
        rows = await conn.fetch(
            "SELECT seq, at, actor, action, subject, subject_id, detail::text AS detail"
            " FROM audit_log WHERE seq >= $1 ORDER BY seq",
            seq,
        )
    for r in rows:
        entry = AuditEntry(
            r["actor"], r["action"], r["subject"], r["subject_id"], r["at"], json.loads(r["detail"])
        )
        new = mac(prev, r["seq"], entry)  # type: ignore[operator]
        await _as_owner_bypassing_triggers(
            pool, "UPDATE audit_log SET prev_mac = $2, mac = $3 WHERE seq = $1", r["seq"], prev, new
        )
        prev = new


def _sha256_chain(prev: str, seq: int, entry: AuditEntry) -> str:
    """The unkeyed chain the log used to have: anyone can recompute it."""
    return hashlib.sha256(prev.encode() + audit.canonical(seq, entry)).hexdigest()


def _wrong_key_chain(prev: str, seq: int, entry: AuditEntry) -> str:
    return chain_mac(WRONG_KEY, prev, seq, entry)


async def test_empty_and_intact_chains_verify(pool: asyncpg.Pool, audit_key: AuditKey) -> None:
    assert (await _verify(pool, audit_key)).ok
    await _append_n(pool, audit_key, 5)
    result = await _verify(pool, audit_key)
    assert result.ok and result.rows == 5 and result.first_bad_seq is None
    async with pool.acquire() as conn:
        last = await conn.fetchval("SELECT mac FROM audit_log WHERE seq = 5")
    assert result.last_mac == last
    # The same rows under another key do not verify: the chain is keyed.
    wrong = await _verify(pool, WRONG_KEY)
    assert (wrong.ok, wrong.first_bad_seq) == (False, 1)


async def test_triggers_reject_update_delete_truncate(
    pool: asyncpg.Pool, audit_key: AuditKey
) -> None:
    await _append_n(pool, audit_key, 2)
    async with pool.acquire() as conn:
        for sql in (
            "UPDATE audit_log SET actor = 'x' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 1",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
    assert (await _verify(pool, audit_key)).ok


async def test_modified_row_is_reported(pool: asyncpg.Pool, audit_key: AuditKey) -> None:
    await _append_n(pool, audit_key, 5)
    await _as_owner_bypassing_triggers(
        pool, "UPDATE audit_log SET subject_id = 'row-x' WHERE seq = 3"
    )
    result = await _verify(pool, audit_key)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.reason == "row 3 was modified (hmac mismatch)"


async def test_deleted_row_is_reported(pool: asyncpg.Pool, audit_key: AuditKey) -> None:
    await _append_n(pool, audit_key, 5)
    await _as_owner_bypassing_triggers(pool, "DELETE FROM audit_log WHERE seq = 2")
    result = await _verify(pool, audit_key)
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert result.reason == "row 2 is missing (next is 3)"


@pytest.mark.parametrize("forged", [_sha256_chain, _wrong_key_chain], ids=["sha256", "wrong-key"])
async def test_deleted_row_with_the_chain_recomputed_is_reported(
    pool: asyncpg.Pool, audit_key: AuditKey, forged: object
) -> None:
    await _append_n(pool, audit_key, 5)
    # The owner deletes row 3, renumbers the rest so no seq is missing, and re-links the chain.
    await _as_owner_bypassing_triggers(
        pool,
        "DELETE FROM audit_log WHERE seq = 3; UPDATE audit_log SET seq = seq - 1 WHERE seq > 3",
    )
    await _rechain_from(pool, 3, forged)
    result = await _verify(pool, audit_key)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.reason == "row 3 was modified (hmac mismatch)"
    # Re-chaining the whole log from the first row does not help either.
    await _rechain_from(pool, 1, forged)
    result = await _verify(pool, audit_key)
    assert (result.ok, result.first_bad_seq) == (False, 1)


async def test_cut_tail_is_reported_against_the_anchor(
    pool: asyncpg.Pool, audit_key: AuditKey, tmp_path: Path
) -> None:
    anchors = AnchorFile(tmp_path / "audit.anchor")
    anchorer = Anchorer(pool, anchors, interval_s=3600)
    await _append_n(pool, audit_key, 5)
    anchored = await anchorer.anchor_now(T0)
    assert anchored is not None and anchored.seq == 5
    assert (await _verify(pool, audit_key, tuple(anchors.read()))).ok
    await _append_n(pool, audit_key, 2, first=5)  # rows after the last anchor

    # A chain that is valid on its own, but shorter than what was anchored: the tail was cut.
    await _as_owner_bypassing_triggers(pool, "DELETE FROM audit_log WHERE seq >= 4")
    assert (await _verify(pool, audit_key)).ok  # without the anchor nothing shows
    result = await _verify(pool, audit_key, tuple(anchors.read()))
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert result.reason.startswith("the log ends at row 3 but row 5 was anchored")
    assert result.anchor == anchored

    # The agent goes on appending after the cut: row 5 exists again, but is not the anchored one.
    await _append_n(pool, audit_key, 3, first=10)
    result = await _verify(pool, audit_key, tuple(anchors.read()))
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert result.reason.startswith("row 5 does not match its anchor")
    # The anchorer does not anchor the rewritten head over the old one.
    assert await anchorer.anchor_now(T0 + timedelta(minutes=1)) is None
    assert anchors.read() == [anchored]


async def test_anchor_file_is_append_only_and_private(
    pool: asyncpg.Pool, audit_key: AuditKey, tmp_path: Path
) -> None:
    path = tmp_path / "anchors" / "audit.anchor"
    anchorer = Anchorer(pool, AnchorFile(path), interval_s=0.05)
    assert await anchorer.anchor_now(T0) is None  # nothing to anchor in an empty log
    anchorer.start()
    try:
        await _append_n(pool, audit_key, 2)
        for _ in range(100):
            if AnchorFile(path).read():
                break
            await asyncio.sleep(0.02)
        await _append_n(pool, audit_key, 1, first=2)
    finally:
        await anchorer.aclose()  # anchors the head once more on the way out
    lines = AnchorFile(path).read()
    assert [a.seq for a in lines][-1] == 3 and lines == sorted(lines, key=lambda a: a.seq)
    assert os.stat(path).st_mode & 0o777 == 0o600


async def test_concurrent_appenders_keep_one_chain(pool: asyncpg.Pool, audit_key: AuditKey) -> None:
    await asyncio.gather(*(_append_n(pool, audit_key, 5) for _ in range(4)))
    result = await _verify(pool, audit_key)
    assert result.ok and result.rows == 20


async def test_append_outside_a_transaction_is_refused(
    pool: asyncpg.Pool, audit_key: AuditKey
) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the data's transaction"):
            await audit.append(conn, audit_key, AuditEntry("cli", "read", "patients", "p1", T0))


# -- the agent's own database role ---------------------------------------------------------------


@pytest.fixture
async def agent_conn(pg: EmbeddedPostgres, pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the role the agent's pool uses on the embedded PostgreSQL."""
    database = urlsplit(pg_dsn).path.lstrip("/")
    conn = await asyncpg.connect(socket_dsn(pg.socket_dir, database, user=AGENT_ROLE))
    yield conn
    await conn.close()


async def test_the_agents_role_can_only_read_and_append_the_audit_log(
    pool: asyncpg.Pool, audit_key: AuditKey, agent_conn: asyncpg.Connection
) -> None:
    assert await agent_conn.fetchval("SELECT current_user") == AGENT_ROLE
    async with agent_conn.transaction():
        assert await audit.append(agent_conn, audit_key, _entry(0)) == 1
        assert await audit.append(agent_conn, audit_key, _entry(1)) == 2
    for sql in (
        "UPDATE audit_log SET actor = 'x' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "TRUNCATE audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update_delete",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "ALTER TABLE audit_log ADD COLUMN note text",
        "ALTER TABLE audit_log OWNER TO " + AGENT_ROLE,
        "DROP TRIGGER audit_log_no_update_delete ON audit_log",
        "DROP TABLE audit_log",
        "SET session_replication_role = replica",
        "CREATE TABLE audit_log_copy (seq bigint)",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await agent_conn.execute(sql)
    # Not the owner, no superuser, no way to give itself more.
    assert not await agent_conn.fetchval(
        "SELECT rolsuper OR rolcreaterole OR rolbypassrls FROM pg_roles WHERE rolname = $1",
        AGENT_ROLE,
    )
    assert not await agent_conn.fetchval(
        "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class"
        " WHERE oid = 'audit_log'::regclass"
    )
    assert (await _verify(pool, audit_key)).ok and (await _verify(pool, audit_key)).rows == 2
