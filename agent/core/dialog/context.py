"""What the dialog knows about one call, and the few steps every part of it takes.

``Context`` is the dialog's memory: the practice's settings, the state, the caller, what was asked
for, the task being worked on, who the caller said they are. The handlers (``conversation``,
``escalation``, ``answers``, ``results``) are functions over it; ``machine.Dialog`` adds the one
entry point, ``handle``, which picks the handler from the table.

A handler changes the state only through ``Context.move``, which checks the move against the
targets the table gives the row being handled (``machine.TABLE``): a move the table does not name
raises ``IllegalTransition`` instead of taking an edge nobody can see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from agent.core.dialog import prompts, prompts_es, slots, spoken_es
from agent.core.dialog.commands import (
    Appointment,
    Command,
    Expect,
    HandBack,
    Hangup,
    Listen,
    SaveRecord,
    Say,
    Slot,
    SlotPreferences,
)
from agent.core.protocols import ProtocolBook
from agent.core.understanding import Understanding
from agent.errors import IllegalTransition


class State(Enum):
    NEW = "new"
    REQUEST = "request"
    """Waiting for what the caller needs."""
    EMERGENCY_OFFER = "emergency_offer"
    """911 instruction given; asked whether to connect to the on-call clinician."""
    MESSAGE = "message"
    """Taking a message for the care team."""
    URGENT_MESSAGE = "urgent_message"
    """Nobody on call answered: taking an urgent message."""
    ASK = "ask"
    """Asked the caller for one slot of the current task (``Context.task.asking``)."""
    CONFIRM = "confirm"
    """Read back what will be written; waiting for yes, no, or a correction."""
    LOOKING_UP = "looking_up"
    """Waiting for the patient directory (``LookupPatient`` → ``PatientLookedUp``)."""
    FINDING_SLOTS = "finding_slots"
    LISTING = "listing"
    """Waiting for the caller's own appointments."""
    WRITING = "writing"
    """Waiting for a booking, cancellation or move to be written."""
    ANYTHING_ELSE = "anything_else"
    TRANSFERRING = "transferring"
    ENDED = "ended"


YES_NO_STATES = (State.EMERGENCY_OFFER, State.ANYTHING_ELSE, State.CONFIRM)
"""States that asked a yes/no question (listened for with ``expect="yes_no"``; keys 1 and 2)."""


@dataclass(frozen=True)
class ProviderInfo:
    id: str
    name: str
    """As spoken: "Doctor Patel"."""
    appointment_types: tuple[str, ...] = ("follow-up", "new patient")


@dataclass(frozen=True)
class DialogSettings:
    greeting: str
    emergency_number: str = "911"
    on_call: tuple[str, ...] = ()
    front_desk: str = ""
    billing: str = ""
    ring_timeout_s: int = 20
    min_confidence: float = 0.5
    max_reprompts: int = 2
    faq: dict[str, str] = field(default_factory=dict)
    no_input_timeout_s: float = 8.0
    providers: tuple[ProviderInfo, ...] = ()
    cancellation_policy: str = ""
    """Spoken before a cancellation is confirmed; empty = none configured."""
    controlled_substances: frozenset[str] = frozenset()
    """Generic names a refill is never arranged for by the agent (the clinician reviews directly)."""
    self_care: dict[str, str] = field(default_factory=dict)
    """Practice-approved self-care text by topic word; read after a routine symptom message."""
    max_id_attempts: int = 2
    switch_confidence: float = 0.8
    """Mid-task, a different intent this sure (and not a bare answer) changes the topic."""
    protocols: ProtocolBook | None = None
    """The nurse-line protocols in force: a symptom call with a recognised protocol is asked its
    disposition questions (``workflows``); ``None``: one general safety question instead."""


PROTOCOL_QUESTION = "q:"
"""``Task.asking`` for a protocol's disposition question: ``q:<question id>``."""
PROTOCOL_DETAIL = "detail:"
"""``Task.asking`` (and the slot) for a protocol's detail: ``detail:<detail id>``."""

TOLD_SLOTS = frozenset({"complaint", "since", "correction", "reason"})
"""Questions the caller answers in their own words about what is wrong (or what we got wrong);
every other slot is one detail (``Listen.detail``)."""


