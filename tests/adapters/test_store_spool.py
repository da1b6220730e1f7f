"""The spool when its files are not what they should be: any file that cannot be read, opened or
parsed is set aside (its exception's type logged, never its message) and the rest replayed; a short
``write`` still writes the whole record; the replayer survives a bad file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from agent.adapters.store.audit import AuditKey
from agent.adapters.store.crypto import Keyring, generate_key_line, parse_key_file
from agent.adapters.store.records import PgRecords
from agent.adapters.store.spool import Spool, SpooledRecord
from tests.fakes import fake_store_pg

KEYS = parse_key_file(generate_key_line("k1"))
T0 = datetime(2026, 11, 2, 21, 15, tzinfo=UTC)
SAID = "my chest hurts since Tuesday"
IDS = [f"3f1c1c5e-6f59-4d61-9a64-2d4e5d0a00{i:02d}" for i in range(1, 4)]


def _started(rid: str = IDS[0]) -> SpooledRecord:
    return SpooledRecord(
        rid,
        "call_started",
        "c",
        {"channel_id": "x", "caller_number": "5550100001", "at": T0.isoformat()},
    )


def _turn(rid: str = IDS[2]) -> SpooledRecord:
    return SpooledRecord(
        rid, "turn", "c", {"speaker": "caller", "text": SAID, "at": T0.isoformat()}
    )


def _sealed(raw: bytes, rid: str) -> bytes:
    return KEYS.seal(raw, table="spool", row=rid, column="record")


def _whole() -> bytes:
    return _sealed(_turn(IDS[1]).to_json(), IDS[1])


# How a file can be unreadable, and what each raises inside ``pending`` before it is set aside.
DAMAGE: dict[str, Callable[[Path], None]] = {
    "empty": lambda p: p.write_bytes(b""),
    "cut_in_key_id": lambda p: p.write_bytes(_whole()[:3]),
    "cut_in_nonce": lambda p: p.write_bytes(_whole()[:8]),  # cryptography: ValueError (nonce size)
    "cut_in_ciphertext": lambda p: p.write_bytes(_whole()[:-5]),
    "not_json": lambda p: p.write_bytes(_sealed(b"{not json", IDS[1])),
    "json_without_fields": lambda p: p.write_bytes(_sealed(b'{"id": "x"}', IDS[1])),
    "json_not_an_object": lambda p: p.write_bytes(_sealed(b"[1, 2]", IDS[1])),
    "a_directory": lambda p: p.mkdir(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_any_unreadable_file_is_set_aside_and_the_others_kept(tmp_path: Path, damage: str) -> None:
    spool = Spool(tmp_path, KEYS)
    spool.put(_started())
    bad = tmp_path / f"000000000002-{IDS[1]}.rec"
    DAMAGE[damage](bad)
    Spool(tmp_path, KEYS).put(_turn())  # numbering continues after the damaged file
    assert len(spool) == 3 and spool.quarantined() == 0
    with capture_logs() as logs:
        pending = spool.pending()
    assert [r.id for _p, r in pending] == [IDS[0], IDS[2]]
    assert (tmp_path / "failed" / bad.name).exists() and not bad.exists()
    assert len(spool) == 2 and spool.quarantined() == 1
    events = [e for e in logs if e["event"] == "spool file unreadable; set aside"]
    assert len(events) == 1 and events[0]["file"] == bad.name
    # The exception's type only: a message could quote what the file holds.
    assert events[0]["error"].isidentifier() and set(events[0]) <= {
        "event",
        "log_level",
        "file",
        "error",
    }
    assert SAID not in repr(logs)


def test_a_short_write_still_writes_the_whole_record(tmp_path: Path) -> None:
    calls: list[int] = []

    def trickle(fd: int, data: bytes | memoryview) -> int:
        """What ``write(2)`` may do on a full disk or a signal: take only part of the buffer."""
        calls.append(len(data))
        return os.write(fd, bytes(data[:7]))

    path = Spool(tmp_path, KEYS, write=trickle).put(_turn())
    assert len(calls) > 3  # the record needed several writes
    assert [r for _p, r in Spool(tmp_path, KEYS).pending()] == [_turn()]
    assert path.stat().st_size == sum(min(n, 7) for n in calls)


def test_a_write_that_makes_no_progress_is_an_error_not_a_loop(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="no progress"):
        Spool(tmp_path, KEYS, write=lambda fd, data: 0).put(_turn())


# -- the replayer --------------------------------------------------------------------------------

pg = fake_store_pg.pg
pg_dsn = fake_store_pg.pg_dsn
pool = fake_store_pg.pool
audit_key = fake_store_pg.audit_key


@pytest.mark.db
async def test_the_replayer_survives_a_bad_file_and_stores_the_rest(
    pool: asyncpg.Pool, audit_key: AuditKey, tmp_path: Path
) -> None:
    keys: Keyring = KEYS
    spool = Spool(tmp_path / "spool", keys)
    spool.put(_started())
    DAMAGE["cut_in_nonce"](tmp_path / "spool" / f"000000000002-{IDS[1]}.rec")
    Spool(tmp_path / "spool", keys).put(_turn())
    records = PgRecords(pool, keys, Spool(tmp_path / "spool", keys), audit_key=audit_key)
    try:
        await asyncio.wait_for(records.wait_replayed(), 10)
        assert records.reachability.ok is True
        # Nothing is left in the way: the next record is written live, not spooled.
        await records.turn("c", speaker="agent", text="Thanks", at=T0)
        assert len(records.spool) == 0
    finally:
        await records.aclose()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls") == 1
        assert await conn.fetchval("SELECT count(*) FROM turns") == 2
    assert records.spool.quarantined() == 1
