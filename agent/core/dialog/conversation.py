"""The conversation around the workflows: the greeting, the open question ("how can I help?"),
taking a message, "anything else?", silence, keys, and the hang-up.

A hang-up is a row of the table in every state (``machine.TABLE``): a request the caller did not
finish is kept as a partial message so staff can follow up, and the call's summary is written.
"""

from __future__ import annotations

from typing import Any

from agent.core.dialog import escalation, slots
from agent.core.dialog.answers import begin
from agent.core.dialog.commands import (
    CallerHungUp,
    CallStarted,
    Command,
    DtmfReceived,
    Heard,
    NothingHeard,
    SaveRecord,
    Say,
)
from agent.core.dialog.context import (
    PROTOCOL_QUESTION,
    YES_NO_STATES,
    Context,
    State,
    Task,
    entities,
)
from agent.core.dialog.phrases import (
    CORRECTION_CUES,
    command,
    done,
    faq_answer,
    is_question,
    keyed,
    keyed_choice,
    new_patient,
    read_back_tail,
    said_any,
    short,
    wants_spanish,
    yes_no,
)
from agent.core.dialog.workflows import TASK_INTENTS, advance, ask, declined
from agent.core.understanding import Understanding


def start(d: Context, ev: CallStarted) -> list[Command]:
    d.caller_number = ev.caller_number
    d.office_open = ev.office_open
    d.move(State.REQUEST)
    # The emergency line comes first and is heard whole: a caller who speaks over the greeting
    # has still heard it. The practice's own words follow, and those can be talked over.
    line = d.p.emergency_line(d.settings.emergency_number)
    return [
        Say(line, prompt_key="emergency_line", barge_in=False),
        Say(d.settings.greeting, prompt_key="greeting"),
        d.listen(),
    ]


# -- the open question --------------------------------------------------------------------------


def request(d: Context, ev: Heard) -> list[Command]:
    u = ev.understanding
    if d.offered_staff:
        # The answer to "would you like to speak with a person?" after an apology.
        d.offered_staff = False
        answer = yes_no(u)
        if answer is True and short(u.text):
            return escalation.to_staff(d, "caller_upset")
        if answer is False and short(u.text):
            d.reprompts = 0
            return [Say(d.p.STATIC["go_on"], "go_on"), d.listen()]
    if d.requests and done(u):
        # "No, that's all" after a request was handled: the caller is done.
        return d.goodbye()
    if u.confidence < d.settings.min_confidence or not u.text.strip():
        # An office question the intent model was unsure of ("is there a fee if I cancel?") is
        # still answered when the practice has the answer.
        faq = office_answer(d, u) if u.text.strip() else None
        return answered(d, faq) if faq is not None else d.reprompt()
    d.reprompts = 0
    return route(d, u)


def route(d: Context, u: Understanding) -> list[Command]:
    """Start work on a request the caller made (first, after "anything else?", or mid-task)."""
    if u.intent == "speak_to_staff":
        return escalation.to_staff(d, "caller_asked_for_staff")
    faq = office_answer(d, u)
    if faq:
        return answered(d, faq)
    if u.intent == "billing":
        return escalation.to_billing(d, u)
    if u.intent in TASK_INTENTS:
        kind = u.intent
        if kind == "schedule" and new_patient(u.text):
            kind = "new_patient"
        return begin(d, kind, u)
    d.pending = {"intent": u.intent, "request_text": u.text, "entities": entities(u)}
    d.move(State.MESSAGE)
    ack = d.p.intent_ack(u.intent)
    says: list[Command] = [Say(ack)] if ack else []
    return [*says, Say(d.p.STATIC["take_message"], "take_message"), d.listen()]


def office_answer(d: Context, u: Understanding) -> str | None:
    """The practice's answer when the words are an office question it has one for: asked as an
    office question, or put as a question whatever the intent model made of it ("is there a fee
    if I cancel?")."""
    if u.intent != "office_info" and not is_question(u.text):
        return None
    faq = dict(d.settings.faq)
    if d.settings.cancellation_policy.strip():
        faq.setdefault("cancellation", d.settings.cancellation_policy.strip())
    return faq_answer(u.text, faq)


def answered(d: Context, faq: str) -> list[Command]:
    """The practice's answer to an office question, then "anything else?"."""
    d.reprompts = 0
    d.requests.append({"intent": "office_info", "answered": True})
    return [Say(faq), *d.anything_else()]


def symptom_call(d: Context, ev: Heard) -> list[Command]:
    """A health problem the protocols say needs a clinician today: the nurse line's workflow."""
    d.reprompts = 0
    return begin(d, "symptoms", ev.understanding)


