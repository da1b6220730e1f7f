"""Key rotation on stored data: re-seal under the new key, retire the old one, still find patients."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest

from agent.adapters.store import audit
from agent.adapters.store.audit import AuditKey
from agent.adapters.store.crypto import Keyring, generate_key_line, load_keyring, parse_key_file
from agent.adapters.store.patients import PgPatientDirectory
from agent.adapters.store.records import PgRecords
from agent.adapters.store.rekey import SEALED, reseal
from agent.adapters.store.spool import Spool
from tests.fakes import fake_store_pg

pytestmark = pytest.mark.db
pg = fake_store_pg.pg
pg_dsn = fake_store_pg.pg_dsn
pool = fake_store_pg.pool
AUDIT = AuditKey(b"\x05" * 32)
"""The audit chain's key in these tests (its own tests are in test_store_audit.py)."""

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


async def _key_ids(pool: asyncpg.Pool) -> set[str]:
    ids: set[str] = set()
    for table, (_pk, columns) in SEALED.items():
        for c in columns:
            for r in await pool.fetch(f"SELECT {c}_enc FROM {table} WHERE {c}_enc IS NOT NULL"):
                ids.add(Keyring.key_id_of(bytes(r[0])))
    return ids


async def test_rotate_reseal_retire(pool: asyncpg.Pool, tmp_path: Path) -> None:
    key_file = tmp_path / "record.key"
    old = load_keyring(key_file)
    records = PgRecords(pool, old, Spool(tmp_path / "spool", old), audit_key=AUDIT)
    await records.call_started("c1", channel_id="ch", caller_number="5550100001", at=NOW)
    await records.turn("c1", speaker="caller", text="my refill please", at=NOW)
    await records.save("c1", kind="refill", data={"medication": "x"}, urgent=False, at=NOW)
    await records.call_ended("c1", summary={"urgency": "routine"}, outcome="completed", at=NOW)
    pid = await PgPatientDirectory(pool, old, AUDIT).add(
        name="Testy McTestface", dob=date(1901, 1, 1), phone="5550100001", actor="t", now=NOW
    )
    assert await _key_ids(pool) == {"k1"}

    with key_file.open("a") as fh:
        fh.write(generate_key_line("k2"))
    both = load_keyring(key_file)
    changed = await reseal(pool, both, AUDIT, actor="cli", now=NOW)
    assert changed == {
        "calls": 1,
        "turns": 1,
        "requests": 1,
        "call_summaries": 1,
        "patients": 1,
        "blind_index": 0,
    }
    assert await _key_ids(pool) == {"k2"}
    assert set((await reseal(pool, both, AUDIT, actor="cli", now=NOW)).values()) == {0}

    # Retire k1: everything opens with k2 alone, and after a reseal patients are found again.
    only_new = parse_key_file(key_file.read_text().splitlines()[-1])
    assert (await reseal(pool, only_new, AUDIT, actor="cli", now=NOW))["blind_index"] == 1
    directory = PgPatientDirectory(pool, only_new, AUDIT)
    assert [
        p.id for p in await directory.find("testy mctestface", date(1901, 1, 1), actor="t", now=NOW)
    ] == [pid]
    records_new = PgRecords(pool, only_new, Spool(tmp_path / "spool", only_new), audit_key=AUDIT)
    transcript = await records_new.transcript("c1", actor="t", now=NOW)
    assert [t["text"] for t in transcript] == ["my refill please"]
    async with pool.acquire() as conn:
        assert (await audit.verify(conn, AUDIT)).ok
