"""The call's dialog state machine: one table, pure, driven by events, returning commands.

Everything that affects the state lives in ``TABLE`` below: ``(state, event type) → handler``. An event
with no row raises ``IllegalTransition`` and leaves the state untouched. A hangup is a row for every
live state, not a scattered try/except.

Safety rules enforced here (product rules, not options):
- an emergency red flag is answered in the same turn with the instruction to hang up and dial the
  emergency number, spoken uninterruptibly, before anything else; then the on-call clinician is offered;
  an emergency is never put in a queue; this holds in every listening state, mid-booking included;
- an urgent red flag goes to the on-call clinician (warm transfer with a spoken summary), and when nobody
  answers, to an urgent message;
- the agent never diagnoses and never reads out results: it has no prompt that could;
- nothing patient-specific (appointments, refills, results) happens before the caller's name and date
  of birth matched the patient directory; the caller ID number is passed along as a hint only;
- anything written is read back and confirmed first; a controlled substance is never promised.

Workflows (booking, refills…) are slot filling over a ``Task``: ``_advance`` looks at what is still
missing and asks for it (state ``ASK``), looks it up (the ``*ING`` states wait for the call session's
answer to a data command), or reads it back (``CONFIRM``). The table stays the one place that says which
event may arrive in which state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from agent.core.dialog import prompts, slots
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
    Expect,
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
    SlotPreferences,
    SlotsFound,
    Transfer,
    TransferEnded,
)
from agent.core.understanding import Entity, RedFlag, Understanding


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
    """Asked the caller for one slot of the current task (``Dialog.task.asking``)."""
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


class IllegalTransition(Exception):
    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"no transition from {state.value} on {type(event).__name__}")
        self.state = state
        self.event = event


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


# Words that point an office question at an FAQ topic. Matched on whole words of the caller's text.
FAQ_TOPICS: dict[str, tuple[str, ...]] = {
    "hours": (
        "hours",
        "open",
        "close",
        "closed",
        "closing",
        "opening",
        "weekend",
        "saturday",
        "sunday",
        "horario",
    ),
    "address": ("address", "where", "located", "location", "directions", "dirección", "direccion"),
    "parking": ("parking", "park", "garage"),
    "fax": ("fax",),
    "insurance": ("insurance", "accept", "medicare", "medicaid", "plan", "seguro"),
    "portal": ("portal", "online", "website", "app", "login", "password"),
}

NEEDS_IDENTITY = frozenset({"schedule", "reschedule", "cancel", "refill", "test_results"})
"""Tasks that read or write the patient's own record."""

TASK_INTENTS = NEEDS_IDENTITY | {"symptoms"}
TOLD_SLOTS = frozenset({"complaint", "since", "correction"})
"""Questions the caller answers in their own words about what is wrong (or what we got wrong);
every other slot is one detail (``Listen.detail``)."""

ANY_WORDS = frozenset(
    {"any", "anyone", "anybody", "whoever", "first", "earliest", "soonest", "whenever", "matter"}
)
DONT_KNOW = ("don't know", "dont know", "not sure", "no idea", "i forget", "no se")
NONE_OF_THOSE = ("none", "neither", "other", "different", "something else", "anything else")


@dataclass
class Task:
    """One request being worked on: what it is, what is known so far, what was last asked."""

    kind: str
    """``schedule``, ``new_patient``, ``reschedule``, ``cancel``, ``refill``, ``test_results``,
    ``symptoms``."""
    text: str
    """The request as the caller first said it."""
    slots: dict[str, Any] = field(default_factory=dict)
    asking: str = ""
    offered: tuple[Slot, ...] = ()
    appointments: tuple[Appointment, ...] = ()
    empty_searches: int = 0

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