def switch(d: Context, ev: Heard) -> list[Command]:
    """Mid-task, the caller asked for something else (``answers.new_request``): drop the task and
    take the new request."""
    d.drop_task("changed_topic")
    d.reprompts = 0
    return route(d, ev.understanding)


# -- steering the call: at any point --------------------------------------------------------------


def steer(d: Context, ev: Heard) -> list[Command]:
    """A command the caller gave (``phrases.command``): a person, the last words again, the
    previous question, or a fresh start."""
    u = ev.understanding
    which = command(u.text)
    if which is None and wants_spanish(u.text):
        # "Español": the question again, now in Spanish (``Dialog`` switched the language).
        again = [
            Say(d.p.STATIC[c.prompt_key], c.prompt_key)
            if isinstance(c, Say) and c.prompt_key in d.p.STATIC
            else c
            for c in d.question
        ]
        if d.state in (State.REQUEST, State.ANYTHING_ELSE) or not again:
            again = [Say(d.p.STATIC["go_on"], "go_on")]
        return [*again, d.listen_again()]
    if which == "operator":
        return escalation.to_staff(d, "caller_asked_for_staff")
    if which == "back" and d.state in (State.ASK, State.CONFIRM) and d.task is not None:
        return go_back(d)
    if which == "start_over":
        d.drop_task("start_over")
        if not d.verified:
            d.identity, d.other_names = {}, ()
        d.pending, d.reprompts = {}, 0
        d.move(State.REQUEST)
        return [Say(d.p.STATIC["start_over"], "start_over"), d.listen()]
    # "Repeat that" (and "go back" with nothing to go back to): what was last said, once more.
    said = [c for c in d.said if isinstance(c, Say)] or d.question
    return [*said, d.listen_again()]


def go_back(d: Context) -> list[Command]:
    """Forget the answer to the question before the current one, and ask it again; at the
    read-back, "what should I change?"."""
    t = d.task
    assert t is not None
    d.reprompts = 0
    if d.state is State.CONFIRM:
        return ask(d, "correction", "ask_correction")
    if len(t.asked) < 2:
        return [*d.question, d.listen_again()]
    t.asked.pop()
    previous = t.asked.pop()
    if previous in ("name", "dob"):
        if d.verified:
            # Identity is settled once matched: the current question is asked again instead.
            return [*d.question, d.listen_again()]
        d.identity.pop(previous, None)
    elif previous.startswith(PROTOCOL_QUESTION):
        t.answers.pop(previous.removeprefix(PROTOCOL_QUESTION), None)
    else:
        t.slots.pop(previous, None)
        if previous == "preferences":
            t.offered = ()
            t.slots.pop("slot", None)
    return advance(d)


def aside(d: Context, ev: Heard) -> list[Command]:
    """Mid-task, an office question ("wait, what time do you close on Friday?"): answered, and
    the task goes on where it was."""
    answer = office_answer(d, ev.understanding)
    assert answer is not None
    return [
        Say(answer),
        Say(d.p.STATIC["back_to_task"], "back_to_task"),
        *d.question,
        d.listen_again(),
    ]


def distress(d: Context, ev: Heard) -> list[Command]:
    """An upset caller: an apology and the offer of a person before anything else."""
    d.offered_staff = True
    d.reprompts = 0
    d.move(State.REQUEST)
    return [Say(d.p.STATIC["distress"], "distress"), d.listen("yes_no")]


def late_correction(d: Context, ev: Heard) -> list[Command]:
    """Right after a booking, "no, wait! the fifteenth": the booking is moved to the day said
    instead of the call ending with the wrong visit."""
    appt = d.just_booked
    assert appt is not None
    u = ev.understanding
    d.just_booked = None
    d.reprompts = 0
    d.task = Task("reschedule", u.text, lang=u.lang)
    d.task.slots["appointment"] = appt
    d.task.appointments = (appt,)
    prefs = slots.preferences_from(u)
    d.task.slots["preferences"] = declined(prefs, (appt.slot.id,))
    return [Say(d.p.STATIC["change_booking"], "change_booking"), *advance(d)]


def late_correction_of(d: Context, u: Understanding) -> bool:
    """The words correct the appointment just booked (a day or time, with a "no" or "wait")."""
    if d.just_booked is None or not slots.has_preference(u):
        return False
    return yes_no(u) is False or said_any(u.text, CORRECTION_CUES)


# -- messages and "anything else?" --------------------------------------------------------------


