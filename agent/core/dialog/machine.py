"""The call's dialog state machine: one table, pure, driven by events, returning commands.

Everything that affects the state is here. ``TABLE`` names, for each ``(state, event type)``, the
handler that takes the event and every state that handler may leave the dialog in; ``FIRST`` names
what a caller's words outrank the table with (a red flag, a new request mid-task). Read together
they are the whole graph (``graph()`` draws it). An event with no row raises ``IllegalTransition``
and leaves the state untouched; so does a handler that tries a move its row does not name
(``Context.move``). A hangup is a row for every state, not a scattered try/except.

Safety rules enforced by the machine (product rules, not options):
- an emergency red flag is answered in the same turn with the instruction to hang up and dial the
  emergency number, spoken uninterruptibly, before anything else; then the on-call clinician is
  offered; an emergency is never put in a queue; this holds in every listening state, mid-booking
  included (``FIRST``, ``escalation``);
- an urgent red flag goes to the on-call clinician (warm transfer with a spoken summary), and when
  nobody answers, to an urgent message;
- the agent never diagnoses and never reads out results: it has no prompt that could;
- nothing patient-specific happens before the caller's name and date of birth matched the patient
  directory, and anything written is read back and confirmed first (``workflows``).

Where the rest lives: ``conversation`` (greeting, the open question, messages, "anything else?",
silence, keys, hang-up), ``escalation`` (emergency, urgent, on-call, front desk, billing),
``workflows`` (the table of workflows: what each asks, reads back and writes), ``answers`` (how the
caller's answers fill a task), ``results`` (the directory's and the schedule's answers),
``phrases`` (word lists), ``context`` (what the dialog knows about the call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from agent.core.dialog import answers, conversation, escalation, results
from agent.core.dialog.commands import (
    AppointmentCancelled,
    AppointmentsListed,
    Booked,
    CallerHungUp,
    CallStarted,
    Command,
    DtmfReceived,
    Event,
    Heard,
    Listen,
    NothingHeard,
    PatientLookedUp,
    Rescheduled,
    Say,
    SlotsFound,
    TransferEnded,
)
from agent.core.dialog.context import Context, DialogSettings, ProviderInfo, State
from agent.core.dialog.phrases import (
    command,
    distressed,
    is_question,
    read_back_tail,
    wants_spanish,
)
from agent.core.dialog.workflows import TASK_INTENTS
from agent.core.understanding import Understanding
from agent.errors import IllegalTransition

__all__ = [
    "FIRST",
    "TABLE",
    "Dialog",
    "DialogSettings",
    "IllegalTransition",
    "ProviderInfo",
    "Row",
    "State",
    "graph",
]

Handler = Callable[[Context, Any], list[Command]]


@dataclass(frozen=True)
class Row:
    handler: Handler
    to: frozenset[State]
    """Every state the handler may leave the dialog in; its own state too when it may stay."""


def row(handler: Handler, *to: State | Iterable[State]) -> Row:
    """A row whose handler may move to each state named, or named in a set (``NEXT_STEP``)."""
    states: set[State] = set()
    for t in to:
        states |= {t} if isinstance(t, State) else set(t)
    return Row(handler, frozenset(states))


# The states by their bare names, so that the table below reads as the graph it is.
NEW = State.NEW
REQUEST = State.REQUEST
EMERGENCY_OFFER = State.EMERGENCY_OFFER
MESSAGE = State.MESSAGE
URGENT_MESSAGE = State.URGENT_MESSAGE
ASK = State.ASK
CONFIRM = State.CONFIRM
LOOKING_UP = State.LOOKING_UP
FINDING_SLOTS = State.FINDING_SLOTS
LISTING = State.LISTING
WRITING = State.WRITING
ANYTHING_ELSE = State.ANYTHING_ELSE
TRANSFERRING = State.TRANSFERRING
ENDED = State.ENDED

LISTENING = (REQUEST, EMERGENCY_OFFER, MESSAGE, URGENT_MESSAGE, ASK, CONFIRM, ANYTHING_ELSE)
"""States that wait for the caller to speak (or key)."""

NEXT_STEP = frozenset({ASK, LOOKING_UP, FINDING_SLOTS, LISTING, CONFIRM, ANYTHING_ELSE})
"""Where a workflow's next step leaves the call (``workflows.advance``): a question, a lookup, the
read-back, or straight to "anything else?" (a controlled-substance refill becomes a message)."""

NEW_REQUEST = NEXT_STEP | {MESSAGE, TRANSFERRING}
"""Where a new request leaves it (``conversation.route``): a workflow, a message, the front desk or
billing, or an FAQ answer then "anything else?". With no front desk configured, a request for staff
is handed back to the dialplan without a move: rows that route name their own state as well."""

TABLE: dict[tuple[State, type], Row] = {
    (NEW, CallStarted): row(conversation.start, REQUEST),
    # What the caller says, in each listening state (after ``FIRST``).
    (REQUEST, Heard): row(conversation.request, REQUEST, NEW_REQUEST, ENDED),
    (EMERGENCY_OFFER, Heard): row(
        escalation.emergency_offer, EMERGENCY_OFFER, TRANSFERRING, URGENT_MESSAGE, ENDED
    ),
    (MESSAGE, Heard): row(conversation.message, MESSAGE, ANYTHING_ELSE, ENDED),
    (URGENT_MESSAGE, Heard): row(conversation.message, URGENT_MESSAGE, ANYTHING_ELSE, ENDED),
    # Yes to the symptom workflow's screening question, or to a protocol's 911 question, is an
    # emergency (EMERGENCY_OFFER); yes to a see-now question, or no clear answer to a protocol's
    # safety question, goes to the on-call clinician (TRANSFERRING, or URGENT_MESSAGE with nobody
    # on call).
    (ASK, Heard): row(
        answers.answer, ASK, NEXT_STEP, EMERGENCY_OFFER, TRANSFERRING, URGENT_MESSAGE, ENDED
    ),
    (CONFIRM, Heard): row(answers.confirmation, CONFIRM, NEXT_STEP, WRITING, ENDED),
    (ANYTHING_ELSE, Heard): row(
        conversation.anything_else, ANYTHING_ELSE, REQUEST, NEW_REQUEST, ENDED
    ),
    # The call session's answers to data commands.
    (LOOKING_UP, PatientLookedUp): row(results.looked_up, NEXT_STEP - {LOOKING_UP}, MESSAGE),
    (FINDING_SLOTS, SlotsFound): row(results.slots_found, ASK, CONFIRM, MESSAGE),
    (LISTING, AppointmentsListed): row(results.listed, ASK, CONFIRM, ANYTHING_ELSE, MESSAGE),
    (WRITING, Booked): row(results.written, FINDING_SLOTS, ANYTHING_ELSE, MESSAGE),
    (WRITING, Rescheduled): row(results.written, FINDING_SLOTS, ANYTHING_ELSE, MESSAGE),
    (WRITING, AppointmentCancelled): row(results.written, ANYTHING_ELSE, MESSAGE),
    # Nobody answered a transfer with no message to fall back on: handed back to the dialplan.
    (TRANSFERRING, TransferEnded): row(
        escalation.transfer_ended, ENDED, URGENT_MESSAGE, MESSAGE, TRANSFERRING
    ),
    # Silence: asked again, then handed to staff; after "anything else?" it means no.
    **{(s, NothingHeard): row(conversation.nothing, s, ENDED) for s in LISTENING},
    (ANYTHING_ELSE, NothingHeard): row(conversation.nothing_else, ENDED),
    # Keys: 0 for the front desk; 1/2 for yes/no and 1-3 for a choice are taken as said
    # (``conversation.spoken``: ``Dialog.handle`` turns them into ``Heard`` first).
    **{(s, DtmfReceived): row(conversation.pressed, s, TRANSFERRING) for s in LISTENING},
    # The caller hung up: from every state.
    **{(s, CallerHungUp): row(conversation.hung_up, ENDED) for s in State if s is not ENDED},
    (ENDED, CallerHungUp): row(conversation.hung_up_after_end, ENDED),
}

FIRST: dict[tuple[State, str], Row] = {
    # An emergency red flag outranks whatever else the caller said, in every state that listens
    # but the emergency offer (the 911 instruction was just given; its yes/no is what is asked).
    **{
        (s, "emergency"): row(escalation.emergency_heard, EMERGENCY_OFFER)
        for s in (REQUEST, ANYTHING_ELSE, ASK, CONFIRM, MESSAGE, URGENT_MESSAGE)
    },
    # An urgent one goes to the on-call clinician, but not out of a message being left: there the
    # words are the message (urgent in URGENT_MESSAGE; in MESSAGE as urgent as its request was).
    **{
        (s, "urgent"): row(escalation.urgent_heard, TRANSFERRING, URGENT_MESSAGE)
        for s in (REQUEST, ANYTHING_ELSE, ASK, CONFIRM)
    },
    # A problem the protocols say needs a clinician today, but not now ("it burns when I pee"):
    # the symptom call, whatever the intent model made of the words; its protocol's more severe
    # questions are asked first (``workflows``).
    (REQUEST, "same day"): row(conversation.symptom_call, NEXT_STEP),
    (ANYTHING_ELSE, "same day"): row(conversation.symptom_call, NEXT_STEP),
    # A command steers the call in any state that listens ("operator", "repeat that", "go back",
    # "start over"; ``phrases.command``): a person, the last words again, the question before, or
    # the open question. At the emergency offer, asking for a person is a yes to the clinician.
    **{
        (s, "command"): row(conversation.steer, s, REQUEST, TRANSFERRING, MESSAGE, ENDED, NEXT_STEP)
        for s in (REQUEST, ASK, CONFIRM, ANYTHING_ELSE, MESSAGE, URGENT_MESSAGE)
    },
    # Mid-task, an office question is answered and the task goes on where it was.
    (ASK, "aside"): row(conversation.aside, ASK),
    (CONFIRM, "aside"): row(conversation.aside, CONFIRM),
    # An upset caller hears an apology and is offered a person before anything else.
    (REQUEST, "distress"): row(conversation.distress, REQUEST),
    (ANYTHING_ELSE, "distress"): row(conversation.distress, REQUEST),
    # Right after a booking, "no, wait, the fifteenth" moves it.
    (ANYTHING_ELSE, "late correction"): row(conversation.late_correction, NEXT_STEP),
    # Mid-task, a new request outranks taking the words as an answer (``answers.new_request``).
    (ASK, "new request"): row(conversation.switch, ASK, NEW_REQUEST),
    (CONFIRM, "new request"): row(conversation.switch, CONFIRM, NEW_REQUEST),
}
"""What a caller's words are taken as before their state's ``Heard`` row, by state: the first of
their red flag's urgency, then a new request mid-task, that has a row here."""