@dataclass
class Task:
    """One request being worked on: what it is, what is known so far, what was last asked."""

    kind: str
    """``schedule``, ``new_patient``, ``reschedule``, ``cancel``, ``refill``, ``test_results``,
    ``symptoms`` (``workflows.WORKFLOWS``)."""
    text: str
    """The request as the caller first said it."""
    slots: dict[str, Any] = field(default_factory=dict)
    asking: str = ""
    offered: tuple[Slot, ...] = ()
    appointments: tuple[Appointment, ...] = ()
    empty_searches: int = 0
    lang: str = "en"
    """The language the request was made in (protocol questions are asked in it)."""
    protocol: str | None = None
    """The nurse-line protocol of a symptom task (``DialogSettings.protocols``)."""
    answers: dict[str, bool] = field(default_factory=dict)
    """The protocol's questions answered so far: question id → yes."""
    signs: set[str] = field(default_factory=set)
    """Protocol questions the caller answered yes without being asked (a sign in their words)."""
    asked: list[str] = field(default_factory=list)
    """The slots asked for, in order ("go back" re-asks the one before the current one)."""
    disposition: str = "routine"
    """What the protocol's answers decided so far (``same_day`` or ``routine`` while the call
    goes on: a yes to a 911 or see-now question escalates at once)."""

    def record(self) -> dict[str, Any]:
        """What staff need to follow up; plain values only (the record store seals it)."""
        data: dict[str, Any] = {"intent": self.kind, "request_text": self.text}
        for key, value in self.slots.items():
            if isinstance(value, Slot):
                data[key] = _slot_record(value)
            elif isinstance(value, Appointment):
                data[key] = {"id": value.id, **_slot_record(value.slot)}
            elif isinstance(value, SlotPreferences):
                data[key] = {
                    "dates": list(value.dates),
                    "weekdays": list(value.weekdays),
                    "not_before": value.not_before,
                    "not_after": value.not_after,
                }
            else:
                data[key] = value
        return data


def _slot_record(slot: Slot) -> dict[str, Any]:
    return {
        "slot_id": slot.id,
        "provider_id": slot.provider_id,
        "starts_at": slot.starts_at.isoformat(),
    }


def entities(u: Understanding) -> list[dict[str, Any]]:
    """The utterance's entities as plain values, for a record."""
    return [{"label": e.label, "text": e.text, "value": e.value} for e in u.entities]


