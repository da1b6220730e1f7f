"""The workflows, as one table: for each kind of request, what is asked or looked up in which order,
what is read back, and what is written when the caller says yes.

A workflow is slot filling over a ``Task``. ``advance`` walks the workflow's steps in order and
the first one still missing acts: it asks for a slot (state ``ASK``), or asks the call session to
look something up (the ``*ING`` states wait for the answer). When nothing is missing, the task is
read back (``CONFIRM``); a yes ``commit``s it. Tasks that read or write the patient's own record
first walk ``IDENTITY``: nothing patient-specific happens before the caller's name and date of birth
matched the directory (the caller ID number is passed along as a hint only).

Safety rules kept here: anything written is read back and confirmed first; a controlled substance
is never promised (the refill becomes a message for the clinician); test results are never read
out (the results workflow only takes a call-back number).

How the caller's answers fill the slots is in ``answers``; the directory's and the schedule's
answers are in ``results``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from agent.core.dialog.commands import (
    Appointment,
    BookSlot,
    CancelAppointment,
    Command,
    FindSlots,
    ListAppointments,
    LookupPatient,
    RescheduleAppointment,
    SaveRecord,
    Say,
    Slot,
    SlotPreferences,
)
from agent.core.dialog.context import PROTOCOL_DETAIL, PROTOCOL_QUESTION, Context, State, Task
from agent.core.dialog.phrases import self_care
from agent.core.protocols import Protocol

Step = Callable[[Context, Task], list[Command] | None]
"""One step of a workflow: the commands that take it, or ``None`` when it is already done."""


@dataclass(frozen=True)
class Ask:
    """Ask for ``slot`` with the static prompt ``key`` unless it is already known."""

    slot: str
    key: str
    retry_key: str = ""
    """Asked instead once a directory lookup has failed (``Context.id_attempts``)."""
    identity: bool = False
    """Kept in ``Context.identity`` (for the whole call), not in the task's slots."""
    preface: str = ""
    """A static prompt said before the question."""

    def __call__(self, d: Context, t: Task) -> list[Command] | None:
        if self.slot in (d.identity if self.identity else t.slots):
            return None
        out = ask(d, self.slot, self.retry_key if self.retry_key and d.id_attempts else self.key)
        return [Say(d.p.STATIC[self.preface], self.preface), *out] if self.preface else out


def _look_up_patient(d: Context, t: Task) -> list[Command]:
    d.move(State.LOOKING_UP)
    return [
        LookupPatient(
            d.identity["name"], d.identity["dob"], d.caller_number, other_names=d.other_names
        )
    ]


def _pick_appointment(d: Context, t: Task) -> list[Command] | None:
    """Which of the caller's own appointments: listed first, then offered by date."""
    if "appointment" in t.slots:
        return None
    if not t.appointments:
        d.move(State.LISTING)
        return [ListAppointments(d.patient_id)]
    return ask(d, "appointment", None)


def _pick_slot(d: Context, t: Task) -> list[Command] | None:
    return None if "slot" in t.slots else find_slots(d)


def _not_controlled(d: Context, t: Task) -> list[Command] | None:
    return controlled(d) if t.slots["medication"] in d.settings.controlled_substances else None


IDENTITY: tuple[Step, ...] = (
    Ask("name", "ask_name", retry_key="id_retry", identity=True),
    Ask("dob", "ask_dob", identity=True),
    _look_up_patient,
)
"""Walked before a workflow that ``needs_identity`` while the caller is not yet verified."""


@dataclass(frozen=True)
class Workflow:
    needs_identity: bool
    """It reads or writes the patient's own record."""
    steps: tuple[Step, ...]
    read_back: Callable[[Context, dict[str, Any]], str]
    """What is read back for the caller to confirm, from the filled slots."""
    write: Callable[[Context, Task], list[Command]]
    """After a yes to the read-back."""


# -- what each workflow writes ------------------------------------------------------------------


def _book(d: Context, t: Task) -> list[Command]:
    d.move(State.WRITING)
    return [BookSlot(t.slots["slot"], d.patient_id, t.slots["appointment_type"])]


