"""``medagent reload``: ask the running agent to re-read its configuration (SIGHUP).

Calls in progress are not dropped: they finish with the settings they started with; new calls get
the new ones. An invalid file is refused by the agent (logged) and the running configuration kept.
Under systemd, ``systemctl reload medagent`` does the same.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from agent.commands._config import resolve_config_path
from agent.config import load_config
from agent.errors import ConfigError
from agent.runtime.lifecycle import pid_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pid", type=int, help="the agent's process id (default: from its pid file)"
    )


def run(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    try:
        cfg = load_config(path)  # refuse to signal with a file the agent would reject anyway
    except ConfigError as exc:
        print(
            f"medagent reload: not reloading, the configuration is invalid: {exc}", file=sys.stderr
        )
        return 2
    pid = args.pid
    if pid is None:
        try:
            pid = int(pid_file(cfg).read_text().strip())
        except (OSError, ValueError):
            print(
                f"medagent reload: no running agent found ({pid_file(cfg)} missing); is `medagent run` running?",
                file=sys.stderr,
            )
            return 1
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        print(f"medagent reload: process {pid} is not running", file=sys.stderr)
        return 1
    print(f"reload requested (pid {pid})")
    return 0