@dataclass
class Dialog:
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

    # -- the one entry point ------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        handler = TABLE.get((self.state, type(event)))
        if handler is None:
            raise IllegalTransition(self.state, event)
        return handler(self, event)

    @property
    def expect(self) -> Expect:
        yes_no = (State.EMERGENCY_OFFER, State.ANYTHING_ELSE, State.CONFIRM)
        return "yes_no" if self.state in yes_no else "open"

    @property
    def verified(self) -> bool:
        return bool(self.patient_id)

    # -- handlers: the start and the open question ----------------------------------------------

    def _start(self, ev: CallStarted) -> list[Command]:
        self.caller_number = ev.caller_number
        self.office_open = ev.office_open
        self.state = State.REQUEST
        return [Say(self.settings.greeting, prompt_key="greeting"), self._listen()]

    def _request(self, ev: Heard) -> list[Command]:
        u = ev.understanding
        self.transcript.append(u.text)
        if u.urgency == "emergency":
            return self._emergency(u)
        if u.urgency == "urgent":
            return self._urgent(u)
        if self.requests and _done(u):
            # "No, that's all" after a request was handled: the caller is done.
            return self._goodbye()
        if u.confidence < self.settings.min_confidence or not u.text.strip():
            return self._reprompt()
        self.reprompts = 0
        return self._route(u)

    def _route(self, u: Understanding) -> list[Command]:
        """Start work on a request the caller made (first, after "anything else?", or mid-task)."""
        if u.intent == "speak_to_staff":
            return self._to_staff("caller_asked_for_staff")
        if u.intent == "office_info":
            answer = self._faq_answer(u.text)
            if answer:
                self.requests.append({"intent": "office_info", "answered": True})
                return [Say(answer), *self._anything_else_prompt()]
        if u.intent == "billing":
            return self._to_billing(u)
        if u.intent in TASK_INTENTS:
            kind = u.intent
            if kind == "schedule" and _new_patient(u.text):
                kind = "new_patient"
            return self._begin(kind, u)
        self.pending = {"intent": u.intent, "request_text": u.text, "entities": _entities(u)}
        self.state = State.MESSAGE
        ack = prompts.intent_ack(u.intent)
        says: list[Command] = [Say(ack)] if ack else []
        return [*says, Say(prompts.STATIC["take_message"], "take_message"), self._listen()]

    # -- escalation -----------------------------------------------------------------------------

    def _emergency(self, u: Understanding) -> list[Command]:
        # The instruction comes first, whatever else the caller said; nothing is queued.
        self._drop_task("escalated")
        flags = [f.rule_id for f in u.red_flags if f.urgency == "emergency"]
        self.pending = {"intent": u.intent, "red_flags": flags, "request_text": u.text}
        self.requests.append({"intent": "emergency", "red_flags": flags})
        self.state = State.EMERGENCY_OFFER
        return [
            Say(prompts.emergency_instruction(self.settings.emergency_number), barge_in=False),
            SaveRecord("emergency", {"red_flags": flags, "text": u.text}, urgent=True),
            Say(prompts.STATIC["emergency_offer"], "emergency_offer"),
            self._listen("yes_no"),
        ]

    def _urgent(self, u: Understanding) -> list[Command]:
        self._drop_task("escalated")
        flags = [f.label for f in u.red_flags]
        self.pending = {
            "intent": u.intent,
            "red_flags": flags,
            "request_text": u.text,
            "urgent": True,
        }
        self.requests.append({"intent": "urgent", "red_flags": flags})
        return self._to_on_call(
            u.text, flags, "urgent", prompts.STATIC["urgent_connecting"], "urgent_connecting"
        )

    def _to_on_call(
        self, text: str, flags: list[str], reason: str, say: str, key: str
    ) -> list[Command]:
        if not self.settings.on_call:
            self.state = State.URGENT_MESSAGE
            return [Say(prompts.STATIC["no_clinician"], "no_clinician"), self._listen()]
        self.state = State.TRANSFERRING
        return [
            Say(say, key),
            Transfer(
                self.settings.on_call,
                reason=reason,
                summary=_clinician_summary(
                    self.caller_number, flags, text, self.identity.get("name", ""), self.verified
                ),
                ring_timeout_s=self.settings.ring_timeout_s,
            ),
        ]

    def _to_staff(self, reason: str) -> list[Command]:
        """A person, at any point: the front desk during hours, a message after hours."""
        self._drop_task("caller_asked_for_staff")
        if not self.office_open:
            return self._take_message("speak_to_staff", "staff_closed")
        return self._to_front_desk(reason)

    def _to_front_desk(self, reason: str) -> list[Command]:
        self._drop_task(reason)
        self.requests.append({"intent": "speak_to_staff"})
        if not self.settings.front_desk:
            return [HandBack(reason)]
        self.pending = {"intent": "speak_to_staff", "transfer": True}
        self.state = State.TRANSFERRING
        return [
            Say(prompts.STATIC["connecting_front_desk"], "connecting_front_desk"),
            Transfer(
                (self.settings.front_desk,),
                reason=reason,
                ring_timeout_s=self.settings.ring_timeout_s,
            ),
        ]

    def _to_billing(self, u: Understanding) -> list[Command]:
        if not self.office_open or not self.settings.billing:
            self.pending = {"intent": "billing", "request_text": u.text}
            return self._take_message("billing", "billing_closed", keep_pending=True)
        self.requests.append({"intent": "billing"})
        self.pending = {"intent": "billing", "request_text": u.text, "transfer": True}
        self.state = State.TRANSFERRING
        return [
            Say(prompts.STATIC["billing_connecting"], "billing_connecting"),
            Transfer(
                (self.settings.billing,),
                reason="billing",
                ring_timeout_s=self.settings.ring_timeout_s,
            ),
        ]

    def _emergency_offer(self, ev: Heard) -> list[Command]:
        u = ev.understanding
        self.transcript.append(u.text)
        answer = _yes_no(u)
        if answer is True:
            return self._to_on_call(
                self.pending.get("request_text", ""),
                self.pending.get("red_flags", []),
                "emergency",
                prompts.STATIC["connecting_on_call"],
                "connecting_on_call",
            )
        if answer is False:
            self.state = State.ENDED
            return [
                Say(prompts.emergency_goodbye(self.settings.emergency_number), barge_in=False),
                Hangup(),
            ]
        return self._reprompt_yes_no()

    # -- messages -------------------------------------------------------------------------------

    def _take_message(self, intent: str, key: str, *, keep_pending: bool = False) -> list[Command]:
        if not keep_pending:
            self.pending = {"intent": intent}
        self.pending.setdefault("intent", intent)
        self.state = State.MESSAGE
        return [Say(prompts.STATIC[key], key), self._listen()]

    def _message(self, ev: Heard) -> list[Command]:
        u = ev.understanding
        self.transcript.append(u.text)
        if u.urgency == "emergency":
            return self._emergency(u)
        if not u.text.strip():
            return self._reprompt()
        urgent = self.state is State.URGENT_MESSAGE or bool(self.pending.get("urgent"))
        data = {**self.pending, "message": u.text, "caller_number": self.caller_number}
        if self.verified:
            data["patient_id"] = self.patient_id
        data["entities"] = [*data.get("entities", []), *_entities(u)]
        self.requests.append({"intent": data.get("intent", "message"), "recorded": True})
        self.pending = {}
        self.state = State.ANYTHING_ELSE
        key = "urgent_message_saved" if urgent else "message_saved"
        return [
            SaveRecord("message", data, urgent=urgent),
            Say(prompts.message_readback(u.text)),
            Say(prompts.STATIC[key], key),
            self._listen("yes_no"),
        ]

    def _anything_else(self, ev: Heard) -> list[Command]:
        u = ev.understanding
        answer = _yes_no(u)
        if _read_back_tail(u.text):
            # "Yes, ... that's correct": a pause split the answer to the read-back, and its tail
            # arrives after "anything else?". It answers nothing new: keep listening.
            self.transcript.append(u.text)
            return [self._listen("yes_no")]
        if u.urgency == "routine" and _done(u):
            self.transcript.append(u.text)
            return self._goodbye()
        new_request = u.confidence >= self.settings.min_confidence and (
            answer is None or not _short(u.text)
        )
        if u.urgency != "routine" or new_request:
            # Not a plain yes/no but a request ("yes, what are your hours?"): handle it directly.
            self.state = State.REQUEST
            return self._request(ev)
        self.transcript.append(u.text)
        if answer is False:
            return self._goodbye()
        if answer is True:
            self.state = State.REQUEST
            return [Say(prompts.STATIC["what_else"], "what_else"), self._listen()]
        return self._reprompt_yes_no()

    # -- workflows: slot filling ----------------------------------------------------------------

    def _begin(self, kind: str, u: Understanding) -> list[Command]:
        self.task = Task(kind, u.text)
        self._harvest(u)
        return self._advance()

    def _advance(self) -> list[Command]:
        """The next step of the current task: ask for what is missing, look it up, or read back."""
        t = self.task
        assert t is not None
        s = t.slots
        if t.kind in NEEDS_IDENTITY and not self.verified:
            if "name" not in self.identity:
                return self._ask("name", "ask_name" if self.id_attempts == 0 else "id_retry")
            if "dob" not in self.identity:
                return self._ask("dob", "ask_dob")
            self.state = State.LOOKING_UP
            return [
                LookupPatient(
                    self.identity["name"],
                    self.identity["dob"],
                    self.caller_number,
                    other_names=self.other_names,
                )
            ]
        if t.kind == "schedule":
            if "provider" not in s:
                return self._ask("provider", "ask_provider")
            if "preferences" not in s:
                return self._ask("preferences", "ask_when")
            if "slot" not in s:
                return self._find_slots()
            return self._confirm(
                prompts.confirm_booking(slots.spoken_slot(s["slot"]), s["appointment_type"])
            )
        if t.kind == "new_patient":
            for slot, key in (("name", "ask_name"), ("dob", "ask_dob")):
                if slot not in self.identity:
                    return self._ask(slot, key)
            if "phone" not in s:
                return self._ask("phone", "ask_phone")
            if "when" not in s:
                return self._ask("when", "ask_new_patient_when")
            return self._confirm(
                prompts.confirm_new_patient(
                    self.identity["name"], slots.spoken_digits(s["phone"]), s["when"]
                )
            )
        if t.kind in ("reschedule", "cancel"):
            if "appointment" not in s:
                if not t.appointments:
                    self.state = State.LISTING
                    return [ListAppointments(self.patient_id)]
                return self._ask("appointment", None)
            appt: Appointment = s["appointment"]
            if t.kind == "cancel":
                return self._confirm(
                    prompts.confirm_cancel(
                        slots.spoken_slot(appt.slot), self.settings.cancellation_policy
                    )
                )
            if "preferences" not in s:
                return self._ask("preferences", "ask_when")
            if "slot" not in s:
                return self._find_slots()
            return self._confirm(
                prompts.confirm_reschedule(
                    slots.spoken_slot(appt.slot), slots.spoken_slot(s["slot"])
                )
            )
        if t.kind == "refill":
            if "medication" not in s:
                return self._ask("medication", "ask_medication")
            if s["medication"] in self.settings.controlled_substances:
                return self._controlled()
            for slot, key in (
                ("strength", "ask_strength"),
                ("pharmacy", "ask_pharmacy"),
                ("supply", "ask_supply"),
            ):
                if slot not in s:
                    return self._ask(slot, key)
            return self._confirm(
                prompts.confirm_refill(
                    s["medication"], s["strength"], s["pharmacy"], _supply_sentence(s)
                )
            )
        if t.kind == "test_results":
            if "phone" not in s:
                return [
                    Say(prompts.STATIC["results_policy"], "results_policy"),
                    *self._ask("phone", "ask_phone"),
                ]
            return self._confirm(prompts.confirm_callback(slots.spoken_digits(s["phone"])))
        # symptoms: a structured message for the nurse line, after one screening question for
        # emergency signs (a red flag the recogniser misheard must not end up in a queue)
        if "complaint" not in s:
            return self._ask("complaint", "ask_complaint")
        for slot, key in (
            ("screen", "ask_screen"),
            ("since", "ask_since"),
            ("severity", "ask_severity"),
            ("phone", "ask_phone"),
        ):
            if slot not in s:
                return self._ask(slot, key)
        return self._confirm(
            prompts.confirm_nurse(
                s["complaint"], s["since"], str(s["severity"]), slots.spoken_digits(s["phone"])
            )
        )

    def _ask(self, slot: str, key: str | None) -> list[Command]:
        assert self.task is not None
        self.task.asking = slot
        self.state = State.ASK
        if slot == "appointment":
            text = prompts.appointments_listed(
                [slots.spoken_slot(a.slot) for a in self.task.appointments]
            )
            self.question = [Say(text)]
        elif slot == "slot":
            self.question = [Say(prompts.offer([slots.spoken_slot(x) for x in self.task.offered]))]
        else:
            assert key is not None
            self.question = [Say(prompts.STATIC[key], key)]
        return [*self.question, self._listen_for(slot)]

    def _confirm(self, text: str) -> list[Command]:
        self.state = State.CONFIRM
        self.question = [Say(text)]
        return [*self.question, self._listen("yes_no")]

    def _answer(self, ev: Heard) -> list[Command]:
        """The caller answered the question for ``task.asking``."""
        u = ev.understanding
        self.transcript.append(u.text)
        t = self.task
        assert t is not None
        if u.urgency == "emergency":
            return self._emergency(u)
        if u.urgency == "urgent":
            return self._urgent(u)
        if self._switches_topic(u):
            return self._switch(u)
        self._harvest(u)
        if self._fill(t.asking, u):
            self.reprompts = 0
            if t.asking == "screen" and t.slots["screen"] is True:
                # Yes to the emergency screening question: the emergency path, at once.
                flag = RedFlag(
                    "screening_yes", "emergency", "Yes to the emergency screening question", u.text
                )
                return self._emergency(
                    replace(u, red_flags=[flag, *u.red_flags], urgency="emergency")
                )
            return self._advance()
        if t.asking == "slot":
            if slots.has_preference(u):
                # "Do you have anything Friday?": search again with the new wish.
                t.slots["preferences"] = _declined(
                    slots.preferences_from(u, t.slots["preferences"]), t.offered
                )
                t.offered = ()
                self.reprompts = 0
                return self._advance()
            if _yes_no(u) is False or _said_any(u.text, NONE_OF_THOSE):
                t.slots.pop("preferences", None)
                t.slots["declined"] = (*t.slots.get("declined", ()), *(x.id for x in t.offered))
                t.offered = ()
                self.reprompts = 0
                return self._ask("preferences", "ask_when")
        return self._reask(t.asking)

    def _fill(self, slot: str, u: Understanding) -> bool:
        """Take the answer for ``slot`` from the utterance; False when it is not there."""
        t = self.task
        assert t is not None
        s = t.slots
        text = u.text.strip()
        if slot in self.identity or slot in s:
            return True  # harvested from this same utterance
        if slot == "name":
            names = slots.names_from(u)
            if names:
                self.identity["name"], self.other_names = names[0], names[1:]
            return bool(names)
        if slot == "dob":
            return "dob" in self.identity
        if slot == "provider":
            if _said_any(text, ANY_WORDS) or _yes_no(u) is False:
                s["provider"] = ""
                return True
            return False
        if slot == "preferences":
            if slots.has_preference(u):
                s["preferences"] = _declined(slots.preferences_from(u), s.get("declined", ()))
                return True
            if _said_any(text, ANY_WORDS) or "soon" in text.lower():
                s["preferences"] = _declined(SlotPreferences(), s.get("declined", ()))
                return True
            return False
        if slot == "slot":
            chosen = slots.choose(u, t.offered)
            if chosen is not None:
                s["slot"] = chosen
            return chosen is not None
        if slot == "appointment":
            picked = slots.choose(u, tuple(a.slot for a in t.appointments))
            for a in t.appointments:
                if picked is not None and a.slot == picked:
                    s["appointment"] = a
            return "appointment" in s
        if slot == "medication":
            med = self._medication_in(u)
            if med:
                s["medication"] = med
                s["on_medication_list"] = med in self.medications if self.medications else None
            return med is not None
        if slot == "strength":
            s["strength"] = "" if _said_any(text, DONT_KNOW) or not text else text
            return True
        if slot in ("pharmacy", "since", "when", "complaint"):
            if not text:
                return False
            # Read back inside a sentence: the caller's own full stop would end it early.
            s[slot] = text.rstrip(".!?,; ")
            return True
        if slot == "supply":
            n = slots.number_from(text)
            if n is None and re.search(r"\b(none|out|ran out|no more|nothing)\b", text.lower()):
                n = 0
            s["supply"] = text
            s["days_left"] = n
            return True
        if slot == "screen":
            answer = _yes_no(u)
            if answer is None:
                return False
            s["screen"] = answer
            return True
        if slot == "severity":
            n = slots.number_from(text)
            if n is None or not 0 <= n <= 10:
                return False
            s["severity"] = n
            return True
        if slot == "phone":
            phone = slots.phone_from(u, self.caller_number)
            if phone:
                s["phone"] = phone
            return phone is not None
        return False

    def _harvest(self, u: Understanding) -> None:
        """Keep every value the caller volunteered, whatever was asked ("Jane Doe, March 4th 1962";
        "a refill of lisinopril 10 mg at the CVS on Main")."""
        t = self.task
        if t is None:
            return
        s = t.slots
        dob = slots.dob_from(u)
        if dob and "dob" not in self.identity and not self.verified:
            self.identity["dob"] = dob
        person = u.entity("person")
        if person is not None and "name" not in self.identity and isinstance(person.value, str):
            self.identity["name"] = person.value
            self.other_names = tuple(
                n for n in slots.names_from(u) if n.casefold() != person.value.casefold()
            )
        if t.kind in ("schedule", "new_patient", "reschedule"):
            provider = self._provider_in(u)
            if provider is not None and t.kind == "schedule":
                s["provider"] = provider
            if t.kind != "new_patient" and slots.has_preference(u) and t.asking != "slot":
                if t.kind == "schedule" or "appointment" in s:
                    prefs = slots.preferences_from(u)
                    s["preferences"] = _declined(prefs, s.get("declined", ()))
            s.setdefault("appointment_type", self._appointment_type(s.get("provider", "")))
        if t.kind == "refill":
            med = self._medication_in(u)
            if med and "medication" not in s:
                s["medication"] = med
                s["on_medication_list"] = med in self.medications if self.medications else None
            dose = u.entity("dose")
            if dose is not None and "strength" not in s:
                s["strength"] = _spoken_dose(dose)
            pharmacy = u.entity("pharmacy")
            if pharmacy is not None and "pharmacy" not in s:
                s["pharmacy"] = _spoken_pharmacy(pharmacy)
        if t.kind == "symptoms" and "complaint" not in s and len(t.text.split()) >= 4:
            s["complaint"] = t.text
        phone = u.entity("phone")
        if phone is not None and isinstance(phone.value, str) and "phone" not in s:
            s["phone"] = phone.value

    def _reask(self, slot: str) -> list[Command]:
        if self.reprompts >= self.settings.max_reprompts:
            return self._give_up("not_understood")
        self.reprompts += 1
        again = {
            "name": "ask_name_again",
            "dob": "ask_dob_again",
            "preferences": "ask_when_again",
            "slot": "which_slot",
            "appointment": "which_appointment",
            "medication": "ask_medication_again",
            "phone": "ask_phone_again",
        }.get(slot)
        if again is None:
            return [
                Say(prompts.STATIC["didnt_catch"], "didnt_catch"),
                *self.question,
                self._listen_for(slot),
            ]
        return [Say(prompts.STATIC[again], again), self._listen_for(slot)]

    def _switches_topic(self, u: Understanding) -> bool:
        """A new request mid-task ("actually, can I talk to someone?"), not an answer that merely
        sounds like one to the intent model."""
        t = self.task
        if t is None or u.confidence < self.settings.switch_confidence:
            return False
        if u.intent == "speak_to_staff":
            return True
        if u.intent in (t.kind, "message") or len(u.text.split()) < 4:
            return False
        useful = {"date", "date_range", "time", "part_of_day", "dob", "phone", "person"}
        useful |= {"medication", "dose", "pharmacy", "provider", "yes_no"}
        return not any(e.label in useful for e in u.entities)

    def _switch(self, u: Understanding) -> list[Command]:
        self._drop_task("changed_topic")
        self.reprompts = 0
        return self._route(u)

    def _drop_task(self, why: str) -> None:
        if self.task is not None:
            self.requests.append({"intent": self.task.kind, "completed": False, "why": why})
            self.task = None

    # -- workflows: read-back -------------------------------------------------------------------

    def _confirmation(self, ev: Heard) -> list[Command]:
        u = ev.understanding
        self.transcript.append(u.text)
        if u.urgency == "emergency":
            return self._emergency(u)
        if u.urgency == "urgent":
            return self._urgent(u)
        answer = _yes_no(u)
        if answer is not False and self._switches_topic(u):
            return self._switch(u)
        if self._correct(u):
            self.reprompts = 0
            return self._advance()
        if answer is True:
            self.reprompts = 0
            return self._commit()
        if answer is False:
            self.reprompts = 0
            return self._declined_readback()
        return self._reprompt_confirm()

    def _declined_readback(self) -> list[Command]:
        """A bare "no" to the read-back: what it means depends on what was read back."""
        t = self.task
        assert t is not None
        if t.kind == "cancel":
            # "Shall I cancel it?" "No.": nothing is changed, and nothing is written.
            self.requests.append({"intent": "cancel", "completed": False, "why": "kept"})
            self.task = None
            return [Say(prompts.STATIC["kept"], "kept"), *self._anything_else_prompt()]
        if t.kind in ("schedule", "reschedule") and "slot" in t.slots:
            # Not that time: ask again for a day and time, never offering the declined one.
            declined = t.slots.pop("slot")
            t.slots["declined"] = (*t.slots.get("declined", ()), declined.id)
            t.slots.pop("preferences", None)
            t.offered = ()
            return self._ask("preferences", "ask_when")
        return self._ask("correction", "ask_correction")

    def _correction(self, u: Understanding) -> list[Command]:
        """Answer to "what should I change?"."""
        if self._correct(u):
            self.reprompts = 0
            return self._advance()
        return self._reask("correction")

    def _correct(self, u: Understanding) -> bool:
        """Apply "no, Wednesday" / "no, 20 milligrams" / "no, Doctor Nguyen" to the read-back; True
        when something changed (and the task goes back to finding or re-confirming)."""
        t = self.task
        assert t is not None
        s = t.slots
        changed = False
        if t.kind in ("schedule", "reschedule") and "slot" in s:
            provider = self._provider_in(u) if t.kind == "schedule" else None
            if provider is not None and provider != s.get("provider"):
                s["provider"] = provider
                changed = True
            if slots.has_preference(u):
                old: Slot = s["slot"]
                prefs = slots.preferences_from(u, s.get("preferences"))
                if not any(e.label in ("time", "part_of_day") for e in u.entities):
                    # "No, Wednesday": the same time on the other day, if it is free.
                    keep = old.starts_at.strftime("%H:%M")
                    prefs = replace(prefs, near=keep)
                    s["want_time"] = keep
                s["preferences"] = _declined(prefs, (old.id,))
                changed = True
            if changed:
                s.pop("slot")
                t.offered = ()
        elif t.kind == "refill":
            med = self._medication_in(u)
            if med and med != s.get("medication"):
                s["medication"] = med
                changed = True
            dose = u.entity("dose")
            if dose is not None:
                s["strength"] = _spoken_dose(dose)
                changed = True
            pharmacy = u.entity("pharmacy")
            if pharmacy is not None:
                s["pharmacy"] = _spoken_pharmacy(pharmacy)
                changed = True
            n = slots.number_from(u.text)
            if not changed and n is not None and "day" in u.text.lower():
                s["supply"], s["days_left"] = u.text, n
                changed = True
        elif t.kind in ("test_results", "symptoms", "new_patient"):
            phone = u.entity("phone")
            if phone is not None and isinstance(phone.value, str) and phone.value != s.get("phone"):
                s["phone"] = phone.value
                changed = True
            n = slots.number_from(u.text)
            if t.kind == "symptoms" and n is not None and 0 <= n <= 10 and phone is None:
                s["severity"] = n
                changed = True
        return changed

    def _commit(self) -> list[Command]:
        """The caller said yes to the read-back: write it."""
        t = self.task
        assert t is not None
        s = t.slots
        if t.kind == "schedule":
            self.state = State.WRITING
            return [BookSlot(s["slot"], self.patient_id, s["appointment_type"])]
        if t.kind == "reschedule":
            self.state = State.WRITING
            return [RescheduleAppointment(s["appointment"].id, self.patient_id, s["slot"])]
        if t.kind == "cancel":
            self.state = State.WRITING
            return [CancelAppointment(s["appointment"].id, self.patient_id)]
        data = {**t.record(), **self._who()}
        if t.kind == "refill":
            return self._finish(SaveRecord("refill", data), [Say(prompts.STATIC["refill_saved"])])
        if t.kind == "new_patient":
            data["request"] = "new_patient_appointment"
            return self._finish(
                SaveRecord("appointment", data),
                [Say(prompts.STATIC["new_patient_saved"], "new_patient_saved")],
            )
        if t.kind == "test_results":
            return self._finish(
                SaveRecord("message", data), [Say(prompts.STATIC["results_saved"], "results_saved")]
            )
        # symptoms → the nurse line; a high self-rated severity is flagged for a quicker call.
        urgent = isinstance(s.get("severity"), int) and s["severity"] >= 8
        data["queue"] = "nurse_line"
        says: list[Command] = [Say(prompts.STATIC["nurse_saved"], "nurse_saved")]
        advice = self._self_care(str(s.get("complaint", "")))
        if advice:
            says.append(Say(prompts.self_care(advice)))
        return self._finish(SaveRecord("message", data, urgent=urgent), says)

    def _finish(self, record: SaveRecord, says: list[Command]) -> list[Command]:
        assert self.task is not None
        self.requests.append({"intent": self.task.kind, "recorded": True})
        self.task = None
        self.reprompts = 0
        return [record, *says, *self._anything_else_prompt()]

    def _controlled(self) -> list[Command]:
        """Never promise a controlled substance: a message for the clinician to review directly."""
        assert self.task is not None
        data = {**self.task.record(), **self._who(), "controlled_substance": True}
        return self._finish(
            SaveRecord("message", data), [Say(prompts.STATIC["controlled"], "controlled")]
        )

    # -- data results ---------------------------------------------------------------------------

    def _looked_up(self, ev: PatientLookedUp) -> list[Command]:
        t = self.task
        assert t is not None
        if ev.failed:
            return self._system_down()
        if ev.found:
            self.patient_id = ev.patient_id
            self.medications = ev.medications
            self.id_attempts = 0
            if t.kind == "refill" and "medication" in t.slots and self.medications:
                t.slots["on_medication_list"] = t.slots["medication"] in self.medications
            return self._advance()
        self.id_attempts += 1
        if self.id_attempts < self.settings.max_id_attempts:
            self.identity = {}
            self.other_names = ()
            return self._advance()
        if t.kind == "schedule":
            # Perhaps new to the practice: collect their details for a first visit (the name and
            # birth date they gave are kept for the front desk, marked as not found).
            t.kind = "new_patient"
            t.slots = {"not_found_in_directory": True}
            return [
                Say(prompts.STATIC["id_failed_new_patient"], "id_failed_new_patient"),
                *self._advance(),
            ]
        self.pending = {**t.record(), **self._who(), "identity_not_confirmed": True}
        self._drop_task("identity_not_confirmed")
        return self._take_message(t.kind, "id_failed_message", keep_pending=True)

    def _slots_found(self, ev: SlotsFound) -> list[Command]:
        t = self.task
        assert t is not None
        s = t.slots
        if ev.failed:
            return self._system_down()
        want = s.pop("want_time", None)
        if want is not None:
            same = [x for x in ev.slots if x.starts_at.strftime("%H:%M") == want]
            if same:
                s["slot"] = same[0]
                return self._advance()
        if ev.slots:
            t.offered = ev.slots[:3]
            return self._ask("slot", None)
        t.empty_searches += 1
        prefs: SlotPreferences = s.pop("preferences", SlotPreferences())
        anything = not (prefs.dates or prefs.weekdays or prefs.not_before or prefs.not_after)
        if anything or t.empty_searches >= 2:
            self.pending = {**t.record(), "no_openings": True}
            self._drop_task("no_openings")
            return self._take_message(t.kind, "no_openings", keep_pending=True)
        return self._ask("preferences", "no_openings_then")

    def _listed(self, ev: AppointmentsListed) -> list[Command]:
        t = self.task
        assert t is not None
        if ev.failed:
            return self._system_down()
        if not ev.appointments:
            self.requests.append({"intent": t.kind, "completed": False, "why": "no_appointments"})
            self.task = None
            return [
                Say(prompts.STATIC["no_appointments"], "no_appointments"),
                *self._anything_else_prompt(),
            ]
        t.appointments = ev.appointments[:3]
        if len(t.appointments) == 1:
            t.slots["appointment"] = t.appointments[0]
            if t.kind == "cancel":
                return self._advance()  # the read-back names it
            only = prompts.appointments_listed([slots.spoken_slot(t.appointments[0].slot)])
            return [Say(only), *self._advance()]
        return self._advance()

    def _written(self, ev: Booked | Rescheduled | AppointmentCancelled) -> list[Command]:
        t = self.task
        assert t is not None
        s = t.slots
        if ev.failed:
            return self._system_down()
        if not ev.ok:
            if isinstance(ev, AppointmentCancelled):
                return self._system_down()
            # Another caller got the slot first (the store refuses double booking): look again.
            taken: Slot = s.pop("slot")
            s["preferences"] = _declined(s.get("preferences", SlotPreferences()), (taken.id,))
            return [Say(prompts.STATIC["slot_taken"], "slot_taken"), *self._advance()]
        data = {**t.record(), **self._who()}
        if isinstance(ev, Booked):
            when = slots.spoken_slot(s["slot"])
            data.update(action="booked", appointment_id=ev.appointment.id if ev.appointment else "")
            return self._finish(SaveRecord("appointment", data), [Say(prompts.booked(when))])
        if isinstance(ev, Rescheduled):
            when = slots.spoken_slot(s["slot"])
            data.update(action="rescheduled")
            return self._finish(SaveRecord("appointment", data), [Say(prompts.rescheduled(when))])
        when = slots.spoken_slot(s["appointment"].slot)
        data.update(action="cancelled")
        return self._finish(SaveRecord("appointment", data), [Say(prompts.cancelled(when))])

    def _system_down(self) -> list[Command]:
        """The directory or schedule failed or timed out ("I can't reach our records right now"):
        a message instead, so the request is not lost (the record writer spools it if the
        database is still away)."""
        assert self.task is not None
        self.pending = {**self.task.record(), "system_unavailable": True}
        self._drop_task("system_unavailable")
        return self._take_message(self.pending["intent"], "system_down", keep_pending=True)

    def _find_slots(self) -> list[Command]:
        t = self.task
        assert t is not None
        s = t.slots
        provider = s.get("provider", "")
        appointment_type = s.get("appointment_type", "")
        if t.kind == "reschedule":
            appt: Appointment = s["appointment"]
            provider, appointment_type = appt.slot.provider_id, appt.appointment_type
            s["appointment_type"] = appointment_type
        self.state = State.FINDING_SLOTS
        return [FindSlots(provider, appointment_type, s["preferences"])]

    # -- silence, keys, transfers, hang-up ------------------------------------------------------

    def _nothing(self, ev: NothingHeard) -> list[Command]:
        if self.state is State.ANYTHING_ELSE:
            return self._goodbye()
        if self.reprompts >= self.settings.max_reprompts:
            return self._give_up("no_input")
        self.reprompts += 1
        if self.state in (State.ASK, State.CONFIRM) and self.question:
            # Repeat the question itself: "are you still there, how can I help" would lose the thread.
            return [
                Say(prompts.STATIC["didnt_hear"], "didnt_hear"),
                *self.question,
                self._listen_again(),
            ]
        return [Say(prompts.STATIC["still_there"], "still_there"), self._listen_again()]

    def _dtmf(self, ev: DtmfReceived) -> list[Command]:
        yes_no_states = (State.EMERGENCY_OFFER, State.ANYTHING_ELSE, State.CONFIRM)
        if self.state in yes_no_states and ev.digit in "12":
            # "Press 1 for yes, 2 for no": the same path as a spoken answer.
            return self.handle(Heard(ev.now, _keyed(ev.digit == "1", ev.digit)))
        if self.state is State.ASK and self.task is not None and ev.digit in "123":
            choices = {"slot": len(self.task.offered), "appointment": len(self.task.appointments)}
            if int(ev.digit) <= choices.get(self.task.asking, 0):
                word = ("first", "second", "third")[int(ev.digit) - 1]
                keyed = Understanding(word, "en", "message", 1.0, "routine")
                return self.handle(Heard(ev.now, keyed))
        if ev.digit == "0":
            return self._to_front_desk("caller_pressed_zero")
        # A stray key: keep listening to the same question rather than leave the call waiting.
        return [self._listen_again()]

    def _transfer_ended(self, ev: TransferEnded) -> list[Command]:
        if ev.status == "answered":
            self.requests.append({"intent": "transfer", "target": ev.target, "answered": True})
            self.pending = {}
            self.state = State.ENDED
            return [SaveRecord("transfer", {"target": ev.target, "answered": True})]
        # Nobody answered: never leave an urgent or emergency caller without a next step.
        if self.pending.get("red_flags") is not None:
            self.state = State.URGENT_MESSAGE
            self.pending["urgent"] = True
            return [
                SaveRecord(
                    "transfer",
                    {"target": ev.target, "answered": False, "status": ev.status},
                    urgent=True,
                ),
                Say(prompts.STATIC["no_clinician"], "no_clinician"),
                self._listen(),
            ]
        if self.pending.get("transfer"):
            # Billing or the front desk did not pick up: their message, not a dead end.
            intent = self.pending.get("intent", "speak_to_staff")
            self.pending = {k: v for k, v in self.pending.items() if k != "transfer"}
            self.pending["transfer_status"] = ev.status
            return self._take_message(intent, "nobody_free", keep_pending=True)
        return [HandBack(f"transfer_{ev.status}")]

    def _hung_up(self, ev: CallerHungUp) -> list[Command]:
        prior = self.state
        self.state = State.ENDED
        out: list[Command] = []
        partial: dict[str, Any] | None = None
        if self.task is not None:
            partial = {**self.task.record(), **self._who()}
            self._drop_task("caller_hung_up")
        elif self.pending and prior in (State.MESSAGE, State.URGENT_MESSAGE, State.REQUEST):
            partial = {**self.pending, "caller_number": self.caller_number}
        if partial is not None:
            # A request the caller did not finish is kept as a message so staff can follow up.
            out.append(
                SaveRecord(
                    "message",
                    {**partial, "partial": True},
                    urgent=bool(partial.get("urgent")),
                )
            )
        out.append(SaveRecord("summary", self.summary()))
        return out

    def _hung_up_after_end(self, ev: CallerHungUp) -> list[Command]:
        return [SaveRecord("summary", self.summary())]

    # -- helpers --------------------------------------------------------------------------------

    def _listen(self, expect: Expect = "open", *, detail: bool = False) -> Listen:
        return Listen(expect=expect, timeout_s=self.settings.no_input_timeout_s, detail=detail)

    def _listen_for(self, slot: str) -> Listen:
        """Listening for the answer to the question for ``slot``."""
        if slot == "screen":
            return self._listen("yes_no")
        return self._listen(detail=slot not in TOLD_SLOTS)

    def _listen_again(self) -> Listen:
        """Listening once more for the answer to the question last asked."""
        if self.state is State.ASK and self.task is not None:
            return self._listen_for(self.task.asking)
        return self._listen(self.expect)

    def _anything_else_prompt(self) -> list[Command]:
        self.state = State.ANYTHING_ELSE
        return [Say(prompts.STATIC["anything_else"], "anything_else"), self._listen("yes_no")]

    def _reprompt(self) -> list[Command]:
        if self.reprompts >= self.settings.max_reprompts:
            return self._give_up("not_understood")
        self.reprompts += 1
        key = "didnt_catch" if self.reprompts == 1 else "didnt_catch_again"
        return [Say(prompts.STATIC[key], key), self._listen()]

    def _reprompt_yes_no(self) -> list[Command]:
        if self.reprompts >= self.settings.max_reprompts:
            return self._give_up("not_understood")
        self.reprompts += 1
        return [Say(prompts.STATIC["yes_no_again"], "yes_no_again"), self._listen("yes_no")]

    def _reprompt_confirm(self) -> list[Command]:
        if self.reprompts >= self.settings.max_reprompts:
            return self._give_up("not_understood")
        self.reprompts += 1
        return [Say(prompts.STATIC["confirm_again"], "confirm_again"), self._listen("yes_no")]

    def _give_up(self, reason: str) -> list[Command]:
        """After the re-prompts, offer a person: hand the call to staff, never leave the caller
        stuck; a half-done request goes with it as a message."""
        out: list[Command] = []
        if self.task is not None:
            data = {**self.task.record(), **self._who(), "partial": True, "gave_up": reason}
            out.append(SaveRecord("message", data))
            self._drop_task(reason)
        self.state = State.ENDED
        return [*out, Say(prompts.STATIC["connecting_staff"], "connecting_staff"), HandBack(reason)]

    def _goodbye(self) -> list[Command]:
        self.state = State.ENDED
        return [Say(prompts.STATIC["goodbye"], "goodbye"), Hangup(drain=True)]

    def _who(self) -> dict[str, Any]:
        """Who the request is for, as staff need it on the record."""
        return {
            "caller_number": self.caller_number,
            "patient_id": self.patient_id,
            "verified": self.verified,
            **{k: v for k, v in self.identity.items()},
        }

    def _faq_answer(self, text: str) -> str | None:
        ws = set(re.findall(r"[a-záéíóúñ]+", text.lower()))
        for topic, cues in FAQ_TOPICS.items():
            if topic in self.settings.faq and ws & set(cues):
                return self.settings.faq[topic]
        return None

    def _self_care(self, complaint: str) -> str | None:
        ws = set(slots.words(complaint))
        for topic, text in self.settings.self_care.items():
            if set(slots.words(topic.replace("_", " "))) <= ws:
                return text
        return None

    def _provider_in(self, u: Understanding) -> str | None:
        e = u.entity("provider")
        known = {p.id for p in self.settings.providers}
        if e is not None and isinstance(e.value, str) and (not known or e.value in known):
            return e.value
        ws = set(slots.words(u.text))
        for p in self.settings.providers:
            surname = slots.words(p.name)[-1:]
            if surname and surname[0] in ws:
                return p.id
        return None

    def _appointment_type(self, provider_id: str) -> str:
        types = next(
            (p.appointment_types for p in self.settings.providers if p.id == provider_id), ()
        )
        if not types and self.settings.providers:
            types = self.settings.providers[0].appointment_types
        return "follow-up" if "follow-up" in types or not types else types[0]

    def _medication_in(self, u: Understanding) -> str | None:
        e = u.entity("medication")
        if e is not None and isinstance(e.value, str) and e.value:
            return e.value.lower()
        ws = set(slots.words(u.text))
        return next((m for m in self.medications if m.lower() in ws), None)

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


