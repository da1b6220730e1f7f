"""``medagent config``: validate a configuration file, or print the commented example."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.commands._config import print_warnings, resolve_config_path
from agent.config import load_config
from agent.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "medagent.toml.example"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["validate", "example"], help="what to do")
    parser.add_argument(
        "file", nargs="?", help="file to validate (default: -c FILE or ./medagent.toml)"
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "example":
        sys.stdout.write(EXAMPLE.read_text())
        return 0
    path = args.file or resolve_config_path(args.config)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(f"medagent: configuration error: {exc}", file=sys.stderr)
        return 2
    print_warnings(cfg)
    print(f"{cfg.source}: OK")
    return 0
