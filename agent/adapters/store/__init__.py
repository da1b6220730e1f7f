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
"""