def _yes_no(u: Understanding) -> bool | None:
    e = u.entity("yes_no")
    return e.value if e is not None and isinstance(e.value, bool) else None


def _keyed(yes: bool, digit: str) -> Understanding:
    return Understanding(
        text="yes" if yes else "no",
        lang="en",
        intent="message",
        confidence=1.0,
        urgency="routine",
        entities=[Entity("yes_no", f"dtmf {digit}", yes)],
    )


CLOSINGS = (
    "that's all",
    "that is all",
    "that's it",
    "nothing else",
    "i'm good",
    "i'm fine thanks",
    "goodbye",
    "bye",
    "no thank",
    "eso es todo",
    "nada más",
    "nada mas",
)


def _done(u: Understanding) -> bool:
    """The caller has nothing more: a bare "no", or a closing phrase ("no, that's all, thanks")."""
    text = " ".join(re.findall(r"[\w']+", u.text.lower()))
    return (_yes_no(u) is False and _short(text)) or any(
        re.search(rf"\b{c}\b", text) for c in CLOSINGS
    )


_READ_BACK_TAILS = frozenset(
    {"that's correct", "that is correct", "that's right", "that is right", "correct", "exactly"}
)


def _read_back_tail(text: str) -> bool:
    return " ".join(re.findall(r"[\w']+", text.lower())) in _READ_BACK_TAILS


