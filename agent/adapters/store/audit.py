"""The append-only audit log: who read or wrote which patient data, when, HMAC-chained.

Each row's ``mac`` is HMAC-SHA256, under the audit key, of the previous row's ``mac`` and the
canonical JSON of the row itself. Changing any field of a row, deleting a row, or renumbering the
rows after a deletion breaks the chain from that row on, and repairing it needs the key, which is
kept in a file outside the database (``database.audit_key_file``, mode 600). So the database's owner
(a superuser can disable the append-only triggers of migrations/0003_audit.sql) can destroy the log
but cannot rewrite it unnoticed. A plain hash chain could be recomputed by anyone.

One thing a valid chain cannot show is a cut tail: deleting the newest rows leaves a shorter chain
that is valid. So the chain's head is also written outside the database, to an append-only anchor
file (anchor.py), and ``verify`` fails when the log is shorter than an anchored head or its row at
an anchored ``seq`` is not the anchored one.

The agent appends through a database role that may only SELECT and INSERT on the log
(migrations/0004_agent_role.sql, db.py): it cannot update, delete, truncate, alter the table or
turn its triggers off. ``seq`` is assigned under a transaction lock, so the sequence has no gaps
and concurrent writers cannot fork the chain.

The MACs, the anchors and the checking are pure functions over rows; ``append``/``head``/``verify``
are the thin asyncpg edge.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from agent.adapters.store.crypto import KeyFileError, create_key_file, parse_key_file, read_private
from agent.log import get_logger

log = get_logger(__name__)

GENESIS = "0" * 64
"""``prev_mac`` of the first row."""
_LOCK_KEY = 0x6D6564_41554454  # "medAUDT": serialises appenders across connections
_DOMAIN = b"medagent audit log v1\n"
"""Prefixed to every MAC'd message, so the key can never sign anything else by accident."""


