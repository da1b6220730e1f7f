"""``medagent simulate``: whole calls through the Asterisk stand-in, from a caller script.

The scripts and the run are ``agent.pbxsim.simulate`` (its docstring describes the script); this
prints a readable transcript per call, or with ``--json`` the reports ``simulate()`` returns (one
object, or a list when the script has several calls).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.commands._config import resolve_config_path
from agent.config import load_config
from agent.errors import ConfigError
from agent.log import configure_logging
from agent.pbxsim.simulate import SimOptions, load_script, simulate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", help="caller script (YAML), or a folder of them")
    parser.add_argument("--json", action="store_true", help="print the machine-readable report")
    parser.add_argument(
        "--record", metavar="DIR", help="save what each caller heard as WAV files in DIR"
    )
    parser.add_argument(
        "--voice",
        help="caller voice (see agent.pbxsim.callers.VOICES); default joe when installed",
    )
    parser.add_argument(
        "--noise-db", type=float, default=-50.0, help="line hiss level in dBFS (default -50)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--at",
        type=_aware_datetime,
        help="the practice's clock at the start, e.g. 2026-12-01T19:30:00-05:00 (default: now)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="calls of the script in progress at once"
    )
    parser.add_argument(
        "--no-db", action="store_true", help="keep records in memory instead of the database"
    )
    parser.add_argument("--verbose", action="store_true", help="show the agent's logs on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(resolve_config_path(args.config))
        scripts = load_script(args.script)
    except ConfigError as exc:
        print(f"medagent simulate: {exc}", file=sys.stderr)
        return 2
    configure_logging(dataclasses.replace(cfg.logging, level="info" if args.verbose else "error"))
    opts = SimOptions(
        voice=args.voice,
        noise_db=args.noise_db,
        record_dir=Path(args.record) if args.record else None,
        seed=args.seed,
        use_database=not args.no_db,
        now=args.at,
        concurrency=args.concurrency,
    )
    reports = asyncio.run(simulate(cfg, scripts, opts))
    if args.json:
        json.dump(reports[0] if len(reports) == 1 else reports, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        for report in reports:
            sys.stdout.write(render_transcript(report))
    return 0


def _aware_datetime(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date and time: {text!r}") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError("give a UTC offset, e.g. 2026-12-01T19:30:00-05:00")
    return at


def render_transcript(report: dict[str, Any]) -> str:
    """A readable transcript of one simulated call."""
    lines = [f"\n=== {report['name']} (call {report['call_id']}) ==="]
    for i, turn in enumerate(report["turns"]):
        if i > 0:
            lines.append(f"  CALLER: {turn['caller']}")
        latency = f"   [{turn['latency_ms']} ms]" if turn.get("latency_ms") is not None else ""
        for j, prompt in enumerate(turn["agent_prompts"]):
            lines.append(f"  AGENT:  {prompt}{latency if j == 0 else ''}")
    out = report["outcome"]
    lines.append(f"  -- hung up by {out['hangup_by']}; path: {' -> '.join(out['path'])}")
    for t in out["transfers"]:
        lines.append(f"  -- transfer to {t['target']}: {t['status']}")
    for p in out.get("phones", []):
        if p["answered"] and p["heard"]:
            lines.append(f"  -- {p['phone']} heard: {p['heard']}")
    for r in out["records"]:
        if r["kind"] != "summary":
            lines.append(f"  -- record: {r['kind']}{' (URGENT)' if r['urgent'] else ''}")
    return "\n".join(lines) + "\n"