def _short(text: str) -> bool:
    """A bare answer ("no thanks", "yes please", "that's all") rather than a new sentence."""
    return len(text.split()) <= 4


def _said_any(text: str, cues: tuple[str, ...] | frozenset[str]) -> bool:
    lowered = " ".join(slots.words(text))
    return any(re.search(rf"\b{re.escape(c)}\b", lowered) for c in cues)


def _new_patient(text: str) -> bool:
    return bool(
        re.search(r"\bnew patient\b|\bfirst (?:visit|appointment)\b|\bnever been\b", text.lower())
    )


def _declined(prefs: SlotPreferences, ids: Any) -> SlotPreferences:
    more = tuple(x.id if isinstance(x, Slot) else str(x) for x in ids)
    return replace(prefs, exclude=tuple(dict.fromkeys((*prefs.exclude, *more))))


def _slot_record(slot: Slot) -> dict[str, Any]:
    return {
        "slot_id": slot.id,
        "provider_id": slot.provider_id,
        "starts_at": slot.starts_at.isoformat(),
    }


def _spoken_dose(e: Entity) -> str:
    if isinstance(e.value, dict) and "amount" in e.value:
        amount = e.value["amount"]
        number = int(amount) if float(amount).is_integer() else amount
        unit = {"mg": "milligrams", "mcg": "micrograms", "ml": "milliliters", "g": "grams"}.get(
            str(e.value.get("unit", "")), str(e.value.get("unit", ""))
        )
        return f"{number} {unit}".strip()
    return e.text


