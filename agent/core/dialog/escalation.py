"""Handing the caller to a person: the emergency instruction, the on-call clinician, the front desk
and billing, and what happens when nobody picks up.

Product rules kept here (not options): an emergency red flag is answered in the same turn with the
instruction to hang up and dial the emergency number, spoken uninterruptibly, before anything else,
then the on-call clinician is offered; an emergency is never put in a queue. An urgent red flag
goes to the on-call clinician (warm transfer with a spoken summary) and, when nobody answers, to an
urgent message. Which states these apply in is written once, in ``machine.RED_FLAGS``.
"""

from __future__ import annotations

from agent.core.dialog import slots
from agent.core.dialog.commands import (
    Command,
    HandBack,
    Hangup,
    Heard,
    SaveRecord,
    Say,
    Transfer,
    TransferEnded,
)
from agent.core.dialog.context import Context, State
from agent.core.dialog.phrases import command, yes_no
from agent.core.understanding import Understanding

# -- red flags ----------------------------------------------------------------------------------


def emergency_heard(d: Context, ev: Heard) -> list[Command]:
    return emergency(d, ev.understanding)


def urgent_heard(d: Context, ev: Heard) -> list[Command]:
    return urgent(d, ev.understanding)


def emergency(d: Context, u: Understanding) -> list[Command]:
    # The instruction comes first, whatever else the caller said; nothing is queued.
    d.drop_task("escalated")
    flags = [f.rule_id for f in u.red_flags if f.urgency == "emergency"]
    d.pending = {"intent": u.intent, "red_flags": flags, "request_text": u.text}
    d.requests.append({"intent": "emergency", "red_flags": flags})
    d.move(State.EMERGENCY_OFFER)
    if any(_self_harm(f) for f in flags):
        d.at_risk = True
    instruction = (
        d.p.crisis_instruction(d.settings.emergency_number)
        if d.at_risk
        else d.p.emergency_instruction(d.settings.emergency_number)
    )
    return [
        Say(instruction, barge_in=False),
        SaveRecord("emergency", {"red_flags": flags, "text": u.text}, urgent=True),
        Say(d.p.STATIC["emergency_offer"], "emergency_offer"),
        d.listen("yes_no"),
    ]


SELF_HARM = ("suicidal", "suicidal_thoughts")
"""The base pack's rule and the protocol whose flags mean a risk of self-harm: the caller hears
the crisis line (988) as well as 911."""


def _self_harm(rule_id: str) -> bool:
    return rule_id.split(".", 1)[0] in SELF_HARM


def urgent(d: Context, u: Understanding) -> list[Command]:
    d.drop_task("escalated")
    flags = [f.label for f in u.red_flags]
    d.pending = {
        "intent": u.intent,
        "red_flags": flags,
        "request_text": u.text,
        "urgent": True,
    }
    d.requests.append({"intent": "urgent", "red_flags": flags})
    return _to_on_call(
        d, u.text, flags, "urgent", d.p.STATIC["urgent_connecting"], "urgent_connecting"
    )


def emergency_offer(d: Context, ev: Heard) -> list[Command]:
    """The answer to "shall I connect you to the doctor on call?" after the 911 instruction."""
    u = ev.understanding
    answer = yes_no(u)
    if command(u.text) == "operator":
        answer = True  # "a person, please": the clinician on call is that person
    if d.at_risk and answer is None and len(u.text.split()) >= 3:
        # A caller at risk who goes on talking ("I'm just really tired of everything") is put
        # through to a person, not asked for a yes or no again.
        answer = True
    if answer is True:
        return _to_on_call(
            d,
            d.pending.get("request_text", ""),
            d.pending.get("red_flags", []),
            "emergency",
            d.p.STATIC["connecting_on_call"],
            "connecting_on_call",
        )
    if answer is False and d.at_risk:
        # Never end the call on a caller at risk: the crisis line again, and the line stays open.
        d.reprompts = 0
        return [Say(d.p.STATIC["crisis_stay"], "crisis_stay"), d.listen("yes_no")]
    if answer is False:
        d.move(State.ENDED)
        return [
            Say(d.p.emergency_goodbye(d.settings.emergency_number), barge_in=False),
            Hangup(),
        ]
    return d.reprompt_yes_no()


