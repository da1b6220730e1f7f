"""Golden traces of the dialog: thousands of event sequences replayed against recorded output.

The dialog is pure, so what it does for a sequence of events is fully described by the commands it
returns and the state it is left in after each one. ``tests/data/dialog_golden.json`` holds those for
every sequence below, recorded from the machine as it was before its table was restructured; this
test replays the events and asserts every command (as its ``repr``: texts, prompt keys, barge-in,
record kinds and data in order, dial strings) and every state is still the same.

Sequences are generated systematically with a fixed seed, never at test time:

- a cooperative caller walks every workflow (booking, new patient, reschedule, cancel, refill,
  results, nurse line, message, billing, staff, office questions, emergency, urgent) under several
  practice settings and several answers from the directory and the schedule;
- at every step of each walk, one disruption is put in instead (an emergency, an urgent red flag,
  silence, each DTMF key, a yes, a no, a correction, a new request, a transfer result, a data result,
  a hang-up…), then the cooperative caller goes on for a few turns and hangs up;
- random walks mix everything.

Illegal events are part of the traces: the step records ``IllegalTransition`` and the state, which
must be the one before. To re-record after an intended behaviour change (never for a refactor):
``DIALOG_GOLDEN_RECORD=1 .venv/bin/python -m pytest tests/unit/test_dialog_golden.py``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

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
    DtmfReceived,
    Event,
    FindSlots,
    Heard,
    ListAppointments,
    LookupPatient,
    NothingHeard,
    PatientLookedUp,
    RescheduleAppointment,
    Rescheduled,
    Slot,
    SlotsFound,
    TransferEnded,
)
from agent.core.dialog.machine import Dialog, DialogSettings, IllegalTransition, ProviderInfo, State
from agent.core.understanding import Entity, RedFlag, Understanding

GOLDEN = Path(__file__).parent.parent / "data" / "dialog_golden.json"
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)

# ---------------------------------------------------------------------------------------------
# Practice settings the walks run under

_FULL = DialogSettings(
    greeting="Hello, practice.",
    on_call=("PJSIP/clinician100", "PJSIP/clinician101"),
    front_desk="PJSIP/frontdesk",
    billing="PJSIP/billing",
    providers=(
        ProviderInfo("patel", "Doctor Patel"),
        ProviderInfo("nguyen", "Doctor Nguyen", ("new patient", "physical")),
    ),
    cancellation_policy="Please give us 24 hours notice, or a fee may apply.",
    controlled_substances=frozenset({"oxycodone", "alprazolam"}),
    self_care={"sore throat": "Warm drinks and rest can help a sore throat."},
    faq={"hours": "We are open eight to five.", "address": "We are at 1 Main Street."},
)
SETTINGS: dict[str, DialogSettings] = {
    "full": _FULL,
    # Nobody to transfer to, no providers, no FAQ: the message and hand-back paths.
    "bare": DialogSettings(greeting="Hi."),
    "tight": DialogSettings(
        greeting="Hello.",
        emergency_number="112",
        on_call=("PJSIP/oncall",),
        front_desk="PJSIP/desk",
        providers=(ProviderInfo("kim", "Doctor Kim", ("physical",)),),
        max_reprompts=1,
        max_id_attempts=1,
        controlled_substances=frozenset({"lisinopril"}),
    ),
}

# ---------------------------------------------------------------------------------------------
# The events, by name (the golden file stores names)

CHEST = RedFlag("chest_pain", "emergency", "chest pain", "chest pain")
RASH = RedFlag("fever_with_rash", "urgent", "fever with rash", "fever and a rash")


def _heard(
    text: str,
    intent: str = "message",
    conf: float = 0.9,
    urgency: str = "routine",
    flags: tuple[RedFlag, ...] = (),
    **values: Any,
) -> Heard:
    ents = [Entity(label, text, value, 0, len(text)) for label, value in values.items()]
    return Heard(NOW, Understanding(text, "en", intent, conf, urgency, list(flags), ents))  # type: ignore[arg-type]


def _slot(i: int, day: int, hh: int, mm: int = 0, provider: str = "patel") -> Slot:
    names = {"patel": "Doctor Patel", "nguyen": "Doctor Nguyen"}
    return Slot(f"s{i}", provider, names[provider], datetime(2026, 12, day, hh, mm))


TUE_0900, TUE_1040, TUE_1120 = _slot(1, 1, 9), _slot(2, 1, 10, 40), _slot(3, 1, 11, 20)
WED_1040, FRI_1400 = _slot(4, 2, 10, 40), _slot(5, 4, 14, 0, "nguyen")
APPT_1 = Appointment("a1", _slot(7, 8, 9, 30), "follow-up")
APPT_2 = Appointment("a2", _slot(8, 10, 15, 0, "nguyen"), "physical")
MORNING = {"part": "morning", "start": "08:00", "end": "12:00"}

EVENTS: dict[str, Callable[[], Event]] = {
    # the start
    "start": lambda: CallStarted(NOW, caller_number="5551234567"),
    "start_closed": lambda: CallStarted(NOW, caller_number="5551234567", office_open=False),
    "start_anonymous": lambda: CallStarted(NOW, caller_number="anonymous"),
    # openings
    "schedule": lambda: _heard("i'd like to make an appointment", "schedule"),
    "schedule_full": lambda: _heard(
        "i'd like to see doctor patel tuesday morning",
        "schedule",
        provider="patel",
        date="2026-12-01",
        part_of_day=MORNING,
    ),
    "new_patient": lambda: _heard("i'm a new patient and want an appointment", "schedule"),
    "reschedule": lambda: _heard("i need to move my appointment", "reschedule"),
    "cancel": lambda: _heard("i want to cancel my appointment", "cancel"),
    "refill": lambda: _heard("i need a refill please", "refill"),
    "refill_full": lambda: _heard(
        "a refill of lisinopril 10 mg at the cvs on main, jane doe, march 4 1962",
        "refill",
        medication="lisinopril",
        dose={"amount": 10.0, "unit": "mg"},
        pharmacy={"chain": "CVS", "location": "Main"},
        person="Jane Doe",
        dob="1962-03-04",
    ),
    "refill_controlled": lambda: _heard("i need more oxycodone", "refill", medication="oxycodone"),
    "results": lambda: _heard("are my test results back", "test_results"),
    "results_phone": lambda: _heard(
        "are my results back, call me on 555 867 5309", "test_results", phone="5558675309"
    ),
    "symptoms": lambda: _heard("i have had a sore throat for three days", "symptoms"),
    "symptoms_short": lambda: _heard("i feel sick", "symptoms"),
    "message": lambda: _heard("please take a message for doctor patel", "message"),
    "prescription_question": lambda: _heard(
        "question about my prescription side effects", "prescription_question"
    ),
    "billing": lambda: _heard("i have a question about my bill", "billing"),
    "staff": lambda: _heard("can i talk to a person please", "speak_to_staff", 0.95),
    "hours": lambda: _heard("what are your hours", "office_info", 0.95),
    "parking": lambda: _heard("where can i park", "office_info", 0.95),
    "address_yes": lambda: _heard("yes, what is your address", "office_info", 0.9, yes_no=True),
    "emergency": lambda: _heard(
        "i have crushing chest pain", "symptoms", 0.9, "emergency", (CHEST,)
    ),
    "urgent": lambda: _heard("fever and a rash", "symptoms", 0.9, "urgent", (RASH,)),
    # answers and non-answers
    "mumble": lambda: _heard("mumble", conf=0.1),
    "empty": lambda: _heard("", conf=0.9),
    "yes": lambda: _heard("yes", conf=0.9, yes_no=True),
    "no": lambda: _heard("no", conf=0.9, yes_no=False),
    "yes_please": lambda: _heard("yes please", conf=0.6, yes_no=True),
    "no_thats_all": lambda: _heard("no, that's all. thank you", conf=0.7, yes_no=False),
    "goodbye": lambda: _heard("nothing else, goodbye", conf=0.8),
    "thats_correct": lambda: _heard("that's correct", conf=0.6),
    "name": lambda: _heard("jane doe", conf=0.6),
    "name_person": lambda: _heard("this is john smith", conf=0.6, person="John Smith"),
    "dob": lambda: _heard("march fourth nineteen sixty two", conf=0.6, dob="1962-03-04"),
    "provider_patel": lambda: _heard("doctor patel please", conf=0.7, provider="patel"),
    "provider_nguyen_word": lambda: _heard("nguyen", conf=0.6),
    "anyone": lambda: _heard("anyone is fine", conf=0.6),
    "tuesday_morning": lambda: _heard(
        "tuesday morning", conf=0.7, date="2026-12-01", part_of_day=MORNING
    ),
    "any_time": lambda: _heard("any time", conf=0.6),
    "soon": lambda: _heard("as soon as possible", conf=0.6),
    "first_one": lambda: _heard("the first one", conf=0.6),
    "second_one": lambda: _heard("the second one", conf=0.6),
    "none_of_those": lambda: _heard("none of those work", conf=0.6),
    "friday": lambda: _heard("do you have anything friday", conf=0.7, date="2026-12-04"),
    "no_wednesday": lambda: _heard("no wednesday", conf=0.7, yes_no=False, date="2026-12-02"),
    "no_afternoon": lambda: _heard(
        "no, in the afternoon",
        conf=0.7,
        yes_no=False,
        part_of_day={"part": "afternoon", "start": "12:00", "end": "17:00"},
    ),
    "no_nguyen": lambda: _heard("no, doctor nguyen", conf=0.7, yes_no=False, provider="nguyen"),
    "lisinopril": lambda: _heard("lisinopril", conf=0.6, medication="lisinopril"),
    "oxycodone": lambda: _heard("oxycodone", conf=0.6, medication="oxycodone"),
    "ten_mg": lambda: _heard("10 mg", conf=0.6, dose={"amount": 10.0, "unit": "mg"}),
    "dont_know": lambda: _heard("i don't know", conf=0.6),
    "no_20_mg": lambda: _heard(
        "no, 20 milligrams", conf=0.7, yes_no=False, dose={"amount": 20.0, "unit": "mg"}
    ),
    "cvs": lambda: _heard("the cvs on main", conf=0.6),
    "walgreens": lambda: _heard(
        "no, the walgreens", conf=0.7, yes_no=False, pharmacy={"chain": "Walgreens"}
    ),
    "three_days": lambda: _heard("three days", conf=0.6),
    "ran_out": lambda: _heard("i ran out", conf=0.6),
    "five_days_left": lambda: _heard("no, five days left", conf=0.7, yes_no=False),
    "sore_throat": lambda: _heard("a sore throat", conf=0.6),
    "since_monday": lambda: _heard("since monday.", conf=0.6),
    "four": lambda: _heard("four", conf=0.6),
    "nine": lambda: _heard("nine", conf=0.6),
    "eleven": lambda: _heard("eleven", conf=0.6),
    "no_severity_two": lambda: _heard("no, it's a two", conf=0.7, yes_no=False),
    "this_number": lambda: _heard("this number", conf=0.6),
    "phone": lambda: _heard("555 867 5309", conf=0.6, phone="5558675309"),
    "no_phone": lambda: _heard("no, call 555 000 1111", conf=0.7, yes_no=False, phone="5550001111"),
    "mornings": lambda: _heard("mornings are best.", conf=0.6),
    # intake (added with the questions: reason, allergies, insurance, member ID)
    "checkup": lambda: _heard("just a checkup", conf=0.6),
    "no_allergies": lambda: _heard("no", conf=0.6, yes_no=False),
    "penicillin": lambda: _heard("penicillin", conf=0.6, medication="penicillin"),
    "aetna": lambda: _heard("aetna", conf=0.6),
    "no_insurance": lambda: _heard("i don't have insurance", conf=0.6),
    "member_id": lambda: _heard("w 1 2 3 4 5 6 7", conf=0.6),
    "the_message": lambda: _heard("this is ann, please call me about my knee", conf=0.7),
    "switch_staff": lambda: _heard("actually can i talk to someone", "speak_to_staff", 0.9),
    "switch_hours": lambda: _heard("actually what time do you close today", "office_info", 0.9),
    "switch_cancel": lambda: _heard(
        "forget that i want to cancel my appointment instead", "cancel", 0.9
    ),
    # keys
    **{f"dtmf{k}": (lambda k=k: DtmfReceived(NOW, k)) for k in "0123#"},
    # silence, hang-up
    "nothing": lambda: NothingHeard(NOW),
    "hangup": lambda: CallerHungUp(NOW),
    # transfers
    **{
        f"transfer_{s}": (lambda s=s: TransferEnded(NOW, s, "PJSIP/clinician100"))  # type: ignore[arg-type]
        for s in ("answered", "busy", "no_answer", "unavailable", "failed")
    },
    # data results
    "found": lambda: PatientLookedUp(NOW, True, "p-1", ("lisinopril", "metformin"), "5551234567"),
    "found_no_meds": lambda: PatientLookedUp(NOW, True, "p-1"),
    "not_found": lambda: PatientLookedUp(NOW, False),
    "lookup_failed": lambda: PatientLookedUp(NOW, False, failed=True),
    "slots_3": lambda: SlotsFound(NOW, (TUE_0900, TUE_1040, TUE_1120)),
    "slots_wed": lambda: SlotsFound(NOW, (WED_1040, FRI_1400)),
    "slots_1": lambda: SlotsFound(NOW, (FRI_1400,)),
    "slots_0": lambda: SlotsFound(NOW, ()),
    "slots_failed": lambda: SlotsFound(NOW, failed=True),
    "appts_2": lambda: AppointmentsListed(NOW, (APPT_1, APPT_2)),
    "appts_1": lambda: AppointmentsListed(NOW, (APPT_1,)),
    "appts_0": lambda: AppointmentsListed(NOW, ()),
    "appts_failed": lambda: AppointmentsListed(NOW, failed=True),
    "booked": lambda: Booked(NOW, True, APPT_1),
    "booked_taken": lambda: Booked(NOW, False),
    "booked_failed": lambda: Booked(NOW, False, failed=True),
    "rescheduled": lambda: Rescheduled(NOW, True, APPT_1),
    "rescheduled_taken": lambda: Rescheduled(NOW, False),
    "rescheduled_failed": lambda: Rescheduled(NOW, False, failed=True),
    "cancelled": lambda: AppointmentCancelled(NOW, True),
    "cancel_refused": lambda: AppointmentCancelled(NOW, False),
    "cancel_failed": lambda: AppointmentCancelled(NOW, False, failed=True),
}

# ---------------------------------------------------------------------------------------------
# The cooperative caller (used only to record; the test replays the names it chose)


# What the caller answers to each question, per profile; the lists are used in turn.
_ANSWERS: dict[str, dict[str, list[str]]] = {
    "plain": {
        "name": ["name"],
        "dob": ["dob"],
        "provider": ["provider_patel"],
        "preferences": ["tuesday_morning"],
        "slot": ["second_one"],
        "appointment": ["first_one"],
        "medication": ["lisinopril"],
        "strength": ["ten_mg"],
        "pharmacy": ["cvs"],
        "supply": ["three_days"],
        "complaint": ["sore_throat"],
        "screen": ["no"],
        "since": ["since_monday"],
        "severity": ["four"],
        "phone": ["this_number"],
        "when": ["mornings"],
        "reason": ["checkup"],
        "allergies": ["no_allergies"],
        "insurance": ["aetna"],
        "member_id": ["member_id"],
        "correction": ["no_wednesday", "no_phone", "no_20_mg", "tuesday_morning"],
    },
    "other": {
        "name": ["name_person"],
        "dob": ["dob"],
        "provider": ["anyone"],
        "preferences": ["any_time", "soon"],
        "slot": ["none_of_those", "first_one", "friday", "first_one"],
        "appointment": ["second_one"],
        "medication": ["oxycodone", "lisinopril"],
        "strength": ["dont_know"],
        "pharmacy": ["cvs"],
        "supply": ["ran_out"],
        "complaint": ["sore_throat"],
        "screen": ["no"],
        "since": ["since_monday"],
        "severity": ["eleven", "nine"],
        "phone": ["phone"],
        "when": ["mornings"],
        "reason": ["checkup"],
        "allergies": ["penicillin"],
        "insurance": ["no_insurance"],
        "member_id": ["member_id"],
        "correction": ["walgreens", "no_severity_two", "five_days_left", "no_afternoon"],
    },
}

# How the directory and schedule answer, per profile; the lists are used in turn (the last repeats).
_RESULTS: dict[str, dict[type, list[str]]] = {
    "ok": {
        LookupPatient: ["found"],
        FindSlots: ["slots_3"],
        ListAppointments: ["appts_2"],
        BookSlot: ["booked"],
        RescheduleAppointment: ["rescheduled"],
        CancelAppointment: ["cancelled"],
    },
    "edge": {
        LookupPatient: ["not_found", "found_no_meds"],
        FindSlots: ["slots_0", "slots_wed", "slots_1"],
        ListAppointments: ["appts_1"],
        BookSlot: ["booked_taken", "booked"],
        RescheduleAppointment: ["rescheduled_taken", "rescheduled"],
        CancelAppointment: ["cancel_refused"],
    },
    "down": {
        LookupPatient: ["found"],
        FindSlots: ["slots_failed"],
        ListAppointments: ["appts_failed"],
        BookSlot: ["booked_failed"],
        RescheduleAppointment: ["rescheduled_failed"],
        CancelAppointment: ["cancel_failed"],
    },
    "stranger": {
        LookupPatient: ["not_found"],
        FindSlots: ["slots_0"],
        ListAppointments: ["appts_0"],
        BookSlot: ["booked"],
        RescheduleAppointment: ["rescheduled"],
        CancelAppointment: ["cancelled"],
    },
}
_TRANSFER = {"ok": "transfer_answered", "edge": "transfer_no_answer", "down": "transfer_busy"}
_TRANSFER["stranger"] = "transfer_failed"


_SECOND = ("schedule_full", "results_phone", "reschedule", "refill_full", "cancel", "message")


class _Caller:
    """Answers what the dialog asks, the way ``profile`` says; deterministic."""

    def __init__(self, opening: str, answers: str, results: str) -> None:
        self.opening = opening
        # Asked for after a first request (once verified, a workflow can go straight to a lookup
        # or the read-back).
        self.second = _SECOND[sum(map(ord, opening)) % len(_SECOND)]
        self.answers = _ANSWERS[answers]
        self.results = _RESULTS[results]
        self.transfer = _TRANSFER[results]
        self.used: dict[Any, int] = {}

    def _next(self, key: Any, options: list[str]) -> str:
        i = self.used.get(key, 0)
        self.used[key] = i + 1
        return options[min(i, len(options) - 1)]

    def reply(self, d: Dialog, out: list[Command] | None) -> str:
        waiting = out[-1] if out else None
        if type(waiting) in self.results:
            return self._next(type(waiting), self.results[type(waiting)])
        state = d.state
        if state is State.REQUEST:
            return self._next("opening", [self.opening, self.second, "no_thats_all"])
        if state is State.ASK and d.task is not None:
            return self._next(d.task.asking, self.answers[d.task.asking])
        if state is State.CONFIRM:
            return self._next("confirm", ["yes", "no", "yes"])
        if state in (State.MESSAGE, State.URGENT_MESSAGE):
            return "the_message"
        if state is State.EMERGENCY_OFFER:
            return "yes_please"
        if state is State.ANYTHING_ELSE:
            # The "other" caller asks for a second thing straight away ("yes, and ...").
            then = [self.second] if self.answers is _ANSWERS["other"] else []
            return self._next("anything_else", [*then, "no_thats_all"])
        if state is State.TRANSFERRING:
            return self.transfer
        return "hangup"


# ---------------------------------------------------------------------------------------------
# Running and recording


def _step(d: Dialog, name: str) -> tuple[list[Command] | None, list[Any]]:
    before = d.state
    try:
        out = d.handle(EVENTS[name]())
    except IllegalTransition:
        assert d.state is before, "an illegal event must leave the state alone"
        return None, [d.state.value, "IllegalTransition"]
    except Exception as e:
        # A handler's own assertion (say, a task it expects is gone): recorded as it is today, so
        # a restructuring neither adds nor removes one.
        return None, [d.state.value, type(e).__name__]
    return out, [d.state.value, [repr(c) for c in out]]


def run(d: Dialog, events: list[str]) -> list[list[Any]]:
    """The trace of ``events``: per event, the state after it and the commands (as ``repr``)."""
    return [_step(d, name)[1] for name in events]


def _copy(d: Dialog) -> Dialog:
    """The dialog as it is now, to branch from (settings are shared: they are never written)."""
    return copy.deepcopy(d, {id(d.settings): d.settings})


def _digest(trace: list[list[Any]]) -> str:
    return hashlib.sha256(json.dumps(trace, ensure_ascii=False).encode()).hexdigest()[:16]


OPENINGS = (
    "schedule",
    "schedule_full",
    "new_patient",
    "reschedule",
    "cancel",
    "refill",
    "refill_full",
    "refill_controlled",
    "results",
    "symptoms",
    "symptoms_short",
    "message",
    "prescription_question",
    "billing",
    "staff",
    "hours",
    "parking",
    "emergency",
    "urgent",
    "mumble",
)
_SAID_ANYWHERE = (
    "emergency",
    "urgent",
    "mumble",
    "empty",
    "yes",
    "no",
    "thats_correct",
    "goodbye",
    "address_yes",
    "switch_staff",
    "switch_hours",
    "switch_cancel",
    # Asked again, then handed to staff.
    "nothing nothing nothing",
    "empty empty empty",
)
_SAID_MID_TASK = (
    "no_wednesday",
    "no_afternoon",
    "no_nguyen",
    "no_20_mg",
    "walgreens",
    "five_days_left",
    "no_phone",
    "no_severity_two",
    "friday",
    "none_of_those",
    "first_one",
)
_KEYS = ("dtmf0", "dtmf1", "dtmf2", "dtmf3", "dtmf#")
_RESULT_NAMES: dict[State, tuple[str, ...]] = {
    State.LOOKING_UP: ("found", "found_no_meds", "not_found", "lookup_failed"),
    State.FINDING_SLOTS: ("slots_3", "slots_wed", "slots_1", "slots_0", "slots_failed"),
    State.LISTING: ("appts_2", "appts_1", "appts_0", "appts_failed"),
    State.TRANSFERRING: tuple(n for n in EVENTS if n.startswith("transfer_")),
}
_WRITE_NAMES: dict[type, tuple[str, ...]] = {
    BookSlot: ("booked", "booked_taken", "booked_failed"),
    RescheduleAppointment: ("rescheduled", "rescheduled_taken", "rescheduled_failed"),
    CancelAppointment: ("cancelled", "cancel_refused", "cancel_failed"),
}
_FEW = ("emergency", "urgent", "hangup", "nothing", "dtmf0", "switch_staff")


def _disruptions(d: Dialog, out: list[Command] | None, every: bool) -> tuple[str, ...]:
    """What to put in instead of the caller's next reply, given where the dialog is."""
    if not every:
        return _FEW
    if d.state is State.WRITING:
        results = _WRITE_NAMES[type(out[-1])] if out else ()
        return (*results, "hangup", "emergency", "nothing")
    if d.state in _RESULT_NAMES:
        return (*_RESULT_NAMES[d.state], "hangup", "emergency", "nothing", "dtmf0")
    mid_task = _SAID_MID_TASK if d.state in (State.ASK, State.CONFIRM) else ()
    # "transfer_answered": a sample of an event no listening state has a row for.
    return (*_SAID_ANYWHERE, *mid_task, "nothing", "hangup", *_KEYS, "transfer_answered")


