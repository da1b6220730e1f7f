"""The dialog machine: pure, driven by events, no loop, no clock."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.dialog.commands import (
    Appointment,
    AppointmentCancelled,
    AppointmentsListed,
    Booked,
    BookSlot,
    CallerHungUp,
    CallStarted,
    CancelAppointment,
    DataCommand,
    DtmfReceived,
    FindSlots,
    HandBack,
    Hangup,
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
from agent.core.dialog.machine import TABLE, Dialog, DialogSettings, IllegalTransition, State
from agent.core.understanding import Entity, RedFlag, Understanding

NOW = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
SETTINGS = DialogSettings(
    greeting="Hello, practice.",
    emergency_number="911",
    on_call=("PJSIP/clinician100", "PJSIP/clinician101"),
    front_desk="PJSIP/frontdesk",
    faq={"hours": "We are open eight to five."},
)


def u(
    text: str,
    intent: str = "message",
    urgency: str = "routine",
    conf: float = 0.9,
    flags=(),
    yes=None,
) -> Heard:
    ents = [Entity("yes_no", text, yes)] if yes is not None else []
    return Heard(
        NOW,
        Understanding(
            text=text,
            lang="en",
            intent=intent,
            confidence=conf,
            urgency=urgency,
            red_flags=list(flags),
            entities=ents,
        ),  # type: ignore[arg-type]
    )


CHEST = RedFlag("chest_pain", "emergency", "chest pain", "chest pain")
RASH = RedFlag("fever_with_rash", "urgent", "fever with rash", "fever and a rash")


def started() -> Dialog:
    d = Dialog(SETTINGS)
    out = d.handle(CallStarted(NOW, caller_number="5551234567"))
    # The emergency line first, heard whole; then the practice's greeting, which can be talked over.
    assert out[0] == Say("For emergencies, dial 9 1 1.", "emergency_line", False)
    assert isinstance(out[1], Say) and out[1].prompt_key == "greeting" and out[1].barge_in
    assert isinstance(out[-1], Listen)
    return d


def test_emergency_first_turn_says_911_uninterruptibly_then_offers_on_call() -> None:
    d = started()
    out = d.handle(u("i have crushing chest pain", "symptoms", "emergency", flags=[CHEST]))
    first = out[0]
    assert isinstance(first, Say) and "9 1 1" in first.text and first.barge_in is False
    assert any(isinstance(c, SaveRecord) and c.kind == "emergency" for c in out)
    assert not any(isinstance(c, SaveRecord) and c.kind == "message" for c in out), (
        "never queue an emergency"
    )
    assert d.state is State.EMERGENCY_OFFER
    out = d.handle(u("yes please", yes=True))
    transfer = next(c for c in out if isinstance(c, Transfer))
    assert transfer.targets == SETTINGS.on_call and "chest_pain" in transfer.summary


def test_emergency_declined_repeats_911_and_hangs_up() -> None:
    d = started()
    d.handle(u("my son is not breathing", "symptoms", "emergency", flags=[CHEST]))
    out = d.handle(DtmfReceived(NOW, "2"))
    assert "9 1 1" in out[0].text and isinstance(out[-1], Hangup)


def test_urgent_goes_to_on_call_with_summary_and_falls_back_to_urgent_message() -> None:
    d = started()
    out = d.handle(u("fever and a rash", "symptoms", "urgent", flags=[RASH]))
    t = next(c for c in out if isinstance(c, Transfer))
    assert "fever with rash" in t.summary and "5 5 5" in t.summary
    out = d.handle(TransferEnded(NOW, "no_answer", "PJSIP/clinician101"))
    assert d.state is State.URGENT_MESSAGE
    out = d.handle(u("this is ann, call me at 555 1234, the rash is spreading"))
    rec = next(c for c in out if isinstance(c, SaveRecord))
    assert rec.kind == "message" and rec.urgent


def test_message_is_taken_read_back_then_goodbye() -> None:
    d = started()
    out = d.handle(u("i want to leave a message for doctor patel", "message"))
    assert d.state is State.MESSAGE
    out = d.handle(u("john smith, please call me about my knee"))
    saved = next(c for c in out if isinstance(c, SaveRecord))
    assert (
        saved.kind == "message"
        and saved.data["message"] == "john smith, please call me about my knee"
    )
    assert any(isinstance(c, Say) and "call me about my knee" in c.text for c in out), "read back"
    out = d.handle(u("no thanks", yes=False))
    assert isinstance(out[-1], Hangup)


def test_two_requests_in_one_call() -> None:
    d = started()
    d.handle(u("please take a message", "message"))
    d.handle(u("jane doe, call me back about my bill"))
    out = d.handle(u("what are your hours", "office_info", conf=0.95))
    assert any(isinstance(c, Say) and "eight to five" in c.text for c in out)
    assert [r["intent"] for r in d.requests] == ["message", "office_info"]


def test_reprompts_twice_then_offers_a_person() -> None:
    d = started()
    assert d.handle(u("mumble", conf=0.1))[0].prompt_key == "didnt_catch"
    assert d.handle(u("mumble", conf=0.1))[0].prompt_key == "didnt_catch_again"
    out = d.handle(u("mumble", conf=0.1))
    assert isinstance(out[-1], HandBack)


def test_silent_caller_is_handed_to_staff_not_left_hanging() -> None:
    d = started()
    d.handle(NothingHeard(NOW))
    d.handle(NothingHeard(NOW))
    out = d.handle(NothingHeard(NOW))
    assert isinstance(out[-1], HandBack) and out[-1].reason == "no_input"


def test_speak_to_staff_and_zero() -> None:
    d = started()
    out = d.handle(u("can i talk to a person", "speak_to_staff"))
    assert next(c for c in out if isinstance(c, Transfer)).targets == ("PJSIP/frontdesk",)
    d2 = started()
    assert any(isinstance(c, Transfer) for c in d2.handle(DtmfReceived(NOW, "0")))


def test_hangup_mid_request_keeps_partial_as_message() -> None:
    d = started()
    d.handle(u("i'd like to book", "schedule"))
    out = d.handle(CallerHungUp(NOW))
    partial = next(c for c in out if isinstance(c, SaveRecord) and c.kind == "message")
    assert partial.data["partial"] is True and partial.data["intent"] == "schedule"
    assert d.state is State.ENDED


def test_illegal_transition_raises_and_keeps_state() -> None:
    d = started()
    with pytest.raises(IllegalTransition):
        d.handle(TransferEnded(NOW, "answered"))
    assert d.state is State.REQUEST


def test_every_live_state_has_a_hangup_row() -> None:
    for state in State:
        assert (state, CallerHungUp) in TABLE, state


_SLOT = Slot("s1", "patel", "Doctor Patel", datetime(2026, 12, 1, 9, 0))
_APPT = Appointment("a1", _SLOT, "follow-up")

_events = st.one_of(
    st.builds(
        lambda c, g, i: u(
            "x",
            i,
            g,
            conf=c,
            flags=[CHEST] if g == "emergency" else [RASH] if g == "urgent" else [],
        ),
        st.floats(0, 1),
        st.sampled_from(["routine", "routine", "urgent", "emergency"]),
        st.sampled_from(["refill", "schedule", "cancel", "reschedule", "billing", "symptoms"]),
    ),
    st.builds(
        lambda t: u(t, "message", "routine", conf=0.7),
        st.sampled_from(["jane doe", "the first one", "any time", "three", "this number", "no"]),
    ),
    st.just(
        Heard(
            NOW,
            Understanding(
                "march 4 1962",
                "en",
                "message",
                0.7,
                "routine",
                [],
                [Entity("dob", "", "1962-03-04")],
            ),
        )
    ),
    st.just(NothingHeard(NOW)),
    st.builds(lambda d: DtmfReceived(NOW, d), st.sampled_from("0123#")),
    st.builds(lambda s: TransferEnded(NOW, s), st.sampled_from(["answered", "busy", "no_answer"])),
    st.builds(lambda y: u("yes" if y else "no", yes=y), st.booleans()),
    st.builds(lambda f: PatientLookedUp(NOW, f, "p1" if f else ""), st.booleans()),
    st.builds(lambda n: SlotsFound(NOW, (_SLOT,) * n), st.integers(0, 3)),
    st.builds(lambda n: AppointmentsListed(NOW, (_APPT,) * n), st.integers(0, 2)),
    st.builds(lambda ok: Booked(NOW, ok, _APPT if ok else None), st.booleans()),
    st.builds(lambda ok: AppointmentCancelled(NOW, ok), st.booleans()),
    st.builds(lambda ok: Rescheduled(NOW, ok, _APPT if ok else None, failed=not ok), st.booleans()),
)
_WAITS = (Listen, Transfer, HandBack, Hangup, *typing.get_args(DataCommand))


@settings(max_examples=300, deadline=None)
@given(st.lists(_events, max_size=16))
def test_never_stuck_every_listen_or_end(events) -> None:
    """Whatever happens, every turn ends with the caller either listened to, transferred, handed
    back, hung up, or a data command the call session answers."""
    d = started()
    for ev in events:
        before = d.state
        try:
            out = d.handle(ev)
        except IllegalTransition:
            assert d.state is before
            continue
        if d.state is State.ENDED or (
            d.state is State.TRANSFERRING and isinstance(ev, TransferEnded)
        ):
            continue
        assert out and isinstance(out[-1], _WAITS), (d.state, out)
    d.handle(CallerHungUp(NOW))
    assert d.state is State.ENDED


def test_yes_with_a_new_request_is_handled_and_no_thats_all_ends_the_call() -> None:
    d = started()
    d.handle(u("please take a message", "message"))
    d.handle(u("jane doe, lisinopril"))
    assert d.state is State.ANYTHING_ELSE
    out = d.handle(u("yes, what are your office hours", "office_info", conf=0.9, yes=True))
    assert any(isinstance(c, Say) and "eight to five" in c.text for c in out)
    out = d.handle(u("no, that's all. thank you", "message", conf=0.7, yes=False))
    assert isinstance(out[-1], Hangup)


def test_closing_phrase_in_request_state_after_a_request() -> None:
    d = started()
    d.handle(u("what are your hours", "office_info"))
    d.handle(u("yes", yes=True))
    assert d.state is State.REQUEST
    out = d.handle(u("nothing else, goodbye", "message", conf=0.8))
    assert isinstance(out[-1], Hangup)


_RESULTS = {
    LookupPatient: st.builds(
        lambda f, failed: PatientLookedUp(
            NOW, f, "p1" if f else "", ("lisinopril",), failed=failed
        ),
        st.booleans(),
        st.booleans(),
    ),
    FindSlots: st.builds(
        lambda n, failed: SlotsFound(NOW, (_SLOT,) * n, failed=failed),
        st.integers(0, 3),
        st.booleans(),
    ),
    ListAppointments: st.builds(lambda n: AppointmentsListed(NOW, (_APPT,) * n), st.integers(0, 2)),
    BookSlot: st.builds(lambda ok: Booked(NOW, ok, _APPT if ok else None), st.booleans()),
    CancelAppointment: st.builds(lambda ok: AppointmentCancelled(NOW, ok), st.booleans()),
    RescheduleAppointment: st.builds(
        lambda ok: Rescheduled(NOW, ok, _APPT if ok else None), st.booleans()
    ),
}


_ANSWERS = {
    "name": ("jane doe", None),
    "dob": ("march 4 1962", Entity("dob", "", "1962-03-04")),
    "provider": ("anyone", None),
    "preferences": ("any time", None),
    "slot": ("the first one", None),
    "appointment": ("the first one", None),
    "medication": ("lisinopril", Entity("medication", "", "lisinopril")),
    "strength": ("10 mg", None),
    "pharmacy": ("the cvs", None),
    "supply": ("three days", None),
    "complaint": ("a sore throat", None),
    "screen": ("no", Entity("yes_no", "no", False)),
    "since": ("since monday", None),
    "severity": ("four", None),
    "phone": ("this number", None),
    "when": ("mornings", None),
    "correction": ("tuesday", Entity("date", "", "2026-12-01")),
    "reason": ("a checkup", None),
    "allergies": ("none", Entity("yes_no", "none", False)),
    "insurance": ("aetna", None),
    "member_id": ("w 1 2 3", None),
}


def _answer(asking: str) -> Heard:
    text, entity = _ANSWERS[asking]
    ents = [entity] if entity is not None else []
    return Heard(NOW, Understanding(text, "en", "message", 0.6, "routine", [], ents))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_workflows_never_stuck_when_data_commands_are_answered(data) -> None:
    """Like the call session: every data command is answered by its result; whatever the caller
    says, each turn ends waiting on something, and the call always ends cleanly."""
    d = started()
    out: list = []
    for _ in range(25):
        waiting = out[-1] if out else None
        if type(waiting) in _RESULTS:
            ev = data.draw(_RESULTS[type(waiting)])
        elif d.state is State.ASK and d.task is not None and data.draw(st.booleans()):
            # Mostly cooperative callers, so the walk gets deep into every workflow.
            ev = _answer(d.task.asking)
        else:
            ev = data.draw(_events)
        try:
            out = d.handle(ev)
        except IllegalTransition:
            out = []
            continue
        if d.state is State.ENDED:
            break
        if d.state is State.TRANSFERRING and isinstance(ev, TransferEnded):
            continue
        assert out and isinstance(out[-1], _WAITS), (d.state, out)
    d.handle(CallerHungUp(NOW))
    assert d.state is State.ENDED
