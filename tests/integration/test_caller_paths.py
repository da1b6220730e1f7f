"""Patients' experience: callers who do not follow our order of questions.

Each call is replayed in text (``agent.runtime.replay``) through the real understander (the trained
intent model and the triage and entity rules) and the real dialog, with the demo directory and
schedule, at a fixed Tuesday evening clock. The checks are what a patient or a front-desk person
would expect to hear, on the agent's words (case-insensitive substrings that survive rewording),
not on internal states.

The last test drives the pure dialog with hand-made understandings: callers who answer, ask
office questions, say "repeat that" or "go back", fall silent, ramble or correct themselves, in
any order, with at most one emergency somewhere; the safety rules and "no task silently lost"
must hold on every path.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from agent.config import Config, load_config
from agent.core.dialog.commands import (
    Appointment,
    AppointmentCancelled,
    AppointmentsListed,
    Booked,
    BookSlot,
    CallerHungUp,
    CallStarted,
    CancelAppointment,
    Command,
    Event,
    FindSlots,
    Heard,
    ListAppointments,
    Listen,
    LookupPatient,
    NothingHeard,
    PatientLookedUp,
    RescheduleAppointment,
    Rescheduled,
    SaveRecord,
    Say,
    Slot,
    SlotsFound,
    Transfer,
    TransferEnded,
)
from agent.core.dialog.machine import Dialog, DialogSettings, State
from agent.core.understanding import Entity, RedFlag, Understanding, Urgency
from agent.runtime.call import dialog_settings
from agent.runtime.replay import Replay, replay

# The replays load the trained intent model, as tests/integration/test_nlu_model.py does; the
# property test at the end needs no model but is part of this set of caller paths.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.fromisoformat("2026-12-01T19:30:00-05:00")
"""A Tuesday evening, office closed: Thursday morning and Friday have open slots."""
Call = Callable[[Sequence[str]], Replay]
"""Replays a caller's lines as one call (the ``call`` fixture)."""
Story = Sequence[tuple[str, str]]
"""(words of a question, the caller's answer to it)."""
POLICY = "Please give us 24 hours' notice, or a 25 dollar fee applies."

REFILL = "I need a refill"
BOOK = "I'd like to book an appointment"
LINDA = ("Linda Garcia", "July 21st, 1975")
"""A demo patient: born 1975-07-21, on atorvastatin 20 mg and amlodipine 5 mg."""


@pytest.fixture(scope="module")
def cfg() -> Config:
    base = load_config(None)
    model = Path(base.nlu.model_dir)
    if not model.is_absolute():
        model = ROOT / model
    if not model.is_dir():
        pytest.skip("no trained intent model: run `make nlu-model`")
    return dataclasses.replace(
        base,
        nlu=dataclasses.replace(base.nlu, model_dir=str(model)),
        practice=dataclasses.replace(base.practice, cancellation_policy=POLICY),
    )


@pytest.fixture(scope="module")
def understander(cfg: Config) -> object:
    from agent.engines.nlu.pipeline import Understander

    return Understander.from_config(cfg)


@pytest.fixture
def call(cfg: Config, understander: object) -> Call:
    """Replay the caller's lines; the reply is the ``Replay`` (``.agent[i]``: what the agent said
    after line ``i``)."""

    def run(lines: Sequence[str]) -> Replay:
        return replay(
            lines, understander, dialog_settings(cfg), cfg, now=NOW, on_call=cfg.transfer.on_call
        )

    return run


def said(r: Replay, i: int) -> str:
    """Everything the agent said after caller line ``i``, lower-cased, for substring checks."""
    return " ".join(r.agent[i]).lower()


def transcript(lines: Sequence[str], r: Replay) -> str:
    """The call as both sides spoke it, for a failing assertion's message."""
    out = []
    for i, line in enumerate(lines):
        out.append(f"CALLER: {line}")
        out += [f"  AGENT: {t}" for t in (r.agent[i] if i < len(r.agent) else [])]
    out.append(f"ended_after={r.ended_after} on_call_after={r.on_call_after}")
    return "\n".join(out)


def last_question(r: Replay, i: int) -> str:
    return r.agent[i][-1]


def says_time(text: str, clock: str) -> bool:
    """``clock`` ("4pm") said in any of the agent's ways: "4 PM", "4 p.m.", "4 P M"."""
    return clock in re.sub(r"[\s.]", "", text.lower())


STAFF_WORDS = ("front desk", "staff", "person", "message")
NOT_UNDERSTOOD = "didn't catch"