def _plans() -> Iterator[tuple[str, str, str, str, bool]]:
    """(settings, start, answers, results, every disruption?) for each cooperative walk."""
    # Every disruption on the full practice, open, with each caller meeting two directory and
    # schedule behaviours; the few that differ by practice or hours on the rest.
    for settings in SETTINGS:
        for start in ("start", "start_closed"):
            for answers in _ANSWERS:
                for results in _RESULTS:
                    pair = (answers, results)
                    every = (settings, start) == ("full", "start") and pair in _EVERY
                    few = pair in (("plain", "ok"), ("other", "edge"))
                    if (settings, start) == ("full", "start") or (few and settings == "full"):
                        yield settings, start, answers, results, every
                    elif few and start == "start":
                        yield settings, start, answers, results, every


_EVERY = (("plain", "ok"), ("plain", "down"), ("other", "edge"), ("other", "stranger"))


_MORE = 5
"""Cooperative replies after a disruption, before the hang-up."""


def record() -> dict[str, Any]:
    """The golden file's content: the cooperative walks in full (readable), and one digest for
    each disrupted and each random sequence."""
    walks: list[dict[str, Any]] = []
    disrupted: list[list[Any]] = []
    for settings, start, answers, results, every in _plans():
        for opening in OPENINGS:
            caller = _Caller(opening, answers, results)
            d = Dialog(SETTINGS[settings])
            names = [start]
            out, _ = _step(d, start)
            branches: list[tuple[int, Dialog, _Caller, list[Command] | None]] = []
            while True:
                branches.append((len(names), _copy(d), copy.deepcopy(caller), out))
                if d.state is State.ENDED or len(names) > 40:
                    break
                name = caller.reply(d, out)
                names.append(name)
                got, _ = _step(d, name)
                out = got if got is not None else out
            names.append("hangup")
            walks.append(
                {
                    "settings": settings,
                    "events": names,
                    "trace": run(Dialog(SETTINGS[settings]), names),
                }
            )
            index = len(walks) - 1
            for at, snapshot, at_caller, at_out in branches[:-1]:
                for disruption in _disruptions(snapshot, at_out, every):
                    d, caller = _copy(snapshot), copy.deepcopy(at_caller)
                    then = disruption.split(" ")
                    out = at_out
                    for name in then:
                        got, _ = _step(d, name)
                        out = got if got is not None else out
                    for _ in range(_MORE):
                        if d.state is State.ENDED:
                            break
                        name = caller.reply(d, out)
                        then.append(name)
                        got, _ = _step(d, name)
                        out = got if got is not None else out
                    if then[-1] != "hangup":
                        then.append("hangup")
                    trace = run(_copy(snapshot), then)
                    disrupted.append([index, at, " ".join(then), _digest(trace)])
    return {"walks": walks, "disrupted": disrupted, "random": _random_walks()}