def first(d: Context, u: Understanding) -> Row | None:
    """The row of ``FIRST`` the words ``u`` take, if any."""
    red_flag = u.urgency != "routine"
    if d.state is ANYTHING_ELSE and read_back_tail(u.text):
        # The tail of a "yes, that's correct" split by a pause answers nothing new, and is taken
        # for that first (a red flag on those words can only come from a recogniser's other
        # hypothesis).
        red_flag = False
    if d.state is ASK and d.task is None:
        # Asking with no task is a bug (a hand-back that did not end the dialog): the row's
        # handler asserts it before anything else.
        red_flag = False
    if red_flag and u.urgency == "urgent" and same_day_only(d, u):
        # Not the on-call clinician now: the protocol's questions first, then a call-back today.
        # A clear request for something else ("a refill, I've run out of insulin") is done as
        # asked, and what it leaves for staff is marked for today (``workflows.finish``); "can I
        # come in, it stings when I pee" is a health problem first (the nurse line can book).
        if d.task is not None and d.task.kind == "symptoms":
            return None
        if u.intent in AS_ASKED and u.confidence >= d.settings.min_confidence:
            return None
        return FIRST.get((d.state, "same day"))
    if red_flag and (d.state, u.urgency) in FIRST:
        return FIRST[(d.state, u.urgency)]
    if (command(u.text) is not None or wants_spanish(u.text)) and (d.state, "command") in FIRST:
        short_enough = d.state not in (MESSAGE, URGENT_MESSAGE) or len(u.text.split()) <= 3
        if short_enough:
            return FIRST[(d.state, "command")]
    if (d.state, "aside") in FIRST and conversation.office_answer(d, u) and is_question(u.text):
        return FIRST[(d.state, "aside")]
    if (d.state, "distress") in FIRST and distressed(u.text):
        return FIRST[(d.state, "distress")]
    if (d.state, "late correction") in FIRST and conversation.late_correction_of(d, u):
        return FIRST[(d.state, "late correction")]
    if (d.state, "new request") in FIRST and answers.new_request(d, u):
        return FIRST[(d.state, "new request")]
    return None


