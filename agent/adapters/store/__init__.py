"""The record store: PostgreSQL through asyncpg (embedded by default), patient data encrypted at
rest, a hash-chained append-only audit log, and an encrypted spool for database outages.

    embedded.py   the PostgreSQL the project starts itself when no DSN is configured
    db.py         connecting and the numbered SQL migrations in migrations/
    crypto.py     AES-256-GCM sealing bound to table/row/column; blind index for lookups
    audit.py      the audit log's hash chain (append, verify); ``medagent audit verify``
    spool.py      encrypted one-file-per-record spool, fsync'd, replayed in order
    records.py    ``PgRecords``: the call session's ``Records`` plus staff-side reads
    patients.py   the patient directory (search by name + DOB through the blind index)
    scheduling.py ``Scheduler`` protocol, the built-in slot scheduler, and ``seed_demo``
    rekey.py      key rotation: re-seal stored values under the newest key
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from agent.adapters.store.crypto import Keyring, load_keyring
from agent.adapters.store.db import Database, open_database
from agent.adapters.store.patients import PatientDirectory
from agent.adapters.store.records import PgRecords
from agent.adapters.store.scheduling import PgScheduler
from agent.adapters.store.spool import Spool
from agent.config import DatabaseConfig, PracticeConfig


@dataclass
class Store:
    """Everything the service needs from the store, opened from configuration."""

    database: Database
    keys: Keyring
    records: PgRecords
    patients: PatientDirectory
    scheduler: PgScheduler

    async def aclose(self) -> None:
        """Stop the spool replayer, close the pool, stop the embedded server if we started it."""
        await self.records.aclose()
        await self.database.close()


async def open_store(cfg: DatabaseConfig, practice: PracticeConfig) -> Store:
    """Load the key (creating it if missing), connect and migrate, and resume any spooled records."""
    keys = load_keyring(cfg.key_file)
    database = await open_database(cfg)
    records = PgRecords(
        database.pool, keys, Spool(cfg.spool_dir, keys), write_timeout_s=cfg.write_timeout_s
    )
    return Store(
        database,
        keys,
        records,
        PatientDirectory(database.pool, keys),
        PgScheduler(database.pool, ZoneInfo(practice.timezone)),
    )


__all__ = ["Store", "open_store"]
