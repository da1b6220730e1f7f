"""Connecting to PostgreSQL (configured DSN or the embedded cluster) and applying migrations.

Migrations are the numbered SQL files in ``migrations/`` (``0001_records.sql``…), applied in order,
each in its own transaction together with its row in ``schema_migrations``; a file already recorded
is skipped, so ``migrate`` is safe to run at every start. A session advisory lock keeps two
processes starting at once from applying the same file twice. They run on a connection of their
own, as the owner, without the pool's statement bound (a migration may take a while).

Two roles. The migrations run as the tables' owner; on the embedded PostgreSQL the pool the agent
works through then logs in as ``medagent_agent`` (created by migrations/0004_agent_role.sql), which
may only read and append the audit log: no UPDATE, DELETE, TRUNCATE, ALTER or trigger switch. We
chose a login role for the pool over ``SET ROLE`` inside each audit append because it holds for
every statement the agent sends, not just for the append, and ``RESET ROLE`` cannot undo it. It is a
guard against the agent's own mistakes and against whatever reaches its SQL, not against someone
who takes over the agent's process: the embedded cluster trusts its unix socket, which that process
can reach. What makes tampering *evident* is the audit key and the anchor outside the database
(audit.py, anchor.py). With a configured ``database.dsn`` the pool uses that DSN as given; when its
role could rewrite the log the agent says so at start.

Every statement on the pool is bounded by ``database.command_timeout_s``: a database that stops
answering (a lock nobody releases, a hung server) raises ``TimeoutError`` instead of freezing the
caller. ``Reachability`` is the store's last known answer to "is the database there?", for
``/health``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from agent.adapters.store.embedded import EmbeddedPostgres
from agent.config import DatabaseConfig
from agent.errors import StoreError
from agent.log import get_logger

log = get_logger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIGRATE_LOCK = 0x6D6564_4D494752  # "medMIGR"

AGENT_ROLE = "medagent_agent"
"""The embedded pool's login role (migrations/0004_agent_role.sql)."""

_OUTAGE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.CannotConnectNowError,
)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database is not there" (or stuck: a statement over its bound)
    rather than "this statement is wrong"."""
    return isinstance(exc, _OUTAGE)


@dataclass
class Reachability:
    """Whether the database answered the last time the store asked; ``None`` before anyone asked.
    Written by the record writer and the audit anchorer, read by ``/health``."""

    ok: bool | None = None

    def mark(self, ok: bool) -> None:
        if ok != self.ok and self.ok is not None:
            if ok:
                log.info("database reachable again")
            else:
                log.warning("database unreachable")
        self.ok = ok


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
    """The owner's DSN (migrations); the pool may log in as ``AGENT_ROLE`` instead."""
    embedded: EmbeddedPostgres | None = None
    reachability: Reachability = field(default_factory=lambda: Reachability(True))

    async def close(self) -> None:
        await self.pool.close()
        if self.embedded is not None:
            self.embedded.stop()


def with_user(dsn: str, user: str) -> str:
    """``dsn`` logging in as ``user`` (no password: the embedded cluster trusts its socket)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))


async def open_database(
    cfg: DatabaseConfig, *, min_size: int = 1, max_size: int = 4, run_migrations: bool = True
) -> Database:
    """Connect to ``cfg.dsn`` (or start the embedded cluster when it is empty) and migrate."""

    embedded: EmbeddedPostgres | None = None
    dsn = cfg.dsn
    if not dsn:
        embedded = EmbeddedPostgres(Path(cfg.embedded_dir), fsync=cfg.embedded_fsync)
        dsn = await asyncio.to_thread(embedded.start)
    pool_dsn = dsn if embedded is None else with_user(dsn, AGENT_ROLE)
    try:
        if run_migrations:
            owner = await asyncpg.connect(dsn)
            try:
                await migrate(owner)
            finally:
                await owner.close()
        pool = await asyncpg.create_pool(
            pool_dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=cfg.command_timeout_s,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        if embedded is not None:
            embedded.stop()
        raise StoreError(f"cannot connect to the database: {exc}") from exc
    try:
        await _warn_if_the_log_is_writable(pool)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        await pool.close()
        if embedded is not None:
            embedded.stop()
        raise StoreError(f"cannot use the database: {exc}") from exc
    return Database(pool, dsn, embedded)


async def _warn_if_the_log_is_writable(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        exists = await conn.fetchval("SELECT to_regclass('audit_log') IS NOT NULL")
        if not exists:
            return  # not migrated (run_migrations=False on an empty database)
        writable = await conn.fetchval(
            "SELECT pg_has_role(current_user, c.relowner, 'USAGE')"
            " OR has_table_privilege(c.oid, 'UPDATE, DELETE, TRUNCATE, TRIGGER')"
            " FROM pg_class c WHERE c.oid = 'audit_log'::regclass"
        )
        user = await conn.fetchval("SELECT current_user")
    if writable:
        log.warning(
            "the agent's database role can rewrite the audit log; connect database.dsn as a role"
            " with medagent_agent's rights (tampering still shows through the audit key and"
            " anchor)",
            role=user,
        )
