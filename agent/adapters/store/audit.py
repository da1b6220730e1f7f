"""The append-only audit log: who read or wrote which patient data, when, hash-chained.

Each row's ``hash`` is sha256 over the previous row's hash and the canonical JSON of the row itself,
so changing any field of a row, or deleting a row, breaks the chain from that row on. The database
rejects UPDATE, DELETE and TRUNCATE with a trigger (migrations/0003_audit.sql); the chain catches
what a superuser could still do by disabling the trigger. ``seq`` is assigned under a transaction
lock, so the sequence has no gaps and concurrent writers cannot fork the chain.

The hashing and checking are pure functions over rows; ``append``/``verify`` are the thin asyncpg
edge. Deleting rows at the *end* of the log leaves a shorter valid chain: ``verify`` reports the
last hash so an operator can anchor it elsewhere (printed by ``medagent audit verify``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

GENESIS = "0" * 64
"""``prev_hash`` of the first row."""
_LOCK_KEY = 0x6D6564_41554454  # "medAUDT": serialises appenders across connections


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    """Who: ``agent`` for the call session, ``staff:<login>``, ``cli``."""
    action: str
    """``write``, ``read``, ``update``, ``search``…"""
    subject: str
    """The table whose patient data was touched."""
    subject_id: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    """Context without patient data (a kind, a count, a status)."""


def _utc(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit time must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(seq: int, entry: AuditEntry) -> bytes:
    row = {
        "seq": seq,
        "at": _utc(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "subject_id": entry.subject_id,
        "detail": entry.detail,
    }
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, seq: int, entry: AuditEntry) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(seq, entry)).hexdigest()


@dataclass(frozen=True)
class StoredRow:
    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    """Rows checked (up to and including the first broken one)."""
    last_hash: str
    first_bad_seq: int | None = None
    reason: str = ""


def verify_rows(rows: Iterable[StoredRow]) -> VerifyResult:
    """Walk the chain in ``seq`` order; stop at the first row that does not fit."""
    expected_seq = 1
    prev = GENESIS
    n = 0
    for row in rows:
        n += 1
        if row.seq != expected_seq:
            return VerifyResult(
                False, n, prev, expected_seq, f"row {expected_seq} is missing (next is {row.seq})"
            )
        if row.prev_hash != prev:
            return VerifyResult(
                False, n, prev, row.seq, f"row {row.seq} does not link to row {row.seq - 1}"
            )
        if chain_hash(prev, row.seq, row.entry) != row.hash:
            return VerifyResult(
                False, n, prev, row.seq, f"row {row.seq} was modified (hash mismatch)"
            )
        prev = row.hash
        expected_seq += 1
    return VerifyResult(True, n, prev)


# -- asyncpg edge ---------------------------------------------------------------------------


async def append(conn: asyncpg.Connection, entry: AuditEntry) -> int:
    """Append one row; must run inside the transaction that touched the data. Returns ``seq``."""
    if not conn.is_in_transaction():
        raise RuntimeError("audit.append must run inside the data's transaction")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
    last = await conn.fetchrow("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    seq, prev = (1, GENESIS) if last is None else (last["seq"] + 1, last["hash"])
    await conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, subject_id, detail,"
        " prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)",
        seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.subject,
        entry.subject_id,
        json.dumps(entry.detail, sort_keys=True),
        prev,
        chain_hash(prev, seq, entry),
    )
    return seq


async def verify(conn: asyncpg.Connection, *, batch: int = 1000) -> VerifyResult:
    """Read the whole log in order (in a read-only snapshot) and check the chain."""
    rows: list[StoredRow] = []
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for r in conn.cursor(
            "SELECT seq, at, actor, action, subject, subject_id, detail::text AS detail,"
            " prev_hash, hash FROM audit_log ORDER BY seq",
            prefetch=batch,
        ):
            rows.append(
                StoredRow(
                    r["seq"],
                    AuditEntry(
                        r["actor"],
                        r["action"],
                        r["subject"],
                        r["subject_id"],
                        r["at"],
                        json.loads(r["detail"]),
                    ),
                    r["prev_hash"],
                    r["hash"],
                )
            )
    return verify_rows(rows)
