"""The nurse line's protocol in the dialog, turn by turn: the questions in order, the first yes
acts, signs said unasked count, and a caller who cannot answer a safety question reaches a
clinician. Pure: the understanding of each turn is written by the test."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from agent.core.dialog.commands import (
    CallStarted,
    Command,
    Heard,
    Listen,
    SaveRecord,
    Say,
    Transfer,
)
from agent.core.dialog.machine import Dialog, DialogSettings, State
from agent.core.protocols import ProtocolBook
from agent.core.triage import Triage
from agent.core.understanding import Entity, RedFlag, Understanding
from agent.engines.nlu.protocol_files import PROTOCOL_DIR

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
UTI = (PROTOCOL_DIR / "base" / "urinary_symptoms.toml").read_text()
BOOK = ProtocolBook.from_sources([("base/urinary_symptoms.toml", UTI)])
SETTINGS = DialogSettings(
    greeting="Hello, practice.", on_call=("PJSIP/clinician100",), protocols=BOOK
)
ASK = {q.id: q.ask for q in BOOK["urinary_symptoms"].questions}


def heard(text: str, intent: str = "symptoms", *, yes: bool | None = None, **v: Any) -> Heard:
    """A turn as the understander gives it: the protocol named for health words, the protocol's
    signs (and only those) as red flags, a yes/no reading when ``yes`` is given."""
    flags = Triage.flags_of(BOOK.rules("urinary_symptoms"), text)
    urgency = (
        "emergency"
        if any(f.urgency == "emergency" for f in flags)
        else ("urgent" if flags else "routine")
    )
    ents = [Entity(k, text, val) for k, val in v.items()]
    if yes is not None:
        ents.append(Entity("yes_no", text, yes))
    protocol = "urinary_symptoms" if intent == "symptoms" or flags else None
    u = Understanding(text, "en", intent, 0.9, urgency, flags, ents, protocol=protocol)  # type: ignore[arg-type]
    return Heard(NOW, u)


def said(cmds: list[Command]) -> list[str]:
    return [c.text for c in cmds if isinstance(c, Say)]


def start() -> Dialog:
    d = Dialog(SETTINGS)
    d.handle(CallStarted(NOW, caller_number="5550100"))
    return d


def test_the_after_hours_uti_call_asks_the_questions_then_sends_a_same_day_callback() -> None:
    d = start()
    out = d.handle(heard("it burns when I pee and I keep having to go"))
    # Burning is a same-day sign: not a transfer now; the more severe questions come first.
    assert d.state is State.ASK and said(out)[-1] == ASK["shock"]
    assert isinstance(out[-1], Listen) and out[-1].expect == "yes_no"
    assert said(d.handle(heard("no", yes=False)))[-1] == ASK["kidney"]
    assert said(d.handle(heard("no, no fever", yes=False)))[-1] == ASK["retention"]
    out = d.handle(heard("no I can pee", yes=False))
    # Burning was said already: that question is a yes without being asked; now the details.
    assert ASK["symptoms_now"] not in said(out) and said(out)[-1] == "When did it start?"
    out = d.handle(heard("since yesterday morning"))
    assert said(out)[-1] == "Is the patient allergic to any medicines?"
    out = d.handle(heard("penicillin"))
    out = d.handle(heard("about a five", severity=5))
    out = d.handle(heard("5551234567", phone="5551234567"))
    assert "on-call clinician" in said(out)[-1] and "since yesterday morning" in said(out)[-1]
    out = d.handle(heard("yes", yes=True))
    record = next(c for c in out if isinstance(c, SaveRecord))
    assert record.urgent and record.data["disposition"] == "same_day"
    assert record.data["notify"] == "on_call_callback_today"
    assert record.data["protocol"] == "urinary_symptoms"
    assert record.data["answers"][ASK["kidney"]] is False
    assert record.data["answers"][ASK["symptoms_now"]] is True
    assert record.data["detail:allergies"] == "penicillin"
    assert any("call you back today" in t for t in said(out))


def test_a_yes_to_a_see_now_question_puts_the_on_call_clinician_through_at_once() -> None:
    d = start()
    d.handle(heard("I think I have a bladder infection"))
    d.handle(heard("no", yes=False))
    out = d.handle(heard("yes", yes=True))
    transfer = next(c for c in out if isinstance(c, Transfer))
    assert transfer.targets == ("PJSIP/clinician100",) and d.state is State.TRANSFERRING


def test_a_yes_to_the_911_question_is_the_emergency_instruction_first() -> None:
    d = start()
    d.handle(heard("my mother's urine smells strong and she's been going a lot"))
    out = d.handle(heard("yes", yes=True))
    assert "dial 9 1 1" in said(out)[0] and d.state is State.EMERGENCY_OFFER
    assert out[0].barge_in is False  # type: ignore[union-attr]


def test_a_sign_of_the_question_asked_is_a_yes_without_the_word() -> None:
    d = start()
    d.handle(heard("I think I have a bladder infection"))
    d.handle(heard("no", yes=False))
    # "Fever, chills, vomiting or back pain?" answered with one of them, no "yes".
    out = d.handle(heard("I've been having chills all night"))
    assert any(isinstance(c, Transfer) for c in out)


def test_a_caller_who_cannot_answer_a_safety_question_reaches_a_clinician() -> None:
    d = start()
    d.handle(heard("I think I have a bladder infection"))
    out = d.handle(heard("what do you mean"))
    assert said(out)[-1] == ASK["shock"]  # asked again once
    out = d.handle(heard("I don't know, maybe, she's just not herself"))
    assert any(isinstance(c, Transfer) for c in out) and d.state is State.TRANSFERRING


def test_all_no_is_a_nurse_message_with_the_protocols_care_advice() -> None:
    d = start()
    d.handle(heard("I think I have a bladder infection"))
    for _ in ASK:
        out = d.handle(heard("no", yes=False))
    assert said(out)[-1] == "When did it start?"
    for text, v in (("two days", {}), ("none", {}), ("three", {"severity": 3})):
        d.handle(heard(text, **v))
    d.handle(heard("5551234567", phone="5551234567"))
    out = d.handle(heard("yes", yes=True))
    record = next(c for c in out if isinstance(c, SaveRecord))
    assert not record.urgent and record.data["disposition"] == "routine"
    assert BOOK["urinary_symptoms"].advice in said(out)


def test_a_same_day_sign_during_another_request_starts_the_symptom_call() -> None:
    d = start()
    # The intent model read a booking; the words carry a same-day sign.
    out = d.handle(heard("can I come in, it stings when I pee", intent="schedule"))
    assert d.task is not None and d.task.kind == "symptoms"
    assert said(out)[-1] == ASK["shock"]


def test_without_a_recognised_protocol_the_general_safety_question_is_asked() -> None:
    d = start()
    u = heard("I have a weird feeling I can't describe").understanding
    out = d.handle(Heard(NOW, replace(u, protocol=None, red_flags=[], urgency="routine")))
    assert "One safety question first" in said(out)[-1]


def test_suicidal_talk_hears_the_crisis_line_as_well_as_911() -> None:
    d = start()
    flag = RedFlag("suicidal_thoughts.plan", "emergency", "Suicidal thoughts", "end it")
    u = Understanding("I want to end it", "en", "symptoms", 0.9, "emergency", [flag])
    out = d.handle(Heard(NOW, u))
    assert "9 8 8" in said(out)[0] and "9 1 1" in said(out)[0]


def test_a_clear_other_request_with_a_same_day_sign_is_done_as_asked_and_marked_for_today() -> None:
    d = start()
    d.handle(heard("I need a refill of my pills, it burns when I pee", intent="refill"))
    assert d.task is not None and d.task.kind == "refill"
    assert d.task.disposition == "same_day"  # its record goes to the on-call clinician's list
