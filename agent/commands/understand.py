"""``medagent understand``: what the agent makes of some words or a recording.

    medagent understand --text "I need a refill on my lisinopril"
    medagent understand --audio caller.wav --telephone
    medagent understand --jsonl inputs.jsonl        # lines {"text": ...} or {"audio": "file.wav"}

Prints one JSON object per input (``Understanding.to_json``). Audio is transcribed by the STT engine
first (``agent.engines.stt``); ``--telephone`` sends it through the phone-line model of
``agent.engines.phone_line`` (8 kHz, voice band, μ-law) so a clean recording sounds like a call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.commands._config import config_for_command
from agent.engines.recording import load_pcm16_8k
from agent.errors import EngineError
from agent.log import configure_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", action="append", default=[], help="words to understand")
    parser.add_argument(
        "--audio", action="append", default=[], help="a recording (WAV of any rate, or .ulaw)"
    )
    parser.add_argument("--jsonl", help='a file of lines {"text": ...} or {"audio": PATH}')
    parser.add_argument(
        "--telephone",
        action="store_true",
        help="pass audio through the phone-line model (8 kHz μ-law, 300-3400 Hz) before STT",
    )
    parser.add_argument(
        "--now", help="the call's time for relative dates (ISO 8601; default: now, practice time)"
    )


def run(args: argparse.Namespace) -> int:
    from agent.engines.nlu.pipeline import Understander

    cfg = config_for_command(args)
    if cfg is None:
        return 2
    # Engines log as they load; the log goes to stderr so stdout stays pure JSON.
    configure_logging(cfg.logging)
    try:
        inputs = _inputs(args)
    except (OSError, ValueError) as exc:
        print(f"medagent understand: {exc}", file=sys.stderr)
        return 2
    if not inputs:
        print("medagent understand: give --text, --audio or --jsonl", file=sys.stderr)
        return 2
    try:
        now = (
            datetime.fromisoformat(args.now)
            if args.now
            else datetime.now(ZoneInfo(cfg.practice.timezone))
        )
    except ValueError:
        print(f"medagent understand: --now {args.now!r} is not an ISO 8601 time", file=sys.stderr)
        return 2
    try:
        understander = Understander.from_config(cfg)
    except EngineError as exc:
        print(f"medagent understand: {exc}", file=sys.stderr)
        return 2

    ears: Any = None
    status = 0
    for kind, value in inputs:
        if kind == "text":
            result = understander.understand(value, now=now)
        else:
            try:
                if ears is None:
                    from agent.runtime.hearing import Ears

                    ears = Ears.load(cfg, understander)
                pcm = load_pcm16_8k(value, telephone=args.telephone)
                result = asyncio.run(_hear(ears, pcm, now))
            except (OSError, ValueError, EngineError) as exc:
                print(f"medagent understand: {value}: {exc}", file=sys.stderr)
                status = 1
                continue
        print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
    return status


async def _hear(ears: Any, pcm: bytes, now: datetime) -> Any:
    hearing = await ears.hear(pcm, now=now)
    return hearing.understanding or await ears.nothing(now)


def _inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``("text", words)`` and ``("audio", path)`` in the order given."""
    out = [("text", t) for t in args.text] + [("audio", a) for a in args.audio]
    if args.jsonl:
        base = Path(args.jsonl).parent
        with open(args.jsonl, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{args.jsonl}:{number}"
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{where}: not JSON: {exc.msg}") from None
                if isinstance(raw, dict) and isinstance(raw.get("text"), str):
                    out.append(("text", raw["text"]))
                elif isinstance(raw, dict) and isinstance(raw.get("audio"), str):
                    out.append(("audio", str(base / raw["audio"])))
                else:
                    raise ValueError(f'{where}: expected {{"text": ...}} or {{"audio": PATH}}')
    return out