def _spoken_pharmacy(e: Entity) -> str:
    if isinstance(e.value, dict) and e.value.get("chain"):
        location = e.value.get("location")
        return f"{e.value['chain']} on {location}" if location else str(e.value["chain"])
    return e.text


def _supply_sentence(s: dict[str, Any]) -> str:
    days = s.get("days_left")
    if days is None:
        return ""
    if days == 0:
        return "You have run out."
    return f"You have about {days} day{'s' if days != 1 else ''} left."


def _entities(u: Understanding) -> list[dict[str, Any]]:
    return [{"label": e.label, "text": e.text, "value": e.value} for e in u.entities]


def _clinician_summary(
    caller_number: str, flags: list[str], text: str, name: str, verified: bool
) -> str:
    if verified and name:
        who = f"A verified patient, {name},"
    elif name:
        who = f"A caller who gave the name {name}, not verified,"
    else:
        who = "An unverified caller"
    number = slots.spoken_digits(caller_number) if caller_number.isdigit() else "not available"
    concern = ", ".join(flags) if flags else "a concern"
    return (
        f"This is the answering assistant with a patient call. {who} reports {concern}. "
        f"They said: {text.rstrip('.!? ')}. Call-back number: {number}. Connecting you now."
    )


Handler = Callable[[Dialog, Any], list[Command]]
_LISTENING = (
    State.REQUEST,
    State.EMERGENCY_OFFER,
    State.MESSAGE,
    State.URGENT_MESSAGE,
    State.ASK,
    State.CONFIRM,
    State.ANYTHING_ELSE,
)
_WAITING_FOR_DATA = (State.LOOKING_UP, State.FINDING_SLOTS, State.LISTING, State.WRITING)