def _random_walks() -> list[list[Any]]:
    """Random walks over everything, with a fixed seed: [settings, events, digest]."""
    rng = random.Random(20261127)
    # A write's result only ever answers its own command (the call session's rule): the caller
    # gives them; at random, only results whose state says which command they answer.
    writes = ("booked", "rescheduled", "cancel")
    pool = sorted(n for n in EVENTS if not n.startswith(("start", *writes)))
    out_walks: list[list[Any]] = []
    # Before the call started: only the start and a hang-up have rows.
    for settings in SETTINGS:
        for names in (["hangup", "hangup"], ["schedule", "nothing", "start", "start", "hangup"]):
            trace = run(Dialog(SETTINGS[settings]), names)
            out_walks.append([settings, " ".join(names), _digest(trace)])
    for i in range(1500):
        settings = sorted(SETTINGS)[i % len(SETTINGS)]
        caller = _Caller(rng.choice(OPENINGS), rng.choice(sorted(_ANSWERS)), "ok")
        caller.results = _RESULTS[rng.choice(sorted(_RESULTS))]
        d = Dialog(SETTINGS[settings])
        names = [rng.choice(("start", "start_closed", "start_anonymous"))]
        out, _ = _step(d, names[0])
        for _ in range(rng.randint(1, 30)):
            name = caller.reply(d, out) if rng.random() < 0.6 else rng.choice(pool)
            names.append(name)
            got, _ = _step(d, name)
            out = got if got is not None else out
            if d.state is State.ENDED and rng.random() < 0.7:
                break
        names.append("hangup")
        trace = run(Dialog(SETTINGS[settings]), names)
        out_walks.append([settings, " ".join(names), _digest(trace)])
    return out_walks