def _move_appointment(d: Context, t: Task) -> list[Command]:
    d.move(State.WRITING)
    return [RescheduleAppointment(t.slots["appointment"].id, d.patient_id, t.slots["slot"])]


def _cancel(d: Context, t: Task) -> list[Command]:
    d.move(State.WRITING)
    return [CancelAppointment(t.slots["appointment"].id, d.patient_id)]


def _refill_request(d: Context, t: Task) -> list[Command]:
    data = {**t.record(), **d.who()}
    return finish(d, SaveRecord("refill", data), [Say(d.p.STATIC["refill_saved"], "refill_saved")])


def _new_patient_request(d: Context, t: Task) -> list[Command]:
    data = {**t.record(), **d.who()}
    data["request"] = "new_patient_appointment"
    return finish(
        d,
        SaveRecord("appointment", data),
        [Say(d.p.STATIC["new_patient_saved"], "new_patient_saved")],
    )


def _callback_request(d: Context, t: Task) -> list[Command]:
    data = {**t.record(), **d.who()}
    return finish(
        d, SaveRecord("message", data), [Say(d.p.STATIC["results_saved"], "results_saved")]
    )


def _nurse_message(d: Context, t: Task) -> list[Command]:
    # The nurse line; a high self-rated severity is flagged for a quicker call.
    s = t.slots
    data = {**t.record(), **d.who()}
    urgent = isinstance(s.get("severity"), int) and s["severity"] >= 8
    data["queue"] = "nurse_line"
    protocol = _protocol(d, t)
    if protocol is not None:
        # What the clinician needs to act without calling back to ask: the protocol, each
        # question with its answer, and the disposition they gave.
        data["protocol"] = protocol.id
        data["answers"] = {q.ask: t.answers[q.id] for q in protocol.questions if q.id in t.answers}
        data["disposition"] = t.disposition
        if t.disposition == "same_day":
            data["queue"] = "on_call"
            data["notify"] = "on_call_callback_today"
            same_day: list[Command] = [Say(d.p.STATIC["same_day_saved"], "same_day_saved")]
            return finish(d, SaveRecord("message", data, urgent=True), same_day)
    says: list[Command] = [Say(d.p.STATIC["nurse_saved"], "nurse_saved")]
    if protocol is not None:
        says.append(Say(protocol.advice_es if t.lang == "es" else protocol.advice))
        return finish(d, SaveRecord("message", data, urgent=urgent), says)
    advice = self_care(str(s.get("complaint", "")), d.settings.self_care)
    if advice:
        says.append(Say(d.p.self_care(advice)))
    return finish(d, SaveRecord("message", data, urgent=urgent), says)


# -- the nurse line's protocol -------------------------------------------------------------------


def _protocol(d: Context, t: Task) -> Protocol | None:
    book = d.settings.protocols
    if book is None or t.protocol is None or t.protocol not in book:
        return None
    return book[t.protocol]


def _safety_questions(d: Context, t: Task) -> list[Command] | None:
    """The protocol's disposition questions, most severe first, until the first yes; a question
    whose sign the caller already said is a yes without being asked. With no protocol
    recognised, the one general safety question."""
    protocol = _protocol(d, t)
    if protocol is None:
        return Ask("screen", "ask_screen")(d, t)
    for q in protocol.questions:
        said = t.answers.get(q.id)
        if said is None and q.id in t.signs and q.disposition == "same_day":
            # Told without being asked ("it burns when I pee"). A more severe question is
            # still asked first; a sign of one of those escalated the turn it was said in.
            said = t.answers[q.id] = True
        if said is True:
            t.disposition = q.disposition
            break
        if said is None:
            return ask_protocol(d, t, f"{PROTOCOL_QUESTION}{q.id}", q.text(t.lang))
    if protocol.minimum == "same_day" and t.disposition == "routine":
        t.disposition = "same_day"
    return None


def _protocol_details(d: Context, t: Task) -> list[Command] | None:
    """What the clinician will want on record (onset, temperature, allergies...)."""
    protocol = _protocol(d, t)
    if protocol is None:
        return None
    for detail in protocol.details:
        slot = f"{PROTOCOL_DETAIL}{detail.id}"
        if slot not in t.slots:
            return ask_protocol(d, t, slot, detail.text(t.lang))
    return None