@dataclass
class Context:
    settings: DialogSettings
    state: State = State.NEW
    reprompts: int = 0
    caller_number: str = ""
    office_open: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    """What the caller asked for, in order (a call can carry more than one request)."""
    pending: dict[str, Any] = field(default_factory=dict)
    """A request waiting for a free-form message (kept as a partial message if the caller hangs up)."""
    transcript: list[str] = field(default_factory=list)
    task: Task | None = None
    identity: dict[str, str] = field(default_factory=dict)
    """Name and date of birth as given (not yet proof)."""
    other_names: tuple[str, ...] = ()
    """The name as the recogniser's other hypotheses heard it (tried with the same birth date)."""
    patient_id: str = ""
    """Set once name and date of birth matched the directory; kept for the rest of the call."""
    medications: tuple[str, ...] = ()
    id_attempts: int = 0
    question: list[Command] = field(default_factory=list)
    """The last question asked, to repeat after silence or a non-answer."""
    said: list[Command] = field(default_factory=list)
    """What the agent said in its last turn ("repeat that" says it again)."""
    at_risk: bool = False
    """The caller spoke of harming themselves: the agent never ends this call itself (a "no" to
    the clinician keeps the line open; a goodbye hands the call to staff)."""
    offered_staff: bool = False
    """The caller was asked whether they want a person (after an apology): their yes is taken as
    that, their no as "go on"."""
    lang: str = "en"
    """The language the agent speaks to this caller: Spanish once the caller asked in Spanish
    (``machine.Dialog.handle``); every prompt and read-back is then said in it."""
    just_booked: Appointment | None = None
    """The appointment written in the turn before "anything else?": "no, wait, the fifteenth"
    moves it rather than ending the call."""
    moves: frozenset[State] = field(default=frozenset(), init=False, repr=False, compare=False)
    """Where the row being handled may go (set by ``machine.Dialog.handle``; empty between events,
    so nothing moves the state outside a row)."""

    # -- the state ------------------------------------------------------------------------------

    def move(self, to: State) -> None:
        """The one way a handler changes the state: only to a target of the row being handled."""
        if to not in self.moves:
            raise IllegalTransition(self.state.value, f"a move to {to.value}")
        self.state = to

    @property
    def expect(self) -> Expect:
        return "yes_no" if self.state in YES_NO_STATES else "open"

    @property
    def p(self) -> Any:
        """The prompts in the caller's language (``prompts`` or ``prompts_es``: the same keys and
        functions)."""
        return prompts_es if self.lang == "es" else prompts

    @property
    def sp(self) -> Any:
        """Dates, times, providers and numbers said in the caller's language."""
        return spoken_es if self.lang == "es" else slots

    @property
    def verified(self) -> bool:
        return bool(self.patient_id)

    # -- listening ------------------------------------------------------------------------------

    def listen(self, expect: Expect = "open", *, detail: bool = False) -> Listen:
        return Listen(expect=expect, timeout_s=self.settings.no_input_timeout_s, detail=detail)

    def listen_for(self, slot: str) -> Listen:
        """Listening for the answer to the question for ``slot``."""
        if slot == "screen" or slot.startswith(PROTOCOL_QUESTION):
            return self.listen("yes_no")
        if slot.startswith(PROTOCOL_DETAIL):
            return self.listen()
        return self.listen(detail=slot not in TOLD_SLOTS)

    def listen_again(self) -> Listen:
        """Listening once more for the answer to the question last asked."""
        if self.state is State.ASK and self.task is not None:
            return self.listen_for(self.task.asking)
        return self.listen(self.expect)

    # -- steps every part takes -----------------------------------------------------------------

    def anything_else(self) -> list[Command]:
        self.move(State.ANYTHING_ELSE)
        return [Say(self.p.STATIC["anything_else"], "anything_else"), self.listen("yes_no")]

    def take_message(self, intent: str, key: str, *, keep_pending: bool = False) -> list[Command]:
        if not keep_pending:
            self.pending = {"intent": intent}
        self.pending.setdefault("intent", intent)
        self.move(State.MESSAGE)
        return [Say(self.p.STATIC[key], key), self.listen()]

    def reprompt(self) -> list[Command]:
        if self.reprompts >= self.settings.max_reprompts:
            return self.give_up("not_understood")
        self.reprompts += 1
        key = "didnt_catch" if self.reprompts == 1 else "didnt_catch_again"
        return [Say(self.p.STATIC[key], key), self.listen()]

    def reprompt_yes_no(self) -> list[Command]:
        if self.reprompts >= self.settings.max_reprompts:
            return self.give_up("not_understood")
        self.reprompts += 1
        return [Say(self.p.STATIC["yes_no_again"], "yes_no_again"), self.listen("yes_no")]

    def reprompt_confirm(self) -> list[Command]:
        if self.reprompts >= self.settings.max_reprompts:
            return self.give_up("not_understood")
        self.reprompts += 1
        return [Say(self.p.STATIC["confirm_again"], "confirm_again"), self.listen("yes_no")]

    def give_up(self, reason: str) -> list[Command]:
        """After the re-prompts, offer a person: hand the call to staff, never leave the caller
        stuck; a half-done request goes with it as a message."""
        out: list[Command] = []
        if self.task is not None:
            data = {**self.task.record(), **self.who(), "partial": True, "gave_up": reason}
            out.append(SaveRecord("message", data))
            self.drop_task(reason)
        self.move(State.ENDED)
        return [*out, Say(self.p.STATIC["connecting_staff"], "connecting_staff"), HandBack(reason)]

    def goodbye(self) -> list[Command]:
        self.move(State.ENDED)
        if self.at_risk:
            # Never hang up on a caller at risk: the crisis line once more, then a person (the
            # dialplan's fallback: the front desk, or the on-call voicemail after hours).
            return [Say(self.p.STATIC["crisis_goodbye"], "crisis_goodbye"), HandBack("at_risk")]
        return [Say(self.p.STATIC["goodbye"], "goodbye"), Hangup(drain=True)]

    def drop_task(self, why: str) -> None:
        if self.task is not None:
            self.requests.append({"intent": self.task.kind, "completed": False, "why": why})
            self.task = None

    def who(self) -> dict[str, Any]:
        """Who the request is for, as staff need it on the record."""
        return {
            "caller_number": self.caller_number,
            "patient_id": self.patient_id,
            "verified": self.verified,
            **{k: v for k, v in self.identity.items()},
        }

    def summary(self) -> dict[str, Any]:
        """Structured end-of-call summary for the record (reason, urgency, actions, open items)."""
        urgencies = [r["intent"] for r in self.requests if r["intent"] in ("emergency", "urgent")]
        open_items = [self.pending] if self.pending else []
        open_items += [r for r in self.requests if r.get("completed") is False]
        return {
            "reasons": [r["intent"] for r in self.requests],
            "urgency": urgencies[0] if urgencies else "routine",
            "actions": self.requests,
            "open_items": open_items,
            "verified": self.verified,
            "final_state": self.state.value,
        }