def _ask_or_correct(d: Dialog, ev: Heard) -> list[Command]:
    # "What should I change?" is asked in ASK too; its answer is a correction, not a slot.
    if d.task is not None and d.task.asking == "correction":
        d.transcript.append(ev.understanding.text)
        u = ev.understanding
        if u.urgency == "emergency":
            return d._emergency(u)
        if u.urgency == "urgent":
            return d._urgent(u)
        if d._switches_topic(u):
            return d._switch(u)
        return d._correction(u)
    return d._answer(ev)


TABLE: dict[tuple[State, type], Handler] = {
    (State.NEW, CallStarted): Dialog._start,
    (State.REQUEST, Heard): Dialog._request,
    (State.EMERGENCY_OFFER, Heard): Dialog._emergency_offer,
    (State.MESSAGE, Heard): Dialog._message,
    (State.URGENT_MESSAGE, Heard): Dialog._message,
    (State.ASK, Heard): _ask_or_correct,
    (State.CONFIRM, Heard): Dialog._confirmation,
    (State.ANYTHING_ELSE, Heard): Dialog._anything_else,
    (State.LOOKING_UP, PatientLookedUp): Dialog._looked_up,
    (State.FINDING_SLOTS, SlotsFound): Dialog._slots_found,
    (State.LISTING, AppointmentsListed): Dialog._listed,
    (State.WRITING, Booked): Dialog._written,
    (State.WRITING, Rescheduled): Dialog._written,
    (State.WRITING, AppointmentCancelled): Dialog._written,
    (State.TRANSFERRING, TransferEnded): Dialog._transfer_ended,
    **{(s, NothingHeard): Dialog._nothing for s in _LISTENING},
    **{(s, DtmfReceived): Dialog._dtmf for s in _LISTENING},
    **{
        (s, CallerHungUp): Dialog._hung_up
        for s in (*_LISTENING, *_WAITING_FOR_DATA, State.NEW, State.TRANSFERRING)
    },
    (State.ENDED, CallerHungUp): Dialog._hung_up_after_end,
}