AS_ASKED = TASK_INTENTS - {"schedule", "symptoms"}
"""Requests done as asked when the words also carry a same-day sign."""


def same_day_only(d: Context, u: Understanding) -> bool:
    """Every urgent flag of ``u`` is the sign of a protocol question whose yes means a clinician
    today, not now (the pack's own urgent rules mean now)."""
    book = d.settings.protocols
    if book is None:
        return False
    urgent = [f for f in u.red_flags if f.urgency == "urgent"]
    if not urgent:
        return False
    for flag in urgent:
        found = book.find_question(flag.rule_id)
        if found is None or found[1].disposition != "same_day":
            return False
    return True


class Dialog(Context):
    """One call's dialog: ``handle`` each event in order, carry out the commands it returns."""

    def handle(self, event: Event) -> list[Command]:
        """The one entry point: the row for the event in this state, its commands."""
        taken = TABLE.get((self.state, type(event)))
        if taken is None:
            raise IllegalTransition(self.state.value, type(event).__name__)
        if isinstance(event, DtmfReceived):
            said = conversation.spoken(self, event)
            if said is not None:
                # "Press 1 for yes": the same path as the spoken answer.
                event, taken = said, TABLE[(self.state, Heard)]
        if isinstance(event, Heard):
            self.transcript.append(event.understanding.text)
            self._language(event.understanding)
            taken = first(self, event.understanding) or taken
        out = self._take(taken, event)
        if self.lang != "en":
            out = [_in_language(c, self.lang) for c in out]
        if isinstance(event, Heard):
            # Only the turn right after a booking can correct it.
            self.just_booked = None
        spoken: list[Command] = [c for c in out if isinstance(c, Say)]
        if spoken:
            self.said = spoken
        return out

    def _language(self, u: Understanding) -> None:
        """The caller's language, from what they said to an open question ("necesito una cita"),
        or from asking for it ("español"): every prompt after that is in it. Answers to a
        question (a name, a date, "sí") do not change it."""
        if wants_spanish(u.text):
            self.lang = "es"
        elif self.state in (REQUEST, ANYTHING_ELSE) and len(u.text.split()) >= 2:
            self.lang = (
                "es" if u.lang == "es" else ("en" if len(u.text.split()) >= 4 else self.lang)
            )

    def _take(self, taken: Row, event: Event) -> list[Command]:
        before = self.state
        self.moves = taken.to
        try:
            out = taken.handler(self, event)
            if self.state not in taken.to:
                raise IllegalTransition(before.value, f"{type(event).__name__} (left unmoved)")
        except IllegalTransition:
            self.state = before
            raise
        finally:
            self.moves = frozenset()
        return out


