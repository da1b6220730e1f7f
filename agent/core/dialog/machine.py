"""The call's dialog state machine: one table, pure, driven by events, returning commands.

Everything that affects the state lives in ``TABLE`` below: ``(state, event type) → handler``. An event
with no row raises ``IllegalTransition`` and leaves the state untouched. A hangup is a row for every
live state, not a scattered try/except.

Safety rules enforced here (product rules, not options):
- an emergency red flag is answered in the same turn with the instruction to hang up and dial the
  emergency number, spoken uninterruptibly, before anything else; then the on-call clinician is offered;
  an emergency is never put in a queue;
- an urgent red flag goes to the on-call clinician (warm transfer with a spoken summary), and when nobody
  answers, to an urgent message;
- the agent never diagnoses and never reads out results: it has no prompt that could.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from agent.core.dialog import prompts
from agent.core.dialog.commands import (
    CallerHungUp,
    CallStarted,
    Command,
    DtmfReceived,
    Event,
    Expect,
    HandBack,
    Hangup,
    Heard,
    Listen,
    NothingHeard,
    SaveRecord,
    Say,
    Transfer,
    TransferEnded,
)
from agent.core.understanding import Entity, Understanding


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
    ANYTHING_ELSE = "anything_else"
    TRANSFERRING = "transferring"
    ENDED = "ended"


class IllegalTransition(Exception):
    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"no transition from {state.value} on {type(event).__name__}")
        self.state = state
        self.event = event


@dataclass(frozen=True)
class DialogSettings:
    greeting: str
    emergency_number: str = "911"
    on_call: tuple[str, ...] = ()
    front_desk: str = ""
    ring_timeout_s: int = 20
    min_confidence: float = 0.5
    max_reprompts: int = 2
    faq: dict[str, str] = field(default_factory=dict)
    no_input_timeout_s: float = 8.0


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


@dataclass
class Dialog:
    settings: DialogSettings
    state: State = State.NEW
    reprompts: int = 0
    caller_number: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """What the caller asked for, in order (a call can carry more than one request)."""
    pending: dict[str, Any] = field(default_factory=dict)
    """The request being worked on (kept as a partial message if the caller hangs up)."""
    transcript: list[str] = field(default_factory=list)

    # -- the one entry point ------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        handler = TABLE.get((self.state, type(event)))
        if handler is None:
            raise IllegalTransition(self.state, event)
        return handler(self, event)

    @property
    def expect(self) -> Expect:
        return "yes_no" if self.state in (State.EMERGENCY_OFFER, State.ANYTHING_ELSE) else "open"

    # -- handlers -------------------------------------------------------------------------------

    def _start(self, ev: CallStarted) -> list[Command]:
        self.caller_number = ev.caller_number
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
        if u.intent == "speak_to_staff":
            return self._to_front_desk("caller_asked_for_staff")
        if u.intent == "office_info":
            answer = self._faq_answer(u.text)
            if answer:
                self.requests.append({"intent": "office_info", "answered": True})
                self.state = State.ANYTHING_ELSE
                return [
                    Say(answer),
                    Say(prompts.STATIC["anything_else"], "anything_else"),
                    self._listen("yes_no"),
                ]
        self.pending = {"intent": u.intent, "request_text": u.text, "entities": _entities(u)}
        self.state = State.MESSAGE
        ack = prompts.intent_ack(u.intent)
        says: list[Command] = [Say(ack)] if ack else []
        return [*says, Say(prompts.STATIC["take_message"], "take_message"), self._listen()]

    def _emergency(self, u: Understanding) -> list[Command]:
        # The instruction comes first, whatever else the caller said; nothing is queued.
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
                summary=_clinician_summary(self.caller_number, flags, text),
                ring_timeout_s=self.settings.ring_timeout_s,
            ),
        ]

    def _to_front_desk(self, reason: str) -> list[Command]:
        self.requests.append({"intent": "speak_to_staff"})
        if not self.settings.front_desk:
            return [HandBack(reason)]
        self.state = State.TRANSFERRING
        return [
            Say(prompts.STATIC["connecting_front_desk"], "connecting_front_desk"),
            Transfer(
                (self.settings.front_desk,),
                reason=reason,
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

    def _message(self, ev: Heard) -> list[Command]:
        u = ev.understanding
        self.transcript.append(u.text)
        if u.urgency == "emergency":
            return self._emergency(u)
        if not u.text.strip():
            return self._reprompt()
        urgent = self.state is State.URGENT_MESSAGE or bool(self.pending.get("urgent"))
        data = {**self.pending, "message": u.text, "caller_number": self.caller_number}
        data["entities"] = [*data.get("entities", []), *_entities(u)]
        self.requests.append({"intent": data.get("intent", "message"), "recorded": True})
        self.pending = {}
        self.state = State.ANYTHING_ELSE
        key = "urgent_message_saved" if urgent else "message_saved"
        return [
            SaveRecord("message", data, urgent=urgent),
            Say(prompts.STATIC[key], key),
            self._listen("yes_no"),
        ]

    def _anything_else(self, ev: Heard) -> list[Command]:
        u = ev.understanding
        answer = _yes_no(u)
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
            return [Say("Okay. What else can I help with?"), self._listen()]
        return self._reprompt_yes_no()

    def _nothing(self, ev: NothingHeard) -> list[Command]:
        if self.state is State.ANYTHING_ELSE:
            return self._goodbye()
        if self.reprompts >= self.settings.max_reprompts:
            return self._give_up("no_input")
        self.reprompts += 1
        return [Say(prompts.STATIC["still_there"], "still_there"), self._listen(self.expect)]

    def _dtmf(self, ev: DtmfReceived) -> list[Command]:
        if self.state in (State.EMERGENCY_OFFER, State.ANYTHING_ELSE) and ev.digit in "12":
            # "Press 1 for yes, 2 for no": the same path as a spoken answer.
            yes = ev.digit == "1"
            keyed = Understanding(
                text="yes" if yes else "no",
                lang="en",
                intent="message",
                confidence=1.0,
                urgency="routine",
                entities=[Entity("yes_no", f"dtmf {ev.digit}", yes)],
            )
            return self.handle(Heard(ev.now, keyed))
        if ev.digit == "0":
            return self._to_front_desk("caller_pressed_zero")
        return []

    def _transfer_ended(self, ev: TransferEnded) -> list[Command]:
        if ev.status == "answered":
            self.requests.append({"intent": "transfer", "target": ev.target, "answered": True})
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
        return [HandBack(f"transfer_{ev.status}")]

    def _hung_up(self, ev: CallerHungUp) -> list[Command]:
        prior = self.state
        self.state = State.ENDED
        out: list[Command] = []
        if self.pending and prior in (State.MESSAGE, State.URGENT_MESSAGE, State.REQUEST):
            # A request the caller did not finish is kept as a message so staff can follow up.
            out.append(
                SaveRecord(
                    "message",
                    {**self.pending, "partial": True, "caller_number": self.caller_number},
                    urgent=bool(self.pending.get("urgent")),
                )
            )
        out.append(SaveRecord("summary", self.summary()))
        return out

    def _hung_up_after_end(self, ev: CallerHungUp) -> list[Command]:
        return [SaveRecord("summary", self.summary())]

    # -- helpers --------------------------------------------------------------------------------

    def _listen(self, expect: Expect = "open") -> Listen:
        return Listen(expect=expect, timeout_s=self.settings.no_input_timeout_s)

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

    def _give_up(self, reason: str) -> list[Command]:
        """After the re-prompts, offer a person: hand the call to staff, never leave the caller stuck."""
        self.state = State.ENDED
        return [Say(prompts.STATIC["connecting_staff"], "connecting_staff"), HandBack(reason)]

    def _goodbye(self) -> list[Command]:
        self.state = State.ENDED
        return [Say(prompts.STATIC["goodbye"], "goodbye"), Hangup(drain=True)]

    def _faq_answer(self, text: str) -> str | None:
        words = set(re.findall(r"[a-záéíóúñ]+", text.lower()))
        for topic, cues in FAQ_TOPICS.items():
            if topic in self.settings.faq and words & set(cues):
                return self.settings.faq[topic]
        return None

    def summary(self) -> dict[str, Any]:
        """Structured end-of-call summary for the record (reason, urgency, actions, open items)."""
        urgencies = [r["intent"] for r in self.requests if r["intent"] in ("emergency", "urgent")]
        return {
            "reasons": [r["intent"] for r in self.requests],
            "urgency": urgencies[0] if urgencies else "routine",
            "actions": self.requests,
            "open_items": [self.pending] if self.pending else [],
            "final_state": self.state.value,
        }


def _yes_no(u: Understanding) -> bool | None:
    e = u.entity("yes_no")
    return e.value if e is not None and isinstance(e.value, bool) else None


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


def _short(text: str) -> bool:
    """A bare answer ("no thanks", "yes please", "that's all") rather than a new sentence."""
    return len(text.split()) <= 4


def _entities(u: Understanding) -> list[dict[str, Any]]:
    return [{"label": e.label, "text": e.text, "value": e.value} for e in u.entities]


def _clinician_summary(caller_number: str, flags: list[str], text: str) -> str:
    who = "An unverified caller"
    number = " ".join(caller_number) if caller_number.isdigit() else "not available"
    concern = ", ".join(flags) if flags else "a concern"
    return (
        f"This is the answering assistant with a patient call. {who} reports {concern}. "
        f"They said: {text}. Call-back number: {number}. Connecting you now."
    )


Handler = Callable[[Dialog, Any], list[Command]]
_LIVE = (
    State.REQUEST,
    State.EMERGENCY_OFFER,
    State.MESSAGE,
    State.URGENT_MESSAGE,
    State.ANYTHING_ELSE,
)

TABLE: dict[tuple[State, type], Handler] = {
    (State.NEW, CallStarted): Dialog._start,
    (State.REQUEST, Heard): Dialog._request,
    (State.EMERGENCY_OFFER, Heard): Dialog._emergency_offer,
    (State.MESSAGE, Heard): Dialog._message,
    (State.URGENT_MESSAGE, Heard): Dialog._message,
    (State.ANYTHING_ELSE, Heard): Dialog._anything_else,
    (State.TRANSFERRING, TransferEnded): Dialog._transfer_ended,
    **{(s, NothingHeard): Dialog._nothing for s in _LIVE},
    **{(s, DtmfReceived): Dialog._dtmf for s in _LIVE},
    **{(s, CallerHungUp): Dialog._hung_up for s in (*_LIVE, State.NEW, State.TRANSFERRING)},
    (State.ENDED, CallerHungUp): Dialog._hung_up_after_end,
}