def _allergies(d: Context, t: Task) -> list[Command] | None:
    """Allergies on the record of every symptom call (a protocol that asks them as one of its own
    details is not asked twice)."""
    protocol = _protocol(d, t)
    if protocol is not None and any(x.id == "allergies" for x in protocol.details):
        return None
    return Ask("allergies", "ask_allergies")(d, t)


def _member_id(d: Context, t: Task) -> list[Command] | None:
    """The card's member ID, unless the caller has no insurance."""
    if t.slots.get("insurance") == "none":
        return None
    return Ask("member_id", "ask_member_id")(d, t)


def _since(d: Context, t: Task) -> list[Command] | None:
    # A protocol's own details ask when it started, in its own words.
    protocol = _protocol(d, t)
    if protocol is not None and protocol.details:
        return None
    return Ask("since", "ask_since")(d, t)


def _nurse_read_back(d: Context, s: dict[str, Any]) -> str:
    t = d.task
    assert t is not None
    since = s.get("since") or s.get(f"{PROTOCOL_DETAIL}onset", "")
    to = "the on-call clinician" if t.disposition == "same_day" else "the nurse"
    return str(
        d.p.confirm_nurse(
            s["complaint"], since, str(s["severity"]), d.sp.spoken_digits(s["phone"]), to=to
        )
    )


def ask_protocol(d: Context, t: Task, slot: str, text: str) -> list[Command]:
    _asking(t, slot)
    d.move(State.ASK)
    d.question = [Say(text)]
    return [*d.question, d.listen_for(slot)]


def _appointment(s: dict[str, Any]) -> Appointment:
    appt: Appointment = s["appointment"]
    return appt


# -- the table ----------------------------------------------------------------------------------

WORKFLOWS: dict[str, Workflow] = {
    "schedule": Workflow(
        needs_identity=True,
        steps=(
            Ask("reason", "ask_reason"),
            Ask("provider", "ask_provider"),
            Ask("preferences", "ask_when"),
            _pick_slot,
        ),
        read_back=lambda d, s: d.p.confirm_booking(
            d.sp.spoken_slot(s["slot"]), s["appointment_type"]
        ),
        write=_book,
    ),
    "new_patient": Workflow(
        needs_identity=False,
        steps=(
            Ask("name", "ask_name", identity=True),
            Ask("dob", "ask_dob", identity=True),
            Ask("phone", "ask_phone"),
            Ask("reason", "ask_reason"),
            Ask("insurance", "ask_insurance"),
            _member_id,
            Ask("when", "ask_new_patient_when"),
        ),
        read_back=lambda d, s: d.p.confirm_new_patient(
            d.identity["name"], d.sp.spoken_digits(s["phone"]), s["when"]
        ),
        write=_new_patient_request,
    ),
    "reschedule": Workflow(
        needs_identity=True,
        steps=(_pick_appointment, Ask("preferences", "ask_when"), _pick_slot),
        read_back=lambda d, s: d.p.confirm_reschedule(
            d.sp.spoken_slot(_appointment(s).slot), d.sp.spoken_slot(s["slot"])
        ),
        write=_move_appointment,
    ),
    "cancel": Workflow(
        needs_identity=True,
        steps=(_pick_appointment,),
        read_back=lambda d, s: d.p.confirm_cancel(
            d.sp.spoken_slot(_appointment(s).slot), d.settings.cancellation_policy
        ),
        write=_cancel,
    ),
    "refill": Workflow(
        needs_identity=True,
        steps=(
            Ask("medication", "ask_medication"),
            _not_controlled,
            Ask("strength", "ask_strength"),
            Ask("pharmacy", "ask_pharmacy"),
            Ask("supply", "ask_supply"),
            Ask("allergies", "ask_allergies"),
        ),
        read_back=lambda d, s: d.p.confirm_refill(
            s["medication"], s["strength"], s["pharmacy"], d.sp.supply_sentence(s)
        ),
        write=_refill_request,
    ),
    "test_results": Workflow(
        needs_identity=True,
        steps=(Ask("phone", "ask_phone", preface="results_policy"),),
        read_back=lambda d, s: d.p.confirm_callback(d.sp.spoken_digits(s["phone"])),
        write=_callback_request,
    ),
    # A structured message for the nurse line, after the protocol's disposition questions (or, with
    # no protocol recognised, one screening question for emergency signs): a yes to a 911 or
    # see-now question escalates at once (``answers.answer``); a same-day yes is sent to the
    # on-call clinician as an urgent call-back.
    "symptoms": Workflow(
        needs_identity=False,
        steps=(
            Ask("complaint", "ask_complaint"),
            _safety_questions,
            _since,
            _protocol_details,
            Ask("severity", "ask_severity"),
            _allergies,
            Ask("phone", "ask_phone"),
        ),
        read_back=lambda d, s: _nurse_read_back(d, s),
        write=_nurse_message,
    ),
}

