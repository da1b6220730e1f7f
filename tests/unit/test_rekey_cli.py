"""``medagent rekey``: add a key line, re-seal what older keys sealed, from the command line."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.adapters.store.audit import load_audit_key
from agent.adapters.store.crypto import Keyring, load_keyring
from agent.adapters.store.records import PgRecords
from agent.adapters.store.rekey import SEALED
from agent.adapters.store.spool import Spool
from agent.cli import build_parser, main
from tests.fakes import fake_store_pg

pytestmark = pytest.mark.db
pg = fake_store_pg.pg
pg_dsn = fake_store_pg.pg_dsn
pool = fake_store_pg.pool

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


def test_rekey_is_listed_with_its_help() -> None:
    assert "re-seal" in build_parser().format_help()


def _config(tmp_path: Path, dsn: str) -> Path:
    # The DSN from a secret file, as an install with an external PostgreSQL would give it.
    dsn_file = tmp_path / "dsn.secret"
    dsn_file.write_text(dsn)
    dsn_file.chmod(0o600)
    config = tmp_path / "medagent.toml"
    config.write_text(
        f'[database]\ndsn_file = "{dsn_file}"\nkey_file = "{tmp_path / "keys" / "record.key"}"\n'
        f'audit_key_file = "{tmp_path / "keys" / "audit.key"}"\n'
        f'spool_dir = "{tmp_path / "spool"}"\n'
    )
    return config


async def test_add_key_then_reseal(
    pool: object, pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, pg_dsn)
    key_file = tmp_path / "keys" / "record.key"
    keys = load_keyring(key_file)
    audit_key = load_audit_key(tmp_path / "keys" / "audit.key")
    records = PgRecords(pool, keys, Spool(tmp_path / "spool", keys), audit_key=audit_key)
    await records.call_started("c1", channel_id="ch", caller_number="5550100001", at=NOW)
    await records.turn("c1", speaker="caller", text="my refill please", at=NOW)

    argv = ["-c", str(config), "rekey"]
    assert await asyncio.to_thread(main, [*argv, "add-key"]) == 0
    out = capsys.readouterr().out
    assert f"added key k2 to {key_file}" in out and "medagent rekey reseal" in out
    assert [kid for kid, _ in load_keyring(key_file, create=False).keys] == ["k1", "k2"]
    assert os.stat(key_file).st_mode & 0o777 == 0o600

    assert await asyncio.to_thread(main, [*argv, "reseal"]) == 0
    out = capsys.readouterr().out
    assert "calls: 1 re-sealed" in out and "turns: 1 re-sealed" in out
    assert "everything is sealed with k2" in out
    ids = set()
    for table, (_pk, columns) in SEALED.items():
        for c in columns:
            for r in await pool.fetch(f"SELECT {c}_enc FROM {table} WHERE {c}_enc IS NOT NULL"):  # type: ignore[attr-defined]
                ids.add(Keyring.key_id_of(bytes(r[0])))
    assert ids == {"k2"}
    assert await asyncio.to_thread(main, [*argv, "reseal"]) == 0
    assert "nothing was sealed with an older key" in capsys.readouterr().out


def test_add_key_creates_a_missing_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "postgresql://nobody@/x")
    key_file = tmp_path / "keys" / "record.key"
    assert main(["-c", str(config), "rekey", "add-key"]) == 0
    assert f"created {key_file} with key k1 (mode 600)" in capsys.readouterr().out
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert [kid for kid, _ in load_keyring(key_file, create=False).keys] == ["k1"]


def test_reseal_without_a_key_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "postgresql://nobody@/x")
    assert main(["-c", str(config), "rekey", "reseal"]) == 2
    err = capsys.readouterr().err
    assert "key file not found" in err and "Traceback" not in err
