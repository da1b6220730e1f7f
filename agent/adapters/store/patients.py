"""The patient directory: names, birth dates, phone numbers and medication lists, all sealed.

Callers are found by name and date of birth through the blind index (crypto.py): the lookup is an
index scan on an HMAC, and only the matching rows are decrypted. Every search and read is audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from agent.adapters.store import audit
from agent.adapters.store.audit import AuditKey
from agent.adapters.store.crypto import Keyring
from agent.errors import StoreError


@dataclass(frozen=True)
class Patient:
    id: str
    name: str
    dob: date
    phone: str = ""
    medications: list[str] = field(default_factory=list)


class PgPatientDirectory:
    def __init__(self, pool: asyncpg.Pool, keys: Keyring, audit_key: AuditKey) -> None:
        self.pool = pool
        self.keys = keys
        self.audit_key = audit_key

    async def add(
        self,
        *,
        name: str,
        dob: date,
        phone: str = "",
        medications: list[str] | None = None,
        actor: str,
        now: datetime,
        patient_id: str | None = None,
    ) -> str:
        pid = patient_id or str(uuid.uuid4())
        k = self.keys

        def seal(column: str, value: bytes) -> bytes:
            return k.seal(value, table="patients", row=pid, column=column)

        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO patients (id, blind_index, name_enc, dob_enc, phone_enc,"
                " medications_enc, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                uuid.UUID(pid),
                k.blind_index(name, dob),
                seal("name", name.encode()),
                seal("dob", dob.isoformat().encode()),
                seal("phone", phone.encode()),
                k.seal_json(medications or [], table="patients", row=pid, column="medications"),
                now,
            )
            await audit.append(
                conn, self.audit_key, audit.AuditEntry(actor, "write", "patients", pid, now)
            )
        return pid

    def _decode(self, row: asyncpg.Record) -> Patient:
        pid = str(row["id"])

        def open_(column: str) -> str:
            return self.keys.open(
                row[column + "_enc"], table="patients", row=pid, column=column
            ).decode()

        meds = self.keys.open_json(
            row["medications_enc"], table="patients", row=pid, column="medications"
        )
        return Patient(pid, open_("name"), date.fromisoformat(open_("dob")), open_("phone"), meds)

    async def find(self, name: str, dob: date, *, actor: str, now: datetime) -> list[Patient]:
        """Patients whose normalised name and DOB match exactly (the caller's identification)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT * FROM patients WHERE blind_index = $1 ORDER BY created_at",
                self.keys.blind_index(name, dob),
            )
            found = [self._decode(r) for r in rows]
            await audit.append(
                conn,
                self.audit_key,
                audit.AuditEntry(
                    actor,
                    "search",
                    "patients",
                    ",".join(p.id for p in found) or "-",
                    now,
                    {"matches": len(found)},
                ),
            )
        return found

    async def get(self, patient_id: str, *, actor: str, now: datetime) -> Patient:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM patients WHERE id = $1", uuid.UUID(patient_id))
            if row is None:
                raise StoreError(f"no patient {patient_id}")
            await audit.append(
                conn, self.audit_key, audit.AuditEntry(actor, "read", "patients", patient_id, now)
            )
        return self._decode(row)
