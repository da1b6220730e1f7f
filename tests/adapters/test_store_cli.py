"""``open_store`` from configuration on the embedded PostgreSQL, and ``medagent audit verify``
exit codes on an intact, a modified and a shortened-in-the-middle chain."""

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

from agent.adapters.store import open_store
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


async def test_open_store_then_audit_verify_reports_tampering(
    embedded_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = DatabaseConfig(
        embedded_dir=str(embedded_dir),
        key_file=str(tmp_path / "keys" / "record.key"),
        spool_dir=str(tmp_path / "spool"),
        embedded_fsync=False,
    )
    store = await open_store(cfg, PracticeConfig())
    try:
        rec = store.records
        await rec.call_started("c1", channel_id="ch", caller_number="5550100001", at=T0)
        for i in range(3):
            await rec.turn("c1", speaker="caller", text=f"turn {i}", at=T0 + timedelta(seconds=i))
    finally:
        await store.aclose()
    # We started the embedded server, so closing the store stopped it.
    assert not (embedded_dir / "data" / "postmaster.pid").exists()
    assert os.stat(cfg.key_file).st_mode & 0o777 == 0o600

    config = tmp_path / "medagent.toml"
    config.write_text(
        f'[database]\nembedded_dir = "{embedded_dir}"\nkey_file = "{cfg.key_file}"\n'
        f'spool_dir = "{cfg.spool_dir}"\nembedded_fsync = false\n'
    )
    argv = ["-c", str(config), "audit", "verify"]
    capsys.readouterr()  # drop the set-up's log lines

    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("audit log OK: 4 rows, last hash ")

    await _tamper(embedded_dir, "UPDATE audit_log SET actor = 'someone' WHERE seq = 2")
    assert await asyncio.to_thread(main, argv) == 1
    assert (
        "audit log BROKEN at row 2: row 2 was modified (hash mismatch)" in capsys.readouterr().out
    )

    await _tamper(
        embedded_dir,
        "UPDATE audit_log SET actor = 'agent' WHERE seq = 2; DELETE FROM audit_log WHERE seq = 3",
    )
    assert await asyncio.to_thread(main, argv) == 1
    assert "audit log BROKEN at row 3: row 3 is missing (next is 4)" in capsys.readouterr().out


def test_audit_verify_with_an_unreachable_database_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "medagent.toml"
    config.write_text(f'[database]\ndsn = "postgresql://postgres@/x?host={tmp_path}"\n')
    assert main(["-c", str(config), "audit", "verify"]) == 2
    assert "cannot connect to the database" in capsys.readouterr().err