def _in_language(c: Command, lang: str) -> Command:
    if isinstance(c, Say) and c.lang == "en":
        return replace(c, lang=lang, prompt_key=_keyed(c.prompt_key, lang))
    if isinstance(c, Listen) and c.lang == "en":
        return replace(c, lang=lang)
    return c


def _keyed(key: str | None, lang: str) -> str | None:
    """A static prompt's key in another language (``es:goodbye``): pre-rendered in its voice."""
    if key is None or ":" in key:
        return key
    return f"{lang}:{key}"


def graph() -> str:
    """The machine as Graphviz DOT text (``dot -Tsvg``): one edge per state a row may move to,
    labelled with its event types; ``FIRST``'s edges dashed."""
    edges: dict[tuple[State, State, bool], list[str]] = {}
    for (state, event), r in TABLE.items():
        for to in sorted(r.to, key=list(State).index):
            edges.setdefault((state, to, False), []).append(event.__name__)
    for (state, words), r in FIRST.items():
        for to in sorted(r.to, key=list(State).index):
            edges.setdefault((state, to, True), []).append(f"Heard: {words}")
    lines = ["digraph dialog {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    lines += [f"  {s.value};" for s in State]
    for (src, dst, outranks), labels in edges.items():
        style = ", style=dashed" if outranks else ""
        lines.append(f'  {src.value} -> {dst.value} [label="{", ".join(labels)}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"
