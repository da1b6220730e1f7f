"""Connecting to PostgreSQL (configured DSN or the embedded cluster) and applying migrations.

Migrations are the numbered SQL files in ``migrations/`` (``0001_records.sql``…), applied in order,
each in its own transaction together with its row in ``schema_migrations``; a file already recorded
is skipped, so ``migrate`` is safe to run at every start. A session advisory lock keeps two
processes starting at once from applying the same file twice.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from agent.adapters.store.embedded import EmbeddedPostgres
from agent.config import DatabaseConfig
from agent.errors import StoreError
from agent.log import get_logger

log = get_logger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIGRATE_LOCK = 0x6D6564_4D494752  # "medMIGR"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migration files shipped in the package, ordered by version; duplicates are an error."""
    found: list[Migration] = []
    for entry in resources.files("agent.adapters.store.migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m is None:
            continue
        found.append(Migration(int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a version number: {[m.name for m in found]}")
    return found


async def migrate(conn: asyncpg.Connection, *, now: datetime | None = None) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied (empty when up to date)."""
    # Migrations run at start-up, outside any call; their timestamp is bookkeeping only.
    applied_at = now or datetime.now(UTC)
    done: list[str] = []
    # One migrator at a time across processes, for the whole run (even CREATE TABLE IF NOT
    # EXISTS races with itself); a session lock, released however we leave.
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATE_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)"
        )
        have = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for mig in load_migrations():
            if mig.version in have:
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    mig.version,
                    mig.name,
                    applied_at,
                )
            log.info("applied migration", migration=mig.name)
            done.append(mig.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATE_LOCK)
    return done


@dataclass
class Database:
    """The pool the store uses, and the embedded server when we started one."""

    pool: asyncpg.Pool
    dsn: str
    embedded: EmbeddedPostgres | None = None

    async def close(self) -> None:
        await self.pool.close()
        if self.embedded is not None:
            self.embedded.stop()


async def open_database(
    cfg: DatabaseConfig, *, min_size: int = 1, max_size: int = 4, run_migrations: bool = True
) -> Database:
    """Connect to ``cfg.dsn`` (or start the embedded cluster when it is empty) and migrate."""

    embedded: EmbeddedPostgres | None = None
    dsn = cfg.dsn
    if not dsn:
        embedded = EmbeddedPostgres(Path(cfg.embedded_dir), fsync=cfg.embedded_fsync)
        dsn = await asyncio.to_thread(embedded.start)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    except (OSError, asyncpg.PostgresError) as exc:
        if embedded is not None:
            embedded.stop()
        raise StoreError(f"cannot connect to the database: {exc}") from exc
    if run_migrations:
        async with pool.acquire() as conn:
            await migrate(conn)
    return Database(pool, dsn, embedded)