@dataclass(frozen=True)
class AuditKey:
    """The chain's HMAC key. Never in the database, never in a log line."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise KeyFileError(f"the audit key must be 32 bytes, got {len(self.key)}")


def load_audit_key(path: str | os.PathLike[str], *, create: bool = True) -> AuditKey:
    """Read the audit key file (the record key file's format, exactly one key); create it, mode
    600, when missing and ``create``. ``medagent audit verify`` passes ``create=False``: a
    verification must never quietly start a new key."""
    p = Path(path)
    if not p.exists():
        if not create:
            raise KeyFileError(f"{p}: audit key file not found")
        create_key_file(
            p, "# medagent audit key: back it up apart from the database; never replace it\n"
        )
        log.warning("created a new audit log key", key_file=str(p), mode="0600")
    ring = parse_key_file(read_private(p), path=str(p))
    if len(ring.keys) != 1:
        # Rotating would need a key id per row; a chain under one key is simpler to check.
        raise KeyFileError(f"{p}: the audit key file must hold exactly one key")
    return AuditKey(ring.keys[0][1])


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


def chain_mac(key: AuditKey, prev_mac: str, seq: int, entry: AuditEntry) -> str:
    msg = _DOMAIN + prev_mac.encode() + b"\n" + canonical(seq, entry)
    return hmac.new(key.key, msg, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class StoredRow:
    seq: int
    entry: AuditEntry
    prev_mac: str
    mac: str


# -- anchors ------------------------------------------------------------------------------------

_ANCHOR_LINE = re.compile(r"^(\d+) ([0-9a-f]{64}) (\S+)$")


@dataclass(frozen=True)
class Anchor:
    """The chain's head as it was at ``at``, kept outside the database."""

    seq: int
    mac: str
    at: datetime


def format_anchor(anchor: Anchor) -> str:
    return f"{anchor.seq} {anchor.mac} {_utc(anchor.at)}\n"


def parse_anchors(text: str, *, path: str = "<anchor file>") -> list[Anchor]:
    """The anchors in an anchor file, in file order. ``#`` lines are comments. A last line without
    its newline is a write a crash cut short, not an anchor: it is left out."""
    lines = text.split("\n")
    complete = lines[:-1]  # after the last "\n": empty, or a torn line
    out: list[Anchor] = []
    for lineno, line in enumerate(complete, 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _ANCHOR_LINE.match(line)
        at: datetime | None = None
        if m is not None:
            try:
                at = datetime.fromisoformat(m.group(3))
            except ValueError:
                at = None
        if m is None or at is None or at.tzinfo is None:
            raise ValueError(f"{path}:{lineno}: expected '<seq> <hmac> <time>', got {line[:80]!r}")
        out.append(Anchor(int(m.group(1)), m.group(2), at))
    return out


# -- checking -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    """Rows checked (up to and including the first broken one)."""
    last_mac: str
    first_bad_seq: int | None = None
    reason: str = ""
    anchor: Anchor | None = None
    """The anchor the log was checked against: the highest one, or the one it failed."""


def verify_rows(
    rows: Iterable[StoredRow], key: AuditKey, anchors: Iterable[Anchor] = ()
) -> VerifyResult:
    """Walk the chain in ``seq`` order and stop at the first row that does not fit; then check
    that the log reaches every anchored head and holds the anchored row there."""
    pinned = sorted(anchors, key=lambda a: a.seq)
    highest = pinned[-1] if pinned else None
    wanted = {a.seq for a in pinned}
    seen: dict[int, str] = {}
    expected_seq = 1
    prev = GENESIS
    n = 0
    for row in rows:
        n += 1
        if row.seq != expected_seq:
            return VerifyResult(
                False,
                n,
                prev,
                expected_seq,
                f"row {expected_seq} is missing (next is {row.seq})",
                highest,
            )
        if row.prev_mac != prev:
            return VerifyResult(
                False,
                n,
                prev,
                row.seq,
                f"row {row.seq} does not link to row {row.seq - 1}",
                highest,
            )
        if not hmac.compare_digest(chain_mac(key, prev, row.seq, row.entry), row.mac):
            return VerifyResult(
                False, n, prev, row.seq, f"row {row.seq} was modified (hmac mismatch)", highest
            )
        if row.seq in wanted:
            seen[row.seq] = row.mac
        prev = row.mac
        expected_seq += 1
    for a in pinned:
        when = _utc(a.at)
        if a.seq > n:
            return VerifyResult(
                False,
                n,
                prev,
                n + 1,
                f"the log ends at row {n} but row {a.seq} was anchored at {when}: "
                "rows were cut from its end",
                a,
            )
        if not hmac.compare_digest(seen[a.seq], a.mac):
            return VerifyResult(
                False,
                n,
                prev,
                a.seq,
                f"row {a.seq} does not match its anchor of {when} (the log was cut and rewritten)",
                a,
            )
    return VerifyResult(True, n, prev, anchor=highest)


# -- asyncpg edge ---------------------------------------------------------------------------


async def append(conn: asyncpg.Connection, key: AuditKey, entry: AuditEntry) -> int:
    """Append one row; must run inside the transaction that touched the data. Returns ``seq``."""
    if not conn.is_in_transaction():
        raise RuntimeError("audit.append must run inside the data's transaction")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
    last = await conn.fetchrow("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1")
    seq, prev = (1, GENESIS) if last is None else (last["seq"] + 1, last["mac"])
    await conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, subject_id, detail,"
        " prev_mac, mac) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)",
        seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.subject,
        entry.subject_id,
        json.dumps(entry.detail, sort_keys=True),
        prev,
        chain_mac(key, prev, seq, entry),
    )
    return seq


async def head(conn: asyncpg.Connection) -> tuple[int, str] | None:
    """The committed head of the chain, ``(seq, mac)``; ``None`` for an empty log."""
    row = await conn.fetchrow("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1")
    return None if row is None else (int(row["seq"]), str(row["mac"]))


async def verify(
    conn: asyncpg.Connection,
    key: AuditKey,
    anchors: Iterable[Anchor] = (),
    *,
    batch: int = 1000,
) -> VerifyResult:
    """Read the whole log in order (in a read-only snapshot) and check the chain and anchors."""
    rows: list[StoredRow] = []
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for r in conn.cursor(
            "SELECT seq, at, actor, action, subject, subject_id, detail::text AS detail,"
            " prev_mac, mac FROM audit_log ORDER BY seq",
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
                    r["prev_mac"],
                    r["mac"],
                )
            )
    return verify_rows(rows, key, anchors)