def _write(golden: dict[str, Any]) -> None:
    """One sequence a line, so a re-recording shows as a readable diff."""
    parts = ["{"]
    for key in ("walks", "disrupted", "random"):
        rows = [json.dumps(row, ensure_ascii=False) for row in golden[key]]
        parts.append(f'"{key}": [\n' + ",\n".join(rows) + "\n]" + ("," if key != "random" else ""))
    parts.append("}")
    GOLDEN.write_text("\n".join(parts) + "\n")


# ---------------------------------------------------------------------------------------------
# The test


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    if os.environ.get("DIALOG_GOLDEN_RECORD"):
        _write(record())
    return json.loads(GOLDEN.read_text())  # type: ignore[no-any-return]


def test_cooperative_walks_are_reproduced_command_for_command(golden: dict[str, Any]) -> None:
    for walk in golden["walks"]:
        trace = run(Dialog(SETTINGS[walk["settings"]]), walk["events"])
        for i, (want, got) in enumerate(zip(walk["trace"], trace, strict=True)):
            assert got == want, (walk["settings"], walk["events"][: i + 1])


def test_every_disruption_at_every_step_is_reproduced(golden: dict[str, Any]) -> None:
    by_walk: dict[int, list[list[Any]]] = {}
    for row in golden["disrupted"]:
        by_walk.setdefault(row[0], []).append(row)
    for index, rows in by_walk.items():
        walk = golden["walks"][index]
        d = Dialog(SETTINGS[walk["settings"]])
        snapshots = {0: _copy(d)}
        for i, name in enumerate(walk["events"], 1):
            _step(d, name)
            snapshots[i] = _copy(d)
        for _, at, then, digest in rows:
            names = then.split(" ")
            trace = run(_copy(snapshots[at]), names)
            assert _digest(trace) == digest, (walk["settings"], walk["events"][:at], names, trace)


def test_random_walks_are_reproduced(golden: dict[str, Any]) -> None:
    for settings, events, digest in golden["random"]:
        names = events.split(" ")
        trace = run(Dialog(SETTINGS[settings]), names)
        assert _digest(trace) == digest, (settings, names, trace)


def test_the_golden_file_covers_what_it_claims(golden: dict[str, Any]) -> None:
    """Emergencies and hang-ups at every step of every walk; every state and every row seen."""
    every = {i for i, w in enumerate(golden["walks"]) if w["settings"] == "full"}
    for kind in ("emergency", "hangup"):
        at = {(row[0], row[1]) for row in golden["disrupted"] if row[2].startswith(kind + " ")}
        at |= {(row[0], row[1]) for row in golden["disrupted"] if row[2] == kind}
        for i in every:
            steps = len(golden["walks"][i]["events"]) - 1
            assert {(i, k) for k in range(1, steps)} <= at, (kind, golden["walks"][i]["events"])
    states = {s for w in golden["walks"] for s, _ in w["trace"]}
    assert states == {s.value for s in State} - {State.NEW.value}
