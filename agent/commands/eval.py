"""``medagent eval``: how well we understand callers, measured on a labelled development set.

The measuring is ``agent.engines.nlu.evaluate`` (the sets, the scoring, the report, the audio
round); this picks the set and the mode, hands the audio round its test callers
(``agent.pbxsim.callers``), prints, and exits 1 under ``--strict`` when a target in ``TARGETS`` is
missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from typing import Any

from agent.commands._config import resolve_config_path
from agent.config import load_config
from agent.engines.nlu.evaluate import (
    BLIND_SET,
    DEFAULT_VOICES,
    DEV_SET,
    audio_eval,
    format_report,
    load_set,
    score,
    spread,
)
from agent.errors import ConfigError, EngineError
from agent.log import configure_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", default=str(DEV_SET), help="labelled JSONL (default: the dev set)")
    parser.add_argument(
        "--blind",
        action="store_true",
        help="the blind triage set (tests/data/triage_blind): caller lines written by someone "
        "who never saw our rules or training data; report it, never tune on it",
    )
    parser.add_argument(
        "--calls",
        action="store_true",
        help="replay the blind multi-turn calls (tests/data/triage_blind/calls.jsonl) through "
        "the understander and the dialog: does each emergency reach the 911 instruction within "
        "two questions of its danger, each urgent call the on-call clinician?",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="use N utterances, evenly spaced through the set so every intent is represented",
    )
    parser.add_argument(
        "--urgency",
        choices=["emergency", "urgent", "routine"],
        help="only the utterances labelled with this urgency (e.g. the emergencies through speech)",
    )
    parser.add_argument("--misses", action="store_true", help="list the utterances we got wrong")
    parser.add_argument(
        "--audio",
        action="store_true",
        help="synthesize the utterances as phone calls, each voice those of its language "
        "(`es` speaks the Spanish ones), transcribe, report WER per voice",
    )
    parser.add_argument(
        "--voices",
        default=",".join(DEFAULT_VOICES),
        help="comma-separated voices for --audio (as agent.pbxsim.callers names them)",
    )
    parser.add_argument(
        "--noise-db", type=float, default=-45.0, help="line noise level for --audio (dBFS)"
    )
    parser.add_argument(
        "--now",
        default="2026-03-02T10:00:00-05:00",
        help="the call's time, for relative dates (ISO 8601; fixed so runs compare)",
    )


def run(args: argparse.Namespace) -> int:
    from agent.engines.nlu.pipeline import Understander

    try:
        cfg = load_config(resolve_config_path(args.config))
        items = load_set(BLIND_SET if args.blind else args.set)
    except ConfigError as exc:
        print(f"medagent: configuration error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"medagent eval: {exc}", file=sys.stderr)
        return 2
    # Engines log as they load; the log goes to stderr so stdout stays one report.
    configure_logging(cfg.logging)
    if args.urgency:
        items = [i for i in items if i.urgency == args.urgency]
    if args.limit:
        items = spread(items, args.limit)
    now = datetime.fromisoformat(args.now)
    try:
        understander = Understander.from_config(cfg)
    except EngineError as exc:
        print(f"medagent eval: {exc}", file=sys.stderr)
        return 2

    if args.calls:
        return _calls(cfg, understander, now, as_json=args.json)

    started = time.perf_counter()
    results = [understander.understand(i.text, now=now) for i in items]
    report = score(items, results, min_confidence=cfg.nlu.min_confidence)
    out: dict[str, Any] = {"text": report.to_json()}
    out["text"]["ms_per_utterance"] = round(
        1000 * (time.perf_counter() - started) / max(len(items), 1), 3
    )
    failures = [f"text: {f}" for f in report.failures()]
    if not args.json:
        print(format_report(report))
        if args.misses:
            for miss in report.misses:
                print(f"  miss: {json.dumps(miss, ensure_ascii=False)}")

    if args.audio:
        voices = [v for v in args.voices.split(",") if v]
        try:
            # The stand-in's synthetic callers speak the utterances; the engines may not import
            # pbxsim (it sits above them), so they are handed in here.
            from agent.pbxsim import callers
            from agent.runtime.hearing import Ears

            ears = Ears.load(cfg, understander)
            per_voice = audio_eval(
                cfg,
                items,
                voices,
                args.noise_db,
                synthesize=callers.synthesize_caller,
                language_of=lambda voice: callers.caller_voice(voice).language,
                hear=lambda pcm: asyncio.run(ears.hear(pcm, now=now)),
                nothing=lambda: asyncio.run(ears.nothing(now)),
            )
        except (EngineError, ImportError) as exc:
            print(f"medagent eval --audio: {exc}", file=sys.stderr)
            return 2
        out["audio"] = per_voice
        for voice, result in per_voice.items():
            if result["emergency_recall"] < 1.0:
                failures.append(f"audio[{voice}]: emergency_recall {result['emergency_recall']}")
            if not args.json:
                print(
                    f"== audio voice={voice}: n={result['n']} wer={result['wer']:.3f} "
                    f"intent_accuracy={result['intent_accuracy']:.3f} "
                    f"emergency_recall={result['emergency_recall']:.3f} "
                    f"emergency_safety_net={result['emergency_safety_net']:.3f} "
                    f"stt_s_per_utterance={result['stt_s_per_utterance']:.2f}"
                )
                if args.misses:
                    for miss in result["misses"]:
                        print(f"  miss[{voice}]: {json.dumps(miss, ensure_ascii=False)}")
    out["failures"] = failures
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    elif failures:
        print("targets missed: " + "; ".join(failures))
    return 1 if args.strict and failures else 0


def _calls(cfg: Any, understander: Any, now: datetime, *, as_json: bool) -> int:
    from agent.engines.nlu.evaluate import BLIND_CALLS, load_calls
    from agent.runtime.call import dialog_settings
    from agent.runtime.replay import replay

    settings = dialog_settings(cfg)
    rows: list[dict[str, Any]] = []
    for call in load_calls(BLIND_CALLS):
        r = replay(
            call["lines"], understander, settings, cfg, now=now, on_call=cfg.transfer.on_call
        )
        danger = call["danger_line"]
        if call["urgency"] == "emergency":
            ok = r.emergency_after is not None and r.emergency_after - danger <= 2
        elif call["urgency"] == "urgent":
            ok = r.on_call_after is not None or r.emergency_after is not None
        else:
            ok = r.emergency_after is None
        rows.append(
            {
                "id": call["id"],
                "urgency": call["urgency"],
                "danger_line": danger,
                "emergency_after": r.emergency_after,
                "on_call_after": r.on_call_after,
                "ok": ok,
            }
        )
    summary = {
        level: f"{sum(r['ok'] for r in rows if r['urgency'] == level)}/"
        f"{sum(r['urgency'] == level for r in rows)}"
        for level in ("emergency", "urgent", "routine")
    }
    if as_json:
        print(json.dumps({"calls": rows, "summary": summary}, indent=2))
    else:
        print(
            "== blind calls: emergencies with the 911 instruction within two questions of the "
            "danger, urgent calls reaching the on-call clinician, routine calls with no 911"
        )
        for level, value in summary.items():
            print(f"{level:<10} {value}")
        for row in rows:
            print(
                f"  {row['id']:<5} {row['urgency']:<9} danger@{row['danger_line']} "
                f"911@{row['emergency_after']} on-call@{row['on_call_after']} "
                f"{'ok' if row['ok'] else 'MISSED'}"
            )
    return 0
