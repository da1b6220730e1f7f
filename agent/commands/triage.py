"""``medagent triage``: the audit view a clinician needs to trust or correct the triage.

    medagent triage explain "my toddler got into the dishwasher pods"
    medagent triage explain --json "me arde al orinar y tengo fiebre"
    medagent triage check          # read and check every protocol file; list what is in force

``explain`` says which protocol the words were filed under and why (the topic model's best
guesses and the example sentence closest in meaning, or the protocol terms that were said), every
red flag raised (the base pack's rules and the protocol's signs, with the words that matched),
the urgency the agent would act on, and the questions it would ask next, in order. It reads the
same files and model a call does (``medagent.toml``'s specialty packs), and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.commands._config import config_for_command
from agent.errors import ConfigError, EngineError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["explain", "check"], help="what to do")
    parser.add_argument("text", nargs="*", help="what the caller said (explain)")
    parser.add_argument("--json", action="store_true", help="one JSON document")


def run(args: argparse.Namespace) -> int:
    cfg = config_for_command(args)
    if cfg is None:
        return 2
    from agent.engines.nlu.protocol_files import all_protocols, load_book

    try:
        book = load_book(cfg.practice.specialty_packs)
        every = all_protocols()
    except ConfigError as exc:
        print(f"medagent triage: protocol error: {exc}", file=sys.stderr)
        return 2
    if args.action == "check":
        packs = sorted({p.pack for p in every})
        print(
            f"protocols: {len(every)} files in packs {', '.join(packs)} read and checked; "
            f"in force for this practice ({', '.join(book.packs)}): {len(book)}"
        )
        for pid in book.ids():
            p = book[pid]
            levels = "/".join(q.disposition for q in p.questions)
            print(f"  {pid:<22} {p.pack:<12} {len(p.questions)} questions ({levels})")
        return 0
    text = " ".join(args.text).strip()
    if not text:
        print('medagent triage explain: say what the caller said: explain "..."', file=sys.stderr)
        return 2
    from agent.engines.nlu.pipeline import Understander

    try:
        understander = Understander.from_config(cfg)
    except (EngineError, ConfigError) as exc:
        print(f"medagent triage: {exc}", file=sys.stderr)
        return 2
    u = understander.understand(text, now=datetime.now(ZoneInfo(cfg.practice.timezone)))
    reading = understander.protocol_reading(text, lang=u.lang)
    report = explain(book, u, reading)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_explanation(report))
    return 0


def explain(book: Any, u: Any, reading: Any) -> dict[str, Any]:
    """What ``format_explanation`` prints, as data."""
    guess = reading.guess
    protocol = book[u.protocol] if u.protocol else None
    answered = {f.rule_id for f in u.red_flags}
    questions: list[dict[str, Any]] = []
    acted = None
    if protocol is not None:
        for q in protocol.questions:
            rule = protocol.rule_id(q)
            if rule in answered:
                acted = {"question": q.id, "disposition": q.disposition, "ask": q.ask}
                break
            questions.append({"id": q.id, "ask": q.text(u.lang), "yes": q.disposition})
    return {
        "text": u.text,
        "lang": u.lang,
        "intent": u.intent,
        "urgency": u.urgency,
        "protocol": u.protocol,
        "protocol_title": protocol.title if protocol else None,
        "found_by": reading.by or None,
        "topics": [{"protocol": p, "probability": round(s, 3)} for p, s in guess.ranked]
        if guess
        else [],
        # The closest training sentence of the protocols in the running (their signs were looked
        # for too); when it is a yes to a question and close enough, it raised the urgency.
        "nearest_example": (
            {
                "text": reading.near.text,
                "protocol": reading.near.protocol,
                "disposition": reading.near.disposition,
                "similarity": round(reading.near.similarity, 3),
            }
            if reading.near
            else None
        ),
        "running": list(reading.running),
        "red_flags": [
            {"rule": f.rule_id, "urgency": f.urgency, "label": f.label, "matched": f.matched}
            for f in u.red_flags
        ],
        "answered_yes": acted,
        "would_ask": [] if acted or u.urgency == "emergency" else questions,
        "details": [d.text(u.lang) for d in protocol.details] if protocol else [],
        "file": protocol.file if protocol else None,
    }


def format_explanation(r: dict[str, Any]) -> str:
    lines = [f"caller: {r['text']!r} ({r['lang']})", f"intent: {r['intent']}"]
    if r["protocol"]:
        lines.append(
            f"protocol: {r['protocol']} ({r['protocol_title']}), found by {r['found_by']}; "
            f"file {r['file']}"
        )
    else:
        lines.append("protocol: none (not read as a health problem)")
    if r["topics"]:
        lines.append(
            "topic model: "
            + ", ".join(f"{t['protocol']} {t['probability']:.2f}" for t in r["topics"])
        )
    near = r["nearest_example"]
    if near:
        said = f", a yes to a {near['disposition']} question" if near["disposition"] else ""
        lines.append(
            f"closest example in {', '.join(r['running'])}: {near['text']!r} ({near['protocol']}{said}; "
            f"similarity {near['similarity']:.2f})"
        )
    for f in r["red_flags"]:
        lines.append(f"red flag [{f['urgency']}] {f['rule']}: {f['label']} <- {f['matched']!r}")
    lines.append(f"urgency acted on: {r['urgency']}")
    if r["answered_yes"]:
        a = r["answered_yes"]
        lines.append(f"already a yes to {a['question']!r} ({a['disposition']}): {a['ask']}")
    if r["urgency"] == "emergency":
        lines.append(
            "the agent says at once: hang up and dial 911; then offers the on-call clinician"
        )
    for n, q in enumerate(r["would_ask"], 1):
        lines.append(f"would ask {n}: {q['ask']}  (yes -> {q['yes']})")
    for d in r["details"]:
        lines.append(f"then, for the record: {d}")
    return "\n".join(lines)