def _to_on_call(
    d: Context, text: str, flags: list[str], reason: str, say: str, key: str
) -> list[Command]:
    if not d.settings.on_call:
        d.move(State.URGENT_MESSAGE)
        return [Say(d.p.STATIC["no_clinician"], "no_clinician"), d.listen()]
    d.move(State.TRANSFERRING)
    return [
        Say(say, key),
        Transfer(
            d.settings.on_call,
            reason=reason,
            summary=clinician_summary(
                d.caller_number, flags, text, d.identity.get("name", ""), d.verified
            ),
            ring_timeout_s=d.settings.ring_timeout_s,
        ),
    ]


def clinician_summary(
    caller_number: str, flags: list[str], text: str, name: str, verified: bool
) -> str:
    """Spoken to the clinician before the caller is bridged (warm transfer)."""
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


# -- staff and billing --------------------------------------------------------------------------


def to_staff(d: Context, reason: str) -> list[Command]:
    """A person, at any point: the front desk during hours, a message after hours."""
    d.drop_task("caller_asked_for_staff")
    if not d.office_open:
        return d.take_message("speak_to_staff", "staff_closed")
    return to_front_desk(d, reason)


def to_front_desk(d: Context, reason: str) -> list[Command]:
    d.drop_task(reason)
    d.requests.append({"intent": "speak_to_staff"})
    if not d.settings.front_desk:
        # No front desk to ring: the dialplan's fallback takes the caller (the state is left as it
        # is; the call session ends the dialog on a hand-back).
        return [HandBack(reason)]
    d.pending = {"intent": "speak_to_staff", "transfer": True}
    d.move(State.TRANSFERRING)
    return [
        Say(d.p.STATIC["connecting_front_desk"], "connecting_front_desk"),
        Transfer(
            (d.settings.front_desk,),
            reason=reason,
            ring_timeout_s=d.settings.ring_timeout_s,
        ),
    ]


def to_billing(d: Context, u: Understanding) -> list[Command]:
    if not d.office_open or not d.settings.billing:
        d.pending = {"intent": "billing", "request_text": u.text}
        return d.take_message("billing", "billing_closed", keep_pending=True)
    d.requests.append({"intent": "billing"})
    d.pending = {"intent": "billing", "request_text": u.text, "transfer": True}
    d.move(State.TRANSFERRING)
    return [
        Say(d.p.STATIC["billing_connecting"], "billing_connecting"),
        Transfer(
            (d.settings.billing,),
            reason="billing",
            ring_timeout_s=d.settings.ring_timeout_s,
        ),
    ]


# -- the transfer's outcome ---------------------------------------------------------------------


def transfer_ended(d: Context, ev: TransferEnded) -> list[Command]:
    if ev.status == "answered":
        d.requests.append({"intent": "transfer", "target": ev.target, "answered": True})
        d.pending = {}
        d.move(State.ENDED)
        return [SaveRecord("transfer", {"target": ev.target, "answered": True})]
    # Nobody answered: never leave an urgent or emergency caller without a next step.
    if d.pending.get("red_flags") is not None:
        d.move(State.URGENT_MESSAGE)
        d.pending["urgent"] = True
        return [
            SaveRecord(
                "transfer",
                {"target": ev.target, "answered": False, "status": ev.status},
                urgent=True,
            ),
            Say(d.p.STATIC["no_clinician"], "no_clinician"),
            d.listen(),
        ]
    if d.pending.get("transfer"):
        # Billing or the front desk did not pick up: their message, not a dead end.
        intent = d.pending.get("intent", "speak_to_staff")
        d.pending = {k: v for k, v in d.pending.items() if k != "transfer"}
        d.pending["transfer_status"] = ev.status
        return d.take_message(intent, "nobody_free", keep_pending=True)
    return [HandBack(f"transfer_{ev.status}")]
