"""``medagent audit verify``: check the audit log's HMAC chain and its anchored head.

Needs the audit key (``database.audit_key_file``; never created here) and reads the anchor file
(``database.audit_anchor_file``, by default ``audit.anchor`` beside the key). Prints the anchor it
checked against: the log must reach every anchored head and hold the anchored row there, so a tail
cut off by the database's owner fails.

Exit codes: 0 the chain is intact (and reaches its anchors), 1 it is broken (a row modified,
deleted or re-chained, or the tail cut), 2 the configuration, the key, the anchor file or the
database could not be used.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from agent.adapters.store import audit
from agent.adapters.store.anchor import AnchorFile, anchor_path
from agent.adapters.store.db import open_database
from agent.commands._config import resolve_config_path
from agent.config import DatabaseConfig, load_config
from agent.errors import ConfigError, StoreError
from agent.log import configure_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["verify"], help="what to do")


async def _verify(
    cfg: DatabaseConfig, key: audit.AuditKey, anchors: list[audit.Anchor]
) -> audit.VerifyResult:
    db = await open_database(cfg, max_size=1)
    try:
        async with db.pool.acquire() as conn:
            return await audit.verify(conn, key, anchors)
    finally:
        await db.close()


def _anchor_line(result: audit.VerifyResult, path: Path) -> str:
    a = result.anchor
    if a is None:
        return f"no anchor in {path} yet: a cut tail could not be told from a short log"
    return f"anchor checked: row {a.seq}, hmac {a.mac}, written {audit.format_anchor(a).split()[-1]} ({path})"


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(resolve_config_path(args.config))
        configure_logging(cfg.logging)  # log lines to stderr; stdout is the report
        key = audit.load_audit_key(cfg.database.audit_key_file, create=False)
        path = anchor_path(cfg.database)
        anchors = AnchorFile(path).read()
        result = asyncio.run(_verify(cfg.database, key, anchors))
    except (ConfigError, StoreError) as exc:
        print(f"medagent: {exc}", file=sys.stderr)
        return 2
    if result.ok:
        print(f"audit log OK: {result.rows} rows, last hmac {result.last_mac}")
        print(_anchor_line(result, path))
        return 0
    print(
        f"audit log BROKEN at row {result.first_bad_seq}: {result.reason}"
        f" (rows before it are intact; last good hmac {result.last_mac})"
    )
    print(_anchor_line(result, path))
    return 1
