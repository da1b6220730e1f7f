"""The ``medagent`` command: parse arguments, hand over to the subcommand's module.

Each subcommand lives in its own module of ``agent/commands/``, which provides
``add_arguments(parser)`` and ``run(args) -> int`` (an exit code). Modules are imported only when
their command runs, so ``medagent --help`` is instant and a heavy model is loaded only by the
command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent.errors import ConfigError, MedAgentError

# name → (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("agent.commands.run", "run the agent in the foreground (ARI controller, FastAGI, AMI)"),
    "simulate": ("agent.commands.simulate", "run scripted calls through the Asterisk stand-in"),
    "pbxsim": ("agent.commands.pbxsim", "run the Asterisk stand-in on its own (ARI on loopback)"),
    "understand": (
        "agent.commands.understand",
        "understand text or audio; one JSON object per input",
    ),
    "eval": ("agent.commands.eval", "evaluate intents, urgency and WER on labelled sets"),
    "nlu": ("agent.commands.nlu", "train the intent model from the project's data"),
    "reload": (
        "agent.commands.reload",
        "make the running agent re-read its configuration (calls go on)",
    ),
    "config": ("agent.commands.config", "validate a configuration file or print the example"),
    "check": (
        "agent.commands.check",
        "check the installation: config, ARI, AMI, dialplan, RTP ports, database, models; "
        "prints each problem with its fix",
    ),
    "audit": ("agent.commands.audit", "verify the audit log's hash chain"),
    "triage": (
        "agent.commands.triage",
        "explain how the agent triages some words (protocol, red flags, questions); check the "
        "protocol files",
    ),
    "rekey": (
        "agent.commands.rekey",
        "rotate the patient-data key: add-key appends a new key (or creates the key file), "
        "reseal re-seals stored data under the newest key",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medagent",
        description="On-premise AI answering agent for medical practices (Asterisk ARI).",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="configuration file (default: ./medagent.toml when present, else built-in defaults)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Two-stage parse: the top level finds the command; the command's module defines its own options.
    top, rest = parser.parse_known_args(argv)
    if top.command is None:
        parser.print_help()
        return 2
    module_name, help_text = COMMANDS[top.command]
    module = importlib.import_module(module_name)
    cmd_parser = argparse.ArgumentParser(prog=f"medagent {top.command}", description=help_text)
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(rest)
    args.config = top.config
    # Each command reports its own errors; these are the last resort, so that bad input never
    # ends in a traceback (a bug still does: it is not caught here).
    try:
        result: int = module.run(args)
    except ConfigError as exc:
        print(f"medagent: configuration error: {exc}", file=sys.stderr)
        return 2
    except MedAgentError as exc:
        print(f"medagent {top.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130  # 128 + SIGINT, as a shell reports it
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