STORY = (
    ("first and last name", LINDA[0]),
    ("date of birth", LINDA[1]),
    ("visit for", "a check-up for my blood pressure"),
    ("provider", "whoever is available first"),
    ("insurance", "Aetna"),
    ("member id", "I don't have it with me"),
    ("best number", "555 123 4567"),
    ("usually work", "weekday mornings"),
)
"""How a caller answers the questions that come before the one a test is about (by words of
the question): the agent may ask more of them, or in another order, and the test still holds."""


def go_on_until(call: Call, lines: Sequence[str], asks: str, story: Story = STORY) -> list[str]:
    """``lines``, then the caller's answers from ``story`` until the agent asks a question with
    the words ``asks``."""
    lines = list(lines)
    for _ in range(10):
        r = call(lines)
        question = last_question(r, len(lines) - 1).lower()
        if asks in question:
            return lines
        answer = next((a for cue, a in story if cue in question), None)
        assert answer is not None, f"never asked {asks!r}\n{transcript(lines, r)}"
        lines.append(answer)
    raise AssertionError(f"never asked {asks!r}\n{transcript(lines, r)}")


# -- identity ------------------------------------------------------------------------------------


def test_a_bare_name_then_the_birth_date_verifies_the_patient(call: Call) -> None:
    lines = [REFILL, "Linda Garcia.", "July 21st, 1975"]
    r = call(lines)
    why = transcript(lines, r)
    assert "name" in said(r, 0), why
    assert "birth" in said(r, 1), why
    assert "medication" in said(r, 2), why
    assert "couldn't find" not in said(r, 2), why


def test_sorry_what_repeats_the_name_question_and_is_not_taken_as_a_name(call: Call) -> None:
    lines = [REFILL, "Sorry, what?", *LINDA]
    r = call(lines)
    why = transcript(lines, r)
    assert last_question(r, 1) == last_question(r, 0), why
    assert "birth" not in said(r, 1), why
    # Had "what" been kept as a first name, the lookup would not have found Linda Garcia.
    assert "medication" in said(r, 3) and "couldn't find" not in said(r, 3), why


# -- asides, commands and corrections mid-task ---------------------------------------------------


def test_an_office_question_mid_booking_is_answered_and_the_booking_goes_on(call: Call) -> None:
    lines = go_on_until(call, [BOOK], asks="day and time")
    n = len(lines)
    lines += ["wait, what time do you close on Friday?", "Thursday morning", "the first one", "yes"]
    r = call(lines)
    why = transcript(lines, r)
    day_and_time = last_question(r, n - 1)
    assert "day" in day_and_time.lower(), why
    assert says_time(said(r, n), "4pm"), why
    assert last_question(r, n) == day_and_time, why
    assert "thursday" in said(r, n + 1) and "which" in said(r, n + 1), why
    assert "thursday" in said(r, n + 2) and "right" in said(r, n + 2), why
    assert "all set" in said(r, n + 3) or "booked" in said(r, n + 3), why
    assert r.ended_after is None, why


def test_a_correction_right_after_booking_moves_the_appointment(call: Call) -> None:
    lines = go_on_until(call, [BOOK], asks="day and time")
    n = len(lines)
    lines += [
        "Thursday morning",
        "the first one",
        "yes",
        "No, wait! Friday",
        "the first one",
        "yes",
    ]
    r = call(lines)
    why = transcript(lines, r)
    assert "thursday" in said(r, n + 2) and "anything else" in said(r, n + 2), why
    assert "goodbye" not in said(r, n + 3) and r.ended_after is None, why
    assert "friday" in said(r, n + 3), why
    assert "friday" in said(r, n + 4) and "move" in said(r, n + 4), why
    assert "friday" in said(r, n + 5), why
    assert "moved" in said(r, n + 5) or "now" in said(r, n + 5), why


def test_repeat_that_and_go_back_at_the_pharmacy_question(call: Call) -> None:
    lines = [REFILL, *LINDA, "atorvastatin", "20 mg", "repeat that", "go back"]
    r = call(lines)
    why = transcript(lines, r)
    strength, pharmacy = last_question(r, 3), last_question(r, 4)
    assert "strength" in strength.lower() or "milligram" in strength.lower(), why
    assert "pharmacy" in pharmacy.lower(), why
    assert last_question(r, 5) == pharmacy, why
    assert last_question(r, 6) == strength, why


def test_start_over_mid_booking_then_a_refill_works(call: Call) -> None:
    lines = [BOOK, "Linda Garcia", "start over", REFILL, *LINDA]
    r = call(lines)
    why = transcript(lines, r)
    assert "start over" in said(r, 2) or "how can i help" in said(r, 2), why
    assert "name" in said(r, 3), why
    assert "medication" in said(r, 5) and "couldn't find" not in said(r, 5), why


