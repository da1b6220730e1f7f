"""The record store: PostgreSQL through asyncpg (embedded by default), patient data encrypted at
rest, an HMAC-chained append-only audit log anchored outside the database, and an encrypted spool
for database outages.

    embedded.py   the PostgreSQL the project starts itself when no DSN is configured
    db.py         connecting (the agent's restricted role, the statement bound) and migrations
    crypto.py     AES-256-GCM sealing bound to table/row/column; blind index for lookups
    audit.py      the audit log's HMAC chain (append, verify); ``medagent audit verify``
    anchor.py     the chain's head appended to a file outside the database (a cut tail shows)
    spool.py      encrypted one-file-per-record spool, fsync'd, replayed in order
    files.py      whole writes and directory fsyncs for the store's own files
    records.py    ``PgRecords``: the call session's ``Records`` plus staff-side reads
    patients.py   the patient directory (search by name + DOB through the blind index)
    scheduling.py ``Scheduler`` protocol, the built-in slot scheduler, and ``seed_demo``
    rekey.py      key rotation: re-seal stored values under the newest key
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from agent.adapters.store.anchor import Anchorer, AnchorFile, anchor_path
from agent.adapters.store.audit import AuditKey, load_audit_key
from agent.adapters.store.crypto import Keyring, load_keyring
from agent.adapters.store.db import Database, open_database
from agent.adapters.store.patients import PgPatientDirectory
from agent.adapters.store.records import PgRecords
from agent.adapters.store.scheduling import PgScheduler
from agent.adapters.store.spool import Spool
from agent.config import DatabaseConfig, PracticeConfig


@dataclass
class Store:
    """Everything the service needs from the store, opened from configuration."""

    database: Database
    keys: Keyring
    audit_key: AuditKey
    records: PgRecords
    patients: PgPatientDirectory
    scheduler: PgScheduler
    anchorer: Anchorer

    # -- what /health reads (agent.adapters.health.supervisor_inputs) ---------------------------

    @property
    def database_ok(self) -> bool | None:
        """Whether the database answered the last write, replay or anchor read."""
        return self.database.reachability.ok

    @property
    def spooled(self) -> int:
        return len(self.records.spool)

    @property
    def quarantined(self) -> int:
        return self.records.spool.quarantined()

    async def aclose(self) -> None:
        """Stop the spool replayer, anchor the audit head a last time, close the pool, stop the
        embedded server if we started it."""
        await self.records.aclose()
        await self.anchorer.aclose()
        await self.database.close()


async def open_store(cfg: DatabaseConfig, practice: PracticeConfig) -> Store:
    """Load the keys (creating them if missing), connect and migrate, resume any spooled records
    and start anchoring the audit log."""
    keys = load_keyring(cfg.key_file)
    audit_key = load_audit_key(cfg.audit_key_file)
    database = await open_database(cfg)
    reachability = database.reachability
    records = PgRecords(
        database.pool,
        keys,
        Spool(cfg.spool_dir, keys),
        audit_key=audit_key,
        write_timeout_s=cfg.write_timeout_s,
        reachability=reachability,
    )
    anchorer = Anchorer(
        database.pool,
        AnchorFile(anchor_path(cfg)),
        interval_s=cfg.audit_anchor_interval_s,
        timeout_s=cfg.command_timeout_s,
        reachability=reachability,
    )
    anchorer.start()
    return Store(
        database,
        keys,
        audit_key,
        records,
        PgPatientDirectory(database.pool, keys, audit_key),
        PgScheduler(database.pool, ZoneInfo(practice.timezone), audit_key),
        anchorer,
    )


__all__ = ["Store", "open_store"]
