"""The configuration a command runs with: ``-c FILE``, else ``./medagent.toml``, else the defaults.

Here rather than in ``agent.config`` because it prints: the warnings on stderr and, for
``config_for_command``, the error and its exit code are the command line's business.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.config import Config, load_config
from agent.errors import ConfigError


def resolve_config_path(explicit: str | None) -> str | None:
    """``-c FILE`` when given, else ``./medagent.toml`` when it exists, else built-in defaults."""
    if explicit:
        return explicit
    return "medagent.toml" if Path("medagent.toml").exists() else None


def print_warnings(cfg: Config) -> None:
    """The configuration's warnings on stderr: before logging is set up, so they reach the
    terminal or the journal (systemd keeps stderr) at every start of a command."""
    for warning in cfg.warnings:
        print(f"medagent: warning: {warning}", file=sys.stderr)


def config_for_command(args: argparse.Namespace) -> Config | None:
    """The configuration a command runs with, its warnings printed; ``None`` after printing the
    error (exit code 2)."""
    try:
        cfg = load_config(resolve_config_path(args.config))
    except ConfigError as exc:
        print(f"medagent: configuration error: {exc}", file=sys.stderr)
        return None
    print_warnings(cfg)
    return cfg