# The replay starts every call as in office hours (``CallStarted``'s default), so a person is the
# front desk here; after hours the same words leave a message for staff: either will do.
def test_operator_at_the_first_question_reaches_staff(call: Call) -> None:
    lines = ["operator"]
    r = call(lines)
    why = transcript(lines, r)
    assert any(w in said(r, 0) for w in STAFF_WORDS), why
    assert NOT_UNDERSTOOD not in said(r, 0), why


def test_operator_mid_refill_reaches_staff(call: Call) -> None:
    lines = [REFILL, *LINDA, "operator"]
    r = call(lines)
    why = transcript(lines, r)
    assert "medication" in said(r, 2), why
    assert any(w in said(r, 3) for w in STAFF_WORDS), why
    assert NOT_UNDERSTOOD not in said(r, 3), why


# -- office questions and feelings ---------------------------------------------------------------


def test_a_cancellation_fee_question_first_is_answered_with_the_policy(call: Call) -> None:
    lines = ["is there a fee if I cancel?"]
    r = call(lines)
    why = transcript(lines, r)
    assert "24 hours" in said(r, 0) and "fee" in said(r, 0), why


def test_a_cancellation_fee_question_mid_booking_is_answered_with_the_policy(call: Call) -> None:
    lines = [BOOK, "Linda Garcia", "is there a fee if I cancel?"]
    r = call(lines)
    why = transcript(lines, r)
    assert "24 hours" in said(r, 2) and "fee" in said(r, 2), why
    assert "birth" in last_question(r, 2).lower(), why


def test_an_upset_caller_hears_an_apology_and_gets_a_person(call: Call) -> None:
    lines = ["I'm so upset, nobody ever calls me back", "yes"]
    r = call(lines)
    why = transcript(lines, r)
    assert "sorry" in said(r, 0), why
    assert "person" in said(r, 0) or "staff" in said(r, 0), why
    assert any(w in said(r, 1) for w in STAFF_WORDS), why
    assert NOT_UNDERSTOOD not in said(r, 1), why


# -- safety --------------------------------------------------------------------------------------


def test_an_overdose_told_at_the_name_question_gets_911_at_once(call: Call) -> None:
    lines = [
        BOOK,
        "I took the rest of my antidepressants and my roommate's pills two hours ago "
        "and I'm getting really sleepy",
    ]
    r = call(lines)
    why = transcript(lines, r)
    assert "name" in said(r, 0), why
    assert "9 1 1" in r.agent[1][0], why
    assert "birth" not in said(r, 1), why
    assert r.emergency_after == 1, why


def test_a_suicidal_caller_is_never_hung_up_on(call: Call) -> None:
    lines = [
        "I've been thinking about killing myself",
        "no",
        "I'm just really tired of everything",
    ]
    r = call(lines)
    why = transcript(lines, r)
    assert "9 8 8" in said(r, 0) and "9 1 1" in said(r, 0), why
    # "No" to the clinician is not the end of the call: the crisis line again, still listening.
    assert r.ended_after is None, why
    assert "9 8 8" in said(r, 1), why
    # Put through to the on-call clinician (``on_call_after`` was set by the urgent record of
    # the first line already; the words say where this turn went).
    assert "clinician" in said(r, 2) and "connect" in said(r, 2), why
    assert r.on_call_after is not None, why
    assert not any("goodbye" in said(r, i) for i in range(len(lines))), why


# -- new patients --------------------------------------------------------------------------------


NEW_PATIENT = (
    ("first and last name", "John Smith"),
    ("date of birth", "May 5th, 1980"),
    *STORY[2:],
)
"""Someone the directory does not know, and who says so."""


def test_a_new_patient_is_not_looked_up_and_gives_name_birth_date_and_phone(call: Call) -> None:
    opening = "I'm a new patient and I'd like to establish care"
    lines = [*go_on_until(call, [opening], asks="is that right", story=NEW_PATIENT), "yes"]
    r = call(lines)
    why = transcript(lines, r)
    asked = " ".join(said(r, i) for i in range(len(lines) - 1))
    assert "name" in asked and "birth" in asked and "number" in asked, why
    # Not looked up as an existing patient, and not sent to the front desk after re-asks.
    assert "couldn't find" not in asked and NOT_UNDERSTOOD not in asked, why
    assert not any(w in asked for w in ("put you through", "connecting")), why
    read_back = said(r, len(lines) - 2)
    assert "john smith" in read_back and "5 5 5" in read_back, why
    assert "anything else" in said(r, len(lines) - 1) and r.ended_after is None, why


