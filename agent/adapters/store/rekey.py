"""Key rotation: re-seal every stored value that an older key sealed with the newest key.

Rotation is: append a new key line to the key file (``add_key``), restart, run
``reseal``; once it reports nothing left under the old key, the old line may be retired (then run
``reseal`` once more: the blind index key is derived from the first line, so retiring that line
changes every patient's index, which ``reseal`` recomputes). Rows are
re-sealed in batches, each in its own transaction with one audit row per table and batch, so a
large directory does not hold one long lock and an interrupted run simply continues next time.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from agent.adapters.store import audit
from agent.adapters.store.audit import AuditKey
from agent.adapters.store.crypto import Keyring, generate_key_line, load_keyring

# table → (key column whose text is the row id in the associated data, sealed columns)
SEALED: dict[str, tuple[str, tuple[str, ...]]] = {
    "calls": ("id", ("caller_number",)),
    "turns": ("id", ("text",)),
    "requests": ("id", ("data",)),
    "call_summaries": ("call_id", ("summary",)),
    "patients": ("id", ("name", "dob", "phone", "medications")),
}


def next_key_id(keys: Keyring) -> str:
    """``k<n+1>`` after the highest ``k<n>`` in the file (ids are never reused)."""
    numbers = [int(m.group(1)) for kid, _ in keys.keys if (m := re.fullmatch(r"k(\d+)", kid))]
    return f"k{max(numbers, default=0) + 1}"


def add_key(path: Path) -> str:
    """Append a new key line to the key file, or create the file with its first key ``k1`` (mode
    600); returns the new key's id."""
    if not path.exists():
        load_keyring(path, create=True)
        return "k1"
    kid = next_key_id(load_keyring(path, create=False))  # refuses a file others can read
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, generate_key_line(kid).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return kid


async def reseal(
    pool: asyncpg.Pool,
    keys: Keyring,
    audit_key: AuditKey,
    *,
    actor: str,
    now: datetime,
    batch: int = 500,
) -> dict[str, int]:
    """Re-seal values not sealed with ``keys.current_id``; returns the rows changed per table."""
    changed: dict[str, int] = {}
    for table, (pk, columns) in SEALED.items():
        enc = [f"{c}_enc" for c in columns]
        # Only values whose key id differs: the id is bytes 2..2+n of the sealed value.
        stale = " OR ".join(
            f"({e} IS NOT NULL AND substring({e} from 3 for get_byte({e}, 1)) <> $1)" for e in enc
        )
        total = 0
        while True:
            async with pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    f"SELECT {pk}, {', '.join(enc)} FROM {table} WHERE {stale} LIMIT {batch}"
                    " FOR UPDATE",
                    keys.current_id.encode(),
                )
                if not rows:
                    break
                for r in rows:
                    row_id = str(r[pk])
                    values = [
                        None
                        if r[e] is None
                        else keys.seal(
                            keys.open(r[e], table=table, row=row_id, column=c),
                            table=table,
                            row=row_id,
                            column=c,
                        )
                        for c, e in zip(columns, enc, strict=True)
                    ]
                    sets = ", ".join(f"{e} = ${i + 2}" for i, e in enumerate(enc))
                    await conn.execute(f"UPDATE {table} SET {sets} WHERE {pk} = $1", r[pk], *values)
                await audit.append(
                    conn,
                    audit_key,
                    audit.AuditEntry(
                        actor,
                        "reseal",
                        table,
                        "*",
                        now,
                        {"rows": len(rows), "key": keys.current_id},
                    ),
                )
                total += len(rows)
        changed[table] = total
    changed["blind_index"] = await _reindex(pool, keys, audit_key, actor=actor, now=now)
    return changed


async def _reindex(
    pool: asyncpg.Pool, keys: Keyring, audit_key: AuditKey, *, actor: str, now: datetime
) -> int:
    """Recompute blind indexes: they change when the *first* key line is retired."""
    from datetime import date

    n = 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, blind_index, name_enc, dob_enc FROM patients FOR UPDATE"
        )
        for r in rows:
            pid = str(r["id"])
            name = keys.open(r["name_enc"], table="patients", row=pid, column="name").decode()
            dob = date.fromisoformat(
                keys.open(r["dob_enc"], table="patients", row=pid, column="dob").decode()
            )
            index = keys.blind_index(name, dob)
            if index != bytes(r["blind_index"]):
                await conn.execute(
                    "UPDATE patients SET blind_index = $2 WHERE id = $1", r["id"], index
                )
                n += 1
        if n:
            await audit.append(
                conn,
                audit_key,
                audit.AuditEntry(actor, "reindex", "patients", "*", now, {"rows": n}),
            )
    return n
