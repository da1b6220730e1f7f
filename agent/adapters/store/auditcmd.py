"""``medagent audit verify``: walk the audit log's hash chain and report the first broken row.

Exit codes: 0 the chain is intact, 1 it is broken (a row modified or deleted), 2 the configuration
or the database could not be used. The last hash is printed so an operator can note it elsewhere:
a later run that ends on a different hash for the same row count means the tail was cut off.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from agent.adapters.store import audit
from agent.adapters.store.db import open_database
from agent.config import DatabaseConfig, load_config
from agent.configcmd import resolve_config_path
from agent.errors import ConfigError, StoreError
from agent.log import configure_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["verify"], help="what to do")


async def _verify(cfg: DatabaseConfig) -> audit.VerifyResult:
    db = await open_database(cfg, max_size=1)
    try:
        async with db.pool.acquire() as conn:
            return await audit.verify(conn)
    finally:
        await db.close()


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(resolve_config_path(args.config))
        configure_logging(cfg.logging)  # log lines to stderr; stdout is the report
        result = asyncio.run(_verify(cfg.database))
    except (ConfigError, StoreError) as exc:
        print(f"medagent: {exc}", file=sys.stderr)
        return 2
    if result.ok:
        print(f"audit log OK: {result.rows} rows, last hash {result.last_hash}")
        return 0
    print(
        f"audit log BROKEN at row {result.first_bad_seq}: {result.reason}"
        f" (rows before it are intact; last good hash {result.last_hash})"
    )
    return 1