# -- any order, on the pure dialog ---------------------------------------------------------------

AT = datetime(2026, 12, 2, 0, 30, tzinfo=UTC)
PURE = DialogSettings(
    greeting="Hello, practice.",
    on_call=("PJSIP/clinician100",),
    front_desk="PJSIP/frontdesk",
    faq={"hours": "We are open eight to five."},
    cancellation_policy=POLICY,
)
CHEST = RedFlag("chest_pain", "emergency", "chest pain", "crushing chest pain")
SLOTS = tuple(
    Slot(f"s{h}", "patel", "Doctor Patel", datetime(2026, 12, 3, h, 0, tzinfo=UTC))
    for h in (13, 14, 15)
)
FRIDAY = Slot("s9", "patel", "Doctor Patel", datetime(2026, 12, 4, 14, 0, tzinfo=UTC))
BOOKED = Appointment("a1", SLOTS[0], "follow-up")


def heard(
    text: str,
    intent: str = "message",
    confidence: float = 0.6,
    *,
    urgency: Urgency = "routine",
    flags: Sequence[RedFlag] = (),
    entities: Sequence[Entity] = (),
) -> Heard:
    u = Understanding(text, "en", intent, confidence, urgency, list(flags), list(entities))
    return Heard(AT, u)


YES = heard("yes that's right", entities=[Entity("yes_no", "yes", True)])
NO = heard("no, that's all", entities=[Entity("yes_no", "no", False)])
ANSWERS = {
    "name": heard("jane doe", entities=[Entity("person", "jane doe", "jane doe")]),
    "dob": heard("march 4 1962", entities=[Entity("dob", "march 4 1962", "1962-03-04")]),
    "provider": heard("anyone is fine"),
    "preferences": heard("thursday afternoon", entities=[Entity("date", "thursday", "2026-12-03")]),
    "slot": heard("the first one"),
    "appointment": heard("the first one"),
    "medication": heard("lisinopril", entities=[Entity("medication", "lisinopril", "lisinopril")]),
    "strength": heard("10 mg", entities=[Entity("dose", "10 mg", "10 mg")]),
    "pharmacy": heard("the cvs on main street", entities=[Entity("pharmacy", "cvs", "CVS")]),
    "supply": heard("ninety days"),
    "correction": heard("the time"),
}
"""A cooperative answer to each question a refill or a booking asks."""
REQUESTS = {
    "refill": heard("i need a refill of my lisinopril", "refill", 0.95),
    "schedule": heard("i'd like to book an appointment", "schedule", 0.95),
}
ASIDES = {
    "office question": heard("wait, what are your hours?", "office_info", 0.95),
    "repeat": heard("repeat that", "message", 0.4),
    "back": heard("go back", "message", 0.4),
    "unrelated": heard("my cat knocked over the plant", "message", 0.3),
    "correction": heard(
        "no, wait, I meant friday",
        entities=[Entity("yes_no", "no", False), Entity("date", "friday", "2026-12-04")],
    ),
}
EMERGENCY = heard("I have crushing chest pain", "symptoms", 0.9, urgency="emergency", flags=[CHEST])
TURNS = ("answer",) * 4 + ("silence", *ASIDES)
"""What the caller does at each turn: mostly answer, so the walk gets to the end of its task."""


def cooperative(d: Dialog, kind: str) -> Heard:
    """What a caller who goes along says now."""
    if d.state is State.ASK and d.task is not None:
        return ANSWERS.get(d.task.asking, YES)
    if d.state in (State.CONFIRM, State.EMERGENCY_OFFER):
        return YES
    if d.state is State.ANYTHING_ELSE:
        return NO
    if d.state in (State.MESSAGE, State.URGENT_MESSAGE):
        return heard("please call me back at this number about it")
    return REQUESTS[kind]


def answered(command: Command) -> Event | None:
    """The call session's answer to a data command or a transfer: everything works."""
    if isinstance(command, LookupPatient):
        return PatientLookedUp(AT, True, "p1", ("lisinopril",))
    if isinstance(command, FindSlots):
        friday = "2026-12-04" in command.preferences.dates
        return SlotsFound(AT, (FRIDAY,) if friday else SLOTS)
    if isinstance(command, BookSlot):
        return Booked(AT, True, Appointment("a1", command.slot, command.appointment_type))
    if isinstance(command, ListAppointments):
        return AppointmentsListed(AT, (BOOKED,))
    if isinstance(command, RescheduleAppointment):
        return Rescheduled(AT, True, Appointment("a1", command.slot, BOOKED.appointment_type))
    if isinstance(command, CancelAppointment):
        return AppointmentCancelled(AT, True)
    if isinstance(command, Transfer):
        return TransferEnded(AT, "answered", command.targets[0])
    return None


