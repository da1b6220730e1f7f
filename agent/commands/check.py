"""``medagent check``: the administrator's first command after installing next to Asterisk.

The checks and the report are ``agent.runtime.check``; this prints them with their fixes. The exit
code is 1 when there is any problem, 2 for a configuration file that cannot be read (warnings leave
it alone).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from agent.commands._config import resolve_config_path
from agent.config import load_config
from agent.errors import ConfigError
from agent.runtime.check import run_checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dialplan",
        action="append",
        type=Path,
        metavar="FILE",
        help="our dialplan files as installed (default: dialplans/medagent-settings.conf and "
        "dialplans/medagent.conf of this project); repeat for each",
    )
    parser.add_argument(
        "--media-test",
        action="store_true",
        help="also have Asterisk send RTP to us through an externalMedia channel (needs ARI)",
    )


def run(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(f"PROBLEM  config: {exc}", file=sys.stdout)
        print(
            "         fix: correct that key in the file (`medagent config example` prints every "
            "key with its meaning)",
            file=sys.stdout,
        )
        return 2
    report = asyncio.run(run_checks(cfg, dialplans=args.dialplan, media_test=args.media_test))
    report.print(sys.stdout)
    return 1 if report.problems else 0
