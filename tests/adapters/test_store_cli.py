"""``open_store`` from configuration on the embedded PostgreSQL (the agent's pool on its own
restricted role, the audit chain anchored in a file beside its key, the store's state for
``/health``), and ``medagent audit verify`` exit codes on an intact chain, a modified row, a cut
tail and a missing audit key."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import structlog

from agent.adapters.health import supervisor_inputs
from agent.adapters.store import open_store
from agent.adapters.store.anchor import AnchorFile
from agent.adapters.store.audit import load_audit_key
from agent.adapters.store.db import AGENT_ROLE
from agent.adapters.store.embedded import EmbeddedPostgres
from agent.cli import main
from agent.config import DatabaseConfig, PracticeConfig

pytestmark = pytest.mark.db
T0 = datetime(2026, 11, 2, 21, 15, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The command configures structlog onto the captured stderr; later tests must not inherit it.
    yield
    structlog.reset_defaults()


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="medagent-test-cli-"))
    base.chmod(0o755)  # mkdtemp makes it 0700: the unprivileged server user must get through
    yield base / "pg"
    EmbeddedPostgres(base / "pg").stop(force=True)
    shutil.rmtree(base, ignore_errors=True)


async def _tamper(embedded_dir: Path, sql: str) -> None:
    server = EmbeddedPostgres(embedded_dir, fsync=False)
    dsn = await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(sql)
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.stop)


class _Sup:
    healthy = True
    active_calls = 0
    max_calls = 4


async def test_open_store_then_audit_verify_reports_tampering(
    embedded_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_dir = tmp_path / "keys"
    cfg = DatabaseConfig(
        embedded_dir=str(embedded_dir),
        key_file=str(keys_dir / "record.key"),
        audit_key_file=str(keys_dir / "audit.key"),
        spool_dir=str(tmp_path / "spool"),
        embedded_fsync=False,
    )
    store = await open_store(cfg, PracticeConfig())
    try:
        async with store.database.pool.acquire() as conn:
            # The agent's data connections are not the owner's: they can only append the log.
            assert await conn.fetchval("SELECT current_user") == AGENT_ROLE
        health = supervisor_inputs(_Sup(), store=store)()
        assert (health.database_ok, health.spooled, health.quarantined) == (True, 0, 0)
        rec = store.records
        await rec.call_started("c1", channel_id="ch", caller_number="5550100001", at=T0)
        for i in range(3):
            await rec.turn("c1", speaker="caller", text=f"turn {i}", at=T0 + timedelta(seconds=i))
    finally:
        await store.aclose()
    # We started the embedded server, so closing the store stopped it.
    assert not (embedded_dir / "data" / "postmaster.pid").exists()
    anchor_file = keys_dir / "audit.anchor"  # beside the audit key, not beside the data
    assert AnchorFile(anchor_file).read()[-1].seq == 4  # closing anchored the head
    for private in (cfg.key_file, cfg.audit_key_file, anchor_file):
        assert os.stat(private).st_mode & 0o777 == 0o600, private

    config = tmp_path / "medagent.toml"
    config.write_text(
        f'[database]\nembedded_dir = "{embedded_dir}"\nkey_file = "{cfg.key_file}"\n'
        f'audit_key_file = "{cfg.audit_key_file}"\n'
        f'spool_dir = "{cfg.spool_dir}"\nembedded_fsync = false\n'
    )
    argv = ["-c", str(config), "audit", "verify"]
    capsys.readouterr()  # drop the set-up's log lines

    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("audit log OK: 4 rows, last hmac ")
    assert "anchor checked: row 4, hmac " in out and str(anchor_file) in out

    await _tamper(embedded_dir, "UPDATE audit_log SET actor = 'someone' WHERE seq = 2")
    assert await asyncio.to_thread(main, argv) == 1
    assert (
        "audit log BROKEN at row 2: row 2 was modified (hmac mismatch)" in capsys.readouterr().out
    )

    # The owner puts row 2 back and cuts the last two rows: a chain valid on its own.
    await _tamper(
        embedded_dir,
        "UPDATE audit_log SET actor = 'agent' WHERE seq = 2; DELETE FROM audit_log WHERE seq >= 3",
    )
    assert await asyncio.to_thread(main, argv) == 1
    out = capsys.readouterr().out
    assert "audit log BROKEN at row 3: the log ends at row 2 but row 4 was anchored" in out
    assert "anchor checked: row 4" in out

    # Without the audit key nothing can be checked: a usage error, and no new key is made.
    os.rename(cfg.audit_key_file, tmp_path / "audit.key.away")
    assert await asyncio.to_thread(main, argv) == 2
    assert "audit key" in capsys.readouterr().err
    assert cfg.audit_key_file not in {str(p) for p in keys_dir.iterdir()}


def test_audit_verify_with_an_unreachable_database_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "audit.key"
    load_audit_key(key)
    config = tmp_path / "medagent.toml"
    config.write_text(
        f'[database]\ndsn = "postgresql://postgres@/x?host={tmp_path}"\naudit_key_file = "{key}"\n'
    )
    assert main(["-c", str(config), "audit", "verify"]) == 2
    assert "cannot connect to the database" in capsys.readouterr().err
