"""The conversation around the workflows: the greeting, the open question ("how can I help?"),
taking a message, "anything else?", silence, keys, and the hang-up.

A hang-up is a row of the table in every state (``machine.TABLE``): a request the caller did not
finish is kept as a partial message so staff can follow up, and the call's summary is written.
"""

from __future__ import annotations

from typing import Any

from agent.core.dialog import escalation, prompts
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
from agent.core.dialog.context import YES_NO_STATES, Context, State, entities
from agent.core.dialog.phrases import (
    done,
    faq_answer,
    keyed,
    keyed_choice,
    new_patient,
    read_back_tail,
    short,
    yes_no,
)
from agent.core.dialog.workflows import TASK_INTENTS
from agent.core.understanding import Understanding


def start(d: Context, ev: CallStarted) -> list[Command]:
    d.caller_number = ev.caller_number
    d.office_open = ev.office_open
    d.move(State.REQUEST)
    return [Say(d.settings.greeting, prompt_key="greeting"), d.listen()]


# -- the open question --------------------------------------------------------------------------


def request(d: Context, ev: Heard) -> list[Command]:
    u = ev.understanding
    if d.requests and done(u):
        # "No, that's all" after a request was handled: the caller is done.
        return d.goodbye()
    if u.confidence < d.settings.min_confidence or not u.text.strip():
        return d.reprompt()
    d.reprompts = 0
    return route(d, u)


def route(d: Context, u: Understanding) -> list[Command]:
    """Start work on a request the caller made (first, after "anything else?", or mid-task)."""
    if u.intent == "speak_to_staff":
        return escalation.to_staff(d, "caller_asked_for_staff")
    if u.intent == "office_info":
        answer = faq_answer(u.text, d.settings.faq)
        if answer:
            d.requests.append({"intent": "office_info", "answered": True})
            return [Say(answer), *d.anything_else()]
    if u.intent == "billing":
        return escalation.to_billing(d, u)
    if u.intent in TASK_INTENTS:
        kind = u.intent
        if kind == "schedule" and new_patient(u.text):
            kind = "new_patient"
        return begin(d, kind, u)
    d.pending = {"intent": u.intent, "request_text": u.text, "entities": entities(u)}
    d.move(State.MESSAGE)
    ack = prompts.intent_ack(u.intent)
    says: list[Command] = [Say(ack)] if ack else []
    return [*says, Say(prompts.STATIC["take_message"], "take_message"), d.listen()]


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
        Say(prompts.message_readback(u.text)),
        Say(prompts.STATIC[key], key),
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
    if u.confidence >= d.settings.min_confidence and (answer is None or not short(u.text)):
        # Not a plain yes/no but a request ("yes, what are your hours?"): handle it directly.
        d.move(State.REQUEST)
        return request(d, ev)
    if answer is False:
        return d.goodbye()
    if answer is True:
        d.move(State.REQUEST)
        return [Say(prompts.STATIC["what_else"], "what_else"), d.listen()]
    return d.reprompt_yes_no()


# -- silence and keys ---------------------------------------------------------------------------


def nothing(d: Context, ev: NothingHeard) -> list[Command]:
    if d.reprompts >= d.settings.max_reprompts:
        return d.give_up("no_input")
    d.reprompts += 1
    if d.state in (State.ASK, State.CONFIRM) and d.question:
        # Repeat the question itself: "are you still there, how can I help" would lose the thread.
        return [
            Say(prompts.STATIC["didnt_hear"], "didnt_hear"),
            *d.question,
            d.listen_again(),
        ]
    return [Say(prompts.STATIC["still_there"], "still_there"), d.listen_again()]


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
