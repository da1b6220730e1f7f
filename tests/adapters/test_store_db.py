"""Embedded PostgreSQL start/reuse/stop, the migrations (applied once, idempotent), and the pool's
bound on a statement that a lock holds up."""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest

from agent.adapters.store.audit import AuditKey
from agent.adapters.store.crypto import Keyring
from agent.adapters.store.db import AGENT_ROLE, load_migrations, migrate, open_database, with_user
from agent.adapters.store.embedded import EmbeddedPostgres
from agent.adapters.store.patients import PgPatientDirectory
from agent.config import DatabaseConfig, PracticeConfig
from agent.core.dialog.commands import LookupPatient, PatientLookedUp
from agent.runtime.practice_data import CallServices
from tests.fakes import fake_store_pg

pytestmark = pytest.mark.db
pg = fake_store_pg.pg
pg_dsn = fake_store_pg.pg_dsn
keyring = fake_store_pg.keyring
audit_key = fake_store_pg.audit_key


def test_the_pool_dsn_swaps_only_the_user() -> None:
    assert (
        with_user("postgresql://postgres:secret@db.local:5433/medagent?sslmode=require", AGENT_ROLE)
        == "postgresql://medagent_agent@db.local:5433/medagent?sslmode=require"
    )
    assert (
        with_user("postgresql://postgres@/postgres?host=/var/lib/medagent/pg", AGENT_ROLE)
        == "postgresql://medagent_agent@/postgres?host=/var/lib/medagent/pg"
    )


def test_migration_files_are_numbered_in_order() -> None:
    names = [m.name for m in load_migrations()]
    assert names == sorted(names)
    assert [m.version for m in load_migrations()] == list(range(1, len(names) + 1))


async def test_migrations_apply_once_then_are_a_no_op(pg: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(pg.dsn())
    await admin.execute("CREATE DATABASE t_migrate_twice")
    await admin.close()
    try:
        conn = await asyncpg.connect(pg.dsn("t_migrate_twice"))
        try:
            first = await migrate(conn)
            second = await migrate(conn)
            assert first == [m.name for m in load_migrations()]
            assert second == []
            versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
            assert [r["version"] for r in versions] == [m.version for m in load_migrations()]
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                )
            }
            assert {
                "calls",
                "turns",
                "requests",
                "call_summaries",
                "patients",
                "providers",
                "provider_schedules",
                "slots",
                "appointments",
                "audit_log",
                "schema_migrations",
            } <= tables
        finally:
            await conn.close()
    finally:
        await fake_store_pg.drop_database(pg, "t_migrate_twice")


async def test_two_processes_migrating_at_once_apply_each_file_once(pg: EmbeddedPostgres) -> None:
    name = "t_migrate_race"
    admin = await asyncpg.connect(pg.dsn())
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    try:
        a, b = await asyncpg.connect(pg.dsn(name)), await asyncpg.connect(pg.dsn(name))
        try:
            ra, rb = await asyncio.gather(migrate(a), migrate(b))
            assert sorted(ra + rb) == [m.name for m in load_migrations()]
        finally:
            await a.close()
            await b.close()
    finally:
        await fake_store_pg.drop_database(pg, name)


def test_start_is_idempotent_and_stop_only_stops_what_we_started() -> None:
    base = Path(tempfile.mkdtemp(prefix="medagent-test-pg-"))
    first = EmbeddedPostgres(base)
    try:
        dsn = first.start()
        assert first.started_by_us
        second = EmbeddedPostgres(base)
        assert second.start() == dsn
        assert not second.started_by_us
        second.stop()  # not ours: stays up
        assert asyncio.run(_select_one(dsn)) == 1
        # Unix socket only: no TCP listener.
        conf = asyncio.run(_setting(dsn, "listen_addresses"))
        assert conf == ""
        if os.geteuid() == 0:
            assert (base / "data").stat().st_uid != 0
    finally:
        first.destroy()
    assert not base.exists()


async def _select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def _setting(dsn: str, name: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval(f"SHOW {name}"))
    finally:
        await conn.close()


async def test_open_database_with_a_dsn_migrates(pg_dsn: str) -> None:
    db = await open_database(DatabaseConfig(dsn=pg_dsn))
    try:
        async with db.pool.acquire() as conn:
            assert await migrate(conn) == []
    finally:
        await db.close()


async def test_open_database_with_a_dead_dsn_is_a_store_error(tmp_path: Path) -> None:
    from agent.errors import StoreError

    dead = f"postgresql://postgres@/postgres?host={tmp_path}"
    with pytest.raises(StoreError, match="cannot connect to the database"):
        await open_database(DatabaseConfig(dsn=dead))


async def _bounded(coro: object, guard_s: float = 6.0) -> tuple[asyncio.Task[object], float]:
    """Run ``coro`` as a task; the test's own guard tells "bounded" from "hung" (a TimeoutError
    of ours would look like the pool's, so the guard does not raise one)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
    done, _ = await asyncio.wait({task}, timeout=guard_s)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pytest.fail(f"not bounded: still waiting after {guard_s} s")
    return task, loop.time() - start


async def test_a_statement_held_up_by_a_lock_is_bounded_by_the_pool(
    pg_dsn: str, keyring: Keyring, audit_key: AuditKey
) -> None:
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)
    db = await open_database(DatabaseConfig(dsn=pg_dsn, command_timeout_s=0.5))
    locker = await asyncpg.connect(pg_dsn)
    try:
        directory = PgPatientDirectory(db.pool, keyring, audit_key)
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE patients IN ACCESS EXCLUSIVE MODE")  # a stuck database

        task, took = await _bounded(
            directory.find("Mary Jones", date(1962, 3, 4), actor="t", now=now)
        )
        assert isinstance(task.exception(), TimeoutError) and took < 2.0, took

        # The call path over the same directory: a failed lookup, not a frozen caller.
        services = CallServices(directory, _NoScheduler(), PracticeConfig(), timeout_s=5.0)
        task, took = await _bounded(
            services.execute(LookupPatient("Mary Jones", "1962-03-04"), now=now, actor="t")
        )
        result = task.result()
        assert isinstance(result, PatientLookedUp) and result.failed and took < 2.0, took

        await tx.rollback()  # the lock goes: the same pool answers again
        assert await directory.find("Mary Jones", date(1962, 3, 4), actor="t", now=now) == []
    finally:
        await locker.close()
        await db.close()


class _NoScheduler:
    """Not reached by a lookup."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"scheduler.{name} called")
