"""Embedded PostgreSQL start/reuse/stop and the migrations (applied once, idempotent)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import asyncpg
import pytest

from agent.adapters.store.db import load_migrations, migrate, open_database
from agent.adapters.store.embedded import EmbeddedPostgres
from agent.config import DatabaseConfig
from tests.fakes import fake_store_pg

pytestmark = pytest.mark.db
pg = fake_store_pg.pg
pg_dsn = fake_store_pg.pg_dsn


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
