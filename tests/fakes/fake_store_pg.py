"""Test databases on the embedded PostgreSQL (tests marked ``db``).

One cluster per test process, in a fresh temporary directory (world-searchable parents, so the
unprivileged ``medagent`` user can run it when tests run as root), removed at exit. The migrations
are applied once to a template database; each test gets its own copy (``CREATE DATABASE …
TEMPLATE``), which takes a fraction of a second, so tests never see each other's rows.

Test modules bind the fixtures by assignment (``pg_dsn = fake_store_pg.pg_dsn``).
"""

from __future__ import annotations

import atexit
import functools
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from agent.adapters.store.audit import AuditKey, load_audit_key
from agent.adapters.store.crypto import Keyring, load_keyring
from agent.adapters.store.db import migrate
from agent.adapters.store.embedded import EmbeddedPostgres

TEMPLATE = "medagent_template"


@functools.cache
def cluster() -> EmbeddedPostgres:
    pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="medagent-test-pg-")))
    pg.start()
    atexit.register(pg.destroy)
    return pg


_template_ready = False


async def _ensure_template(pg: EmbeddedPostgres) -> None:
    global _template_ready
    if _template_ready:
        return
    admin = await asyncpg.connect(pg.dsn())
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEMPLATE)
        if not exists:
            await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg.dsn(TEMPLATE))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    _template_ready = True


async def fresh_database(pg: EmbeddedPostgres, *, template: str = TEMPLATE) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    finally:
        await admin.close()
    return name


async def drop_database(pg: EmbeddedPostgres, name: str) -> None:
    admin = await asyncpg.connect(pg.dsn())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
def pg() -> EmbeddedPostgres:
    return cluster()


@pytest.fixture
async def pg_dsn(pg: EmbeddedPostgres) -> AsyncIterator[str]:
    """DSN of a fresh, migrated database of its own."""
    await _ensure_template(pg)
    name = await fresh_database(pg)
    yield pg.dsn(name)
    await drop_database(pg, name)


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield p
    await p.close()


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return load_keyring(tmp_path / "record.key")


@pytest.fixture
def audit_key(tmp_path: Path) -> AuditKey:
    return load_audit_key(tmp_path / "audit.key")