def message(d: Context, ev: Heard) -> list[Command]:
    u = ev.understanding
    if not u.text.strip():
        return d.reprompt()
    urgent = d.state is State.URGENT_MESSAGE or bool(d.pending.get("urgent"))
    data = {**d.pending, "message": u.text, "caller_number": d.caller_number}
    if d.verified:
        data["patient_id"] = d.patient_id
    data["entities"] = [*data.get("entities", []), *entities(u)]
    d.requests.append({"intent": data.get("intent", "message"), "recorded": True})
    d.pending = {}
    d.move(State.ANYTHING_ELSE)
    key = "urgent_message_saved" if urgent else "message_saved"
    return [
        SaveRecord("message", data, urgent=urgent),
        Say(d.p.message_readback(u.text)),
        Say(d.p.STATIC[key], key),
        d.listen("yes_no"),
    ]


def anything_else(d: Context, ev: Heard) -> list[Command]:
    u = ev.understanding
    answer = yes_no(u)
    if read_back_tail(u.text):
        # "Yes, ... that's correct": a pause split the answer to the read-back, and its tail
        # arrives after "anything else?". It answers nothing new: keep listening.
        return [d.listen("yes_no")]
    if done(u):
        return d.goodbye()
    faq = office_answer(d, u) if is_question(u.text) else None
    if faq is not None:
        # "Is there a fee if I cancel?": answered, whatever the intent model made of it.
        return answered(d, faq)
    if u.confidence >= d.settings.min_confidence and (answer is None or not short(u.text)):
        # Not a plain yes/no but a request ("yes, what are your hours?"): handle it directly.
        d.move(State.REQUEST)
        return request(d, ev)
    if answer is False:
        return d.goodbye()
    if answer is True:
        d.move(State.REQUEST)
        return [Say(d.p.STATIC["what_else"], "what_else"), d.listen()]
    return d.reprompt_yes_no()


# -- silence and keys ---------------------------------------------------------------------------


def nothing(d: Context, ev: NothingHeard) -> list[Command]:
    if d.reprompts >= d.settings.max_reprompts:
        return d.give_up("no_input")
    d.reprompts += 1
    if d.state in (State.ASK, State.CONFIRM) and d.question:
        # Repeat the question itself: "are you still there, how can I help" would lose the thread.
        return [
            Say(d.p.STATIC["didnt_hear"], "didnt_hear"),
            *d.question,
            d.listen_again(),
        ]
    return [Say(d.p.STATIC["still_there"], "still_there"), d.listen_again()]


def nothing_else(d: Context, ev: NothingHeard) -> list[Command]:
    """Silence after "anything else?" is a no."""
    return d.goodbye()


def spoken(d: Context, ev: DtmfReceived) -> Heard | None:
    """A key that answers the question asked, as if said: 1 for yes and 2 for no ("press 1 for
    yes"), 1 to 3 for one of the times or appointments offered. ``None``: any other key."""
    if d.state in YES_NO_STATES and ev.digit in "12":
        return Heard(ev.now, keyed(ev.digit == "1", ev.digit))
    if d.state is State.ASK and d.task is not None and ev.digit in "123":
        choices = {"slot": len(d.task.offered), "appointment": len(d.task.appointments)}
        if int(ev.digit) <= choices.get(d.task.asking, 0):
            return Heard(ev.now, keyed_choice(ev.digit))
    return None


def pressed(d: Context, ev: DtmfReceived) -> list[Command]:
    """A key that answers nothing (``spoken`` took those): 0 for a person, any other is stray."""
    if ev.digit == "0":
        return escalation.to_front_desk(d, "caller_pressed_zero")
    # A stray key: keep listening to the same question rather than leave the call waiting.
    return [d.listen_again()]


# -- the hang-up --------------------------------------------------------------------------------


def hung_up(d: Context, ev: CallerHungUp) -> list[Command]:
    prior = d.state
    d.move(State.ENDED)
    out: list[Command] = []
    partial: dict[str, Any] | None = None
    if d.task is not None:
        partial = {**d.task.record(), **d.who()}
        d.drop_task("caller_hung_up")
    elif d.pending and prior in (State.MESSAGE, State.URGENT_MESSAGE, State.REQUEST):
        partial = {**d.pending, "caller_number": d.caller_number}
    if partial is not None:
        # A request the caller did not finish is kept as a message so staff can follow up.
        out.append(
            SaveRecord(
                "message",
                {**partial, "partial": True},
                urgent=bool(partial.get("urgent")),
            )
        )
    out.append(SaveRecord("summary", d.summary()))
    return out


def hung_up_after_end(d: Context, ev: CallerHungUp) -> list[Command]:
    return [SaveRecord("summary", d.summary())]
