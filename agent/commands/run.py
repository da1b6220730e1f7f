"""``medagent run``: the agent in the foreground (systemd runs this).

The command line's part: the configuration (fails fast with file/key/expected), logging, and what
each way of stopping prints and exits with. The agent itself, its start-up order, reloads and
shutdown, is ``agent.runtime.lifecycle.serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from agent.commands._config import config_for_command
from agent.errors import AriUnauthorized, MedAgentError
from agent.log import configure_logging
from agent.runtime.lifecycle import serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stop-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this long (tests, smoke checks)",
    )


def run(args: argparse.Namespace) -> int:
    cfg = config_for_command(args)
    if cfg is None:
        return 2
    configure_logging(cfg.logging)
    try:
        asyncio.run(serve(cfg, stop_after_s=args.stop_after))
    except AriUnauthorized as exc:
        print(
            f"medagent: Asterisk refused our ARI credentials ({exc}). Set ari.username/ari.password to "
            f"the user in ari.conf, then restart.",
            file=sys.stderr,
        )
        return 2
    except MedAgentError as exc:
        print(f"medagent: {exc}", file=sys.stderr)
        return 1
    return 0
