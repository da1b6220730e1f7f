"""``medagent rekey``: rotate the patient-data key (``database.key_file``).

Rotation, in order (``agent.adapters.store.rekey`` says why):

    medagent rekey add-key    append a fresh key line; new data is sealed with it after a restart
    systemctl restart medagent
    medagent rekey reseal     re-seal what older keys sealed, in batches (safe to interrupt, rerun)

Then the older lines may be deleted from the key file, and ``reseal`` run once more (the patient
index is derived from the first line). ``add-key`` on a missing file creates it with its first key:
how an install makes its key where the service cannot write (``/etc/medagent``).

Exit codes: 0 done, 2 the configuration, the key files or the database could not be used.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent.adapters.store import audit, rekey
from agent.adapters.store.crypto import Keyring, load_keyring
from agent.adapters.store.db import open_database
from agent.commands._config import resolve_config_path
from agent.config import DatabaseConfig, load_config
from agent.errors import ConfigError, StoreError
from agent.log import configure_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["add-key", "reseal"],
        help="add-key: append a fresh key to database.key_file (create the file when missing); "
        "reseal: re-seal every value an older key sealed with the newest one",
    )


def add_key(path: Path) -> str:
    """Add a key (``agent.adapters.store.rekey.add_key``); returns what to tell the admin."""
    created = not path.exists()
    kid = rekey.add_key(path)
    if created:
        return (
            f"created {path} with key {kid} (mode 600); the service user must own it: "
            f"chown medagent {path}"
        )
    return (
        f"added key {kid} to {path}; restart the agent (new data is then sealed with {kid}), "
        "then run `medagent rekey reseal`"
    )


async def _reseal(cfg: DatabaseConfig) -> tuple[Keyring, dict[str, int]]:
    keys = load_keyring(cfg.key_file, create=False)
    audit_key = audit.load_audit_key(cfg.audit_key_file, create=False)
    db = await open_database(cfg, max_size=2)
    try:
        changed = await rekey.reseal(
            db.pool, keys, audit_key, actor="cli:rekey", now=datetime.now(UTC)
        )
    finally:
        await db.close()
    return keys, changed


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(resolve_config_path(args.config))
        configure_logging(cfg.logging)  # log lines to stderr; stdout is the report
        if args.action == "add-key":
            print(add_key(Path(cfg.database.key_file)))
            return 0
        keys, changed = asyncio.run(_reseal(cfg.database))
    except (ConfigError, StoreError) as exc:
        print(f"medagent rekey: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the key file's folder: missing rights, read-only
        print(f"medagent rekey: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    index = changed.pop("blind_index", 0)
    for table, rows in changed.items():
        print(f"{table}: {rows} re-sealed")
    print(f"patient index: {index} recomputed")
    if any(changed.values()) or index:
        print(
            f"everything is sealed with {keys.current_id}; older key lines may now be removed "
            "from the key file (then run `medagent rekey reseal` once more)"
        )
    else:
        print(f"nothing was sealed with an older key: everything is sealed with {keys.current_id}")
    return 0