TASK_INTENTS = frozenset(WORKFLOWS) - {"new_patient"}
"""Intents that start a workflow (a new patient is a booking that says so: ``answers.begin``)."""

# -- walking a workflow -------------------------------------------------------------------------


def advance(d: Context) -> list[Command]:
    """The next step of the current task: ask for what is missing, look it up, or read back."""
    t = d.task
    assert t is not None
    flow = WORKFLOWS[t.kind]
    steps = (*IDENTITY, *flow.steps) if flow.needs_identity and not d.verified else flow.steps
    for step in steps:
        out = step(d, t)
        if out is not None:
            return out
    return confirm(d, flow.read_back(d, t.slots))


def ask(d: Context, slot: str, key: str | None) -> list[Command]:
    assert d.task is not None
    _asking(d.task, slot)
    d.move(State.ASK)
    if slot == "appointment":
        text = d.p.appointments_listed([d.sp.spoken_slot(a.slot) for a in d.task.appointments])
        d.question = [Say(text)]
    elif slot == "slot":
        d.question = [Say(d.p.offer([d.sp.spoken_slot(x) for x in d.task.offered]))]
    else:
        assert key is not None
        d.question = [Say(d.p.STATIC[key], key)]
    return [*d.question, d.listen_for(slot)]


def _asking(t: Task, slot: str) -> None:
    t.asking = slot
    if slot != "correction" and (not t.asked or t.asked[-1] != slot):
        t.asked.append(slot)


def confirm(d: Context, text: str) -> list[Command]:
    d.move(State.CONFIRM)
    d.question = [Say(text)]
    return [*d.question, d.listen("yes_no")]


def find_slots(d: Context) -> list[Command]:
    t = d.task
    assert t is not None
    s = t.slots
    provider = s.get("provider", "")
    appointment_type = s.get("appointment_type", "")
    if t.kind == "reschedule":
        appt: Appointment = s["appointment"]
        provider, appointment_type = appt.slot.provider_id, appt.appointment_type
        s["appointment_type"] = appointment_type
    d.move(State.FINDING_SLOTS)
    return [FindSlots(provider, appointment_type, s["preferences"])]


def commit(d: Context) -> list[Command]:
    """The caller said yes to the read-back: write it."""
    t = d.task
    assert t is not None
    return WORKFLOWS[t.kind].write(d, t)


def finish(d: Context, record: SaveRecord, says: list[Command]) -> list[Command]:
    assert d.task is not None
    if d.task.disposition == "same_day" and not record.urgent:
        record = SaveRecord(
            record.kind, {**record.data, "notify": "on_call_callback_today"}, urgent=True
        )
    d.requests.append({"intent": d.task.kind, "recorded": True})
    d.task = None
    d.reprompts = 0
    return [record, *says, *d.anything_else()]


def controlled(d: Context) -> list[Command]:
    """Never promise a controlled substance: a message for the clinician to review directly."""
    assert d.task is not None
    data = {**d.task.record(), **d.who(), "controlled_substance": True}
    return finish(d, SaveRecord("message", data), [Say(d.p.STATIC["controlled"], "controlled")])


def declined(prefs: SlotPreferences, ids: Any) -> SlotPreferences:
    """``prefs`` that never offer the slots in ``ids`` again (slots or their ids)."""
    more = tuple(x.id if isinstance(x, Slot) else str(x) for x in ids)
    return replace(prefs, exclude=tuple(dict.fromkeys((*prefs.exclude, *more))))