@hypothesis.settings(max_examples=200, deadline=None, derandomize=True)
@hypothesis.given(kind=st.sampled_from(sorted(REQUESTS)), data=st.data())
def test_any_order_of_caller_turns_keeps_the_safety_rules_and_the_task(
    kind: str, data: st.DataObject
) -> None:
    d = Dialog(PURE)
    out = d.handle(CallStarted(AT, caller_number="5551234567", office_open=False))
    out = d.handle(REQUESTS[kind])
    records: list[SaveRecord] = [c for c in out if isinstance(c, SaveRecord)]
    # At most one emergency, at a random caller turn (or none).
    emergency_at = data.draw(st.none() | st.integers(0, 12), label="emergency at")
    emergency_said = False
    turns = 0
    for _ in range(40):
        follow = answered(out[-1])
        if follow is None and not isinstance(out[-1], Listen):
            break  # the call ended: hung up, or handed back to the dialplan
        if follow is not None:
            event = follow
        else:
            turn = "emergency" if turns == emergency_at else data.draw(st.sampled_from(TURNS))
            turns += 1
            if turn == "answer":
                event = cooperative(d, kind)
            elif turn == "silence":
                event = NothingHeard(AT)
            elif turn == "emergency":
                event = EMERGENCY
            else:
                event = ASIDES[turn]
        out = d.handle(event)  # (b): whatever the order, no exception
        assert out, (d.state, event)
        records += [c for c in out if isinstance(c, SaveRecord)]
        if event is EMERGENCY:
            # (a): the 911 instruction first, heard whole, before anything else is said.
            emergency_said = True
            first = out[0]
            assert isinstance(first, Say) and "9 1 1" in first.text, out
            assert first.barge_in is False, out
        if d.state is State.ENDED:
            break
    # The caller hangs up now, whether the agent already ended the call or not.
    records += [c for c in d.handle(CallerHungUp(AT)) if isinstance(c, SaveRecord)]
    # (c): the request is done, kept for staff, or the call became an emergency: never dropped.
    kept = [r.kind for r in records if keeps(r, kind)]
    hypothesis.event(f"{kind}: {sorted(set(kept))} {'911' if emergency_said else ''}")
    assert kept, [(r.kind, r.data) for r in records]
    assert records[-1].kind == "summary"


def keeps(record: SaveRecord, kind: str) -> bool:
    """The record carries the caller's request: done, left for staff as a message (partial, or
    given up on), or the emergency it turned into."""
    if record.kind == "message":
        return record.data.get("intent") in FOLLOW_UPS[kind]
    return record.kind in ("refill", "appointment", "emergency")


FOLLOW_UPS = {"refill": ("refill",), "schedule": ("schedule", "reschedule")}
"""The tasks a request can become: "no, wait, Friday" right after a booking moves it."""


# -- Spanish --------------------------------------------------------------------------------------

ENGLISH_WORDS = re.compile(r"\b(?:the|your|please|appointment|is that right|goodbye|sorry|you)\b")


def test_a_spanish_caller_books_and_leaves_a_refill_hearing_only_spanish(call: Call) -> None:
    lines = [
        "Buenas noches. Necesito una cita con el doctor, por favor.",
        "Linda Garcia.",
        "21 de julio de 1975",
        "Para un chequeo general.",
        "Cualquiera.",
        "El jueves en la mañana.",
        "La primera.",
        "Sí, está bien.",
        "Sí. También necesito un refill de mi atorvastatina.",
        "De 20 miligramos.",
        "La CVS de Main Street.",
        "Me quedan cinco días.",
        "No tengo alergias.",
        "Sí, es correcto.",
        "No, gracias. Adiós.",
    ]
    r = call(lines)
    why = transcript(lines, r)
    # After the caller's first words, every word the agent says is Spanish.
    for i in range(len(lines)):
        assert not ENGLISH_WORDS.search(said(r, i)), why
    assert "jueves" in said(r, 5) and "¿cuál prefiere?" in said(r, 5), why
    assert "su cita quedó para el jueves" in said(r, 7), why
    assert "atorvastatin" in said(r, 13 - 1) and "cvs" in said(r, 12), why
    assert "resurtido" in said(r, 13), why
    assert "gracias por llamar" in said(r, 14) and r.ended_after is None, why
