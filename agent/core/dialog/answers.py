"""What the caller's answers fill in: a task's slots from a question's answer, values volunteered
along the way, corrections to a read-back, and the yes or no to it.

``answer`` handles the turn in ``ASK``, ``confirmation`` the turn in ``CONFIRM``. Red flags and a
change of topic have been taken care of before either runs (``machine.Dialog.handle``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from agent.core.dialog import escalation, slots, spoken_es
from agent.core.dialog.commands import Command, Heard, Say, Slot, SlotPreferences
from agent.core.dialog.context import PROTOCOL_DETAIL, PROTOCOL_QUESTION, Context, State, Task
from agent.core.dialog.phrases import (
    ANY_WORDS,
    DONT_KNOW,
    NO_ALLERGIES,
    NO_INSURANCE,
    NONE_OF_THOSE,
    NOT_AT_HAND,
    RAN_OUT,
    said_any,
    yes_no,
)
from agent.core.dialog.workflows import advance, ask, commit, declined
from agent.core.protocols import Protocol, ProtocolBook, Question
from agent.core.triage import Triage
from agent.core.understanding import Entity, RedFlag, Understanding


def begin(d: Context, kind: str, u: Understanding) -> list[Command]:
    """Start a workflow; what the request already said ("a refill of lisinopril") is kept."""
    d.task = Task(kind, u.text, lang=d.lang)
    if kind != "symptoms" and u.urgency == "urgent" and d.settings.protocols is not None:
        # A same-day sign in a request for something else: done as asked, marked for today.
        d.task.disposition = "same_day"
    harvest(d, u)
    return advance(d)


# -- the turn in ASK ----------------------------------------------------------------------------


def answer(d: Context, ev: Heard) -> list[Command]:
    """The caller answered the question for ``task.asking``."""
    u = ev.understanding
    t = d.task
    if t is not None and t.asking == "correction":
        # "What should I change?" is asked in ASK too; its answer is a correction, not a slot.
        if correct(d, u):
            d.reprompts = 0
            return advance(d)
        return reask(d, "correction")
    assert t is not None
    harvest(d, u)
    if t.asking.startswith(PROTOCOL_QUESTION):
        return protocol_answer(d, t, u)
    if fill(d, t.asking, u):
        d.reprompts = 0
        if t.asking == "screen" and t.slots["screen"] is True:
            # Yes to the emergency screening question: the emergency path, at once.
            flag = RedFlag(
                "screening_yes", "emergency", "Yes to the emergency screening question", u.text
            )
            return escalation.emergency(
                d, replace(u, red_flags=[flag, *u.red_flags], urgency="emergency")
            )
        return advance(d)
    if t.asking == "slot":
        if slots.has_preference(u):
            # "Do you have anything Friday?": search again with the new wish.
            t.slots["preferences"] = declined(
                slots.preferences_from(u, t.slots["preferences"]), t.offered
            )
            t.offered = ()
            d.reprompts = 0
            return advance(d)
        if yes_no(u) is False or said_any(u.text, NONE_OF_THOSE):
            t.slots.pop("preferences", None)
            t.slots["declined"] = (*t.slots.get("declined", ()), *(x.id for x in t.offered))
            t.offered = ()
            d.reprompts = 0
            return ask(d, "preferences", "ask_when")
    return reask(d, t.asking)


def protocol_answer(d: Context, t: Task, u: Understanding) -> list[Command]:
    """The yes or no to one of the protocol's disposition questions. A yes to a 911 question is
    the emergency path and to a see-now question the on-call clinician, at once; a same-day yes
    goes on to the details and an urgent call-back. A caller who cannot answer after one
    repeat is put through to the on-call clinician: on a safety question, doubt escalates."""
    book = d.settings.protocols
    assert book is not None and t.protocol is not None
    protocol = book[t.protocol]
    question = protocol.question(t.asking.removeprefix(PROTOCOL_QUESTION))
    said = yes_no(u)
    own_signs = [book.rules(protocol.id)[_index(protocol, question)]]
    if said is None and Triage.flags_of(own_signs, u.text, u.lang):
        said = True  # "she's shaking with chills": a sign of this question is a yes
    if said is None:
        if d.reprompts >= 1:
            flag = RedFlag(
                f"{protocol.rule_id(question)}.unanswered",
                "urgent",
                f"{protocol.title}: no clear answer to {question.ask!r}",
                u.text,
            )
            return escalation.urgent(
                d, replace(u, red_flags=[flag, *u.red_flags], urgency="urgent")
            )
        d.reprompts += 1
        return [
            Say(d.p.STATIC["yes_no_again"], "yes_no_again"),
            *d.question,
            d.listen_for(t.asking),
        ]
    d.reprompts = 0
    t.answers[question.id] = said
    if said and question.disposition == "911":
        flag = RedFlag(
            protocol.rule_id(question), "emergency", f"{protocol.title}: {question.ask}", u.text
        )
        return escalation.emergency(
            d, replace(u, red_flags=[flag, *u.red_flags], urgency="emergency")
        )
    if said and question.disposition == "see_now":
        flag = RedFlag(
            protocol.rule_id(question), "urgent", f"{protocol.title}: {question.ask}", u.text
        )
        return escalation.urgent(d, replace(u, red_flags=[flag, *u.red_flags], urgency="urgent"))
    return advance(d)


def _index(protocol: Protocol, question: Question) -> int:
    return next(i for i, q in enumerate(protocol.questions) if q.id == question.id)


def reask(d: Context, slot: str) -> list[Command]:
    if d.reprompts >= d.settings.max_reprompts:
        return d.give_up("not_understood")
    d.reprompts += 1
    again = _ASK_AGAIN.get(slot)
    if again is None:
        return [
            Say(d.p.STATIC["didnt_catch"], "didnt_catch"),
            *d.question,
            d.listen_for(slot),
        ]
    return [Say(d.p.STATIC[again], again), d.listen_for(slot)]


_ASK_AGAIN = {
    "name": "ask_name_again",
    "dob": "ask_dob_again",
    "preferences": "ask_when_again",
    "slot": "which_slot",
    "appointment": "which_appointment",
    "medication": "ask_medication_again",
    "phone": "ask_phone_again",
    "pharmacy": "ask_pharmacy_spell",
}
"""A question's own second wording; the others are repeated after "sorry, I didn't catch that"."""


def new_request(d: Context, u: Understanding) -> bool:
    """Mid-task, a new request ("actually, can I talk to someone?") rather than an answer. A "no"
    to a read-back is its answer, whatever else it says."""
    if d.state is State.CONFIRM and yes_no(u) is False:
        return False
    return switches_topic(d, u)


def switches_topic(d: Context, u: Understanding) -> bool:
    """A new request, not an answer that merely sounds like one to the intent model."""
    t = d.task
    if t is None or u.confidence < d.settings.switch_confidence:
        return False
    if u.intent == "speak_to_staff":
        return True
    if u.intent in (t.kind, "message") or len(u.text.split()) < 4:
        return False
    useful = {"date", "date_range", "time", "part_of_day", "dob", "phone", "person"}
    useful |= {"medication", "dose", "pharmacy", "provider", "yes_no"}
    return not any(e.label in useful for e in u.entities)


# -- filling one slot from its answer -----------------------------------------------------------

Fill = Callable[[Context, Task, Understanding, str], bool]
"""Takes a slot's value from the answer (``text`` is it stripped); False when it is not there."""


def fill(d: Context, slot: str, u: Understanding) -> bool:
    """Take the answer for ``slot`` from the utterance; False when it is not there."""
    t = d.task
    assert t is not None
    if slot in d.identity or slot in t.slots:
        return True  # harvested from this same utterance
    if slot.startswith(PROTOCOL_DETAIL):
        return _told(slot)(d, t, u, u.text.strip())
    filler = _FILL.get(slot)
    return filler is not None and filler(d, t, u, u.text.strip())


def _name(d: Context, t: Task, u: Understanding, text: str) -> bool:
    names = slots.names_from(u)
    if names:
        d.identity["name"], d.other_names = names[0], names[1:]
    return bool(names)


def _dob(d: Context, t: Task, u: Understanding, text: str) -> bool:
    return "dob" in d.identity


def _provider(d: Context, t: Task, u: Understanding, text: str) -> bool:
    # "Thursday morning" to "a particular provider?": no preference of provider, and the day
    # was kept as the wish (``harvest``).
    if said_any(text, ANY_WORDS) or yes_no(u) is False or slots.has_preference(u):
        t.slots["provider"] = ""
        return True
    return False


def _preferences(d: Context, t: Task, u: Understanding, text: str) -> bool:
    s = t.slots
    if slots.has_preference(u):
        s["preferences"] = declined(slots.preferences_from(u), s.get("declined", ()))
        return True
    if said_any(text, ANY_WORDS) or "soon" in text.lower():
        s["preferences"] = declined(SlotPreferences(), s.get("declined", ()))
        return True
    return False


def _slot(d: Context, t: Task, u: Understanding, text: str) -> bool:
    chosen = slots.choose(u, t.offered)
    if chosen is not None:
        t.slots["slot"] = chosen
    return chosen is not None


def _appointment(d: Context, t: Task, u: Understanding, text: str) -> bool:
    picked = slots.choose(u, tuple(a.slot for a in t.appointments))
    for a in t.appointments:
        if picked is not None and a.slot == picked:
            t.slots["appointment"] = a
    return "appointment" in t.slots


def _medication(d: Context, t: Task, u: Understanding, text: str) -> bool:
    med = medication_in(d, u)
    if med:
        t.slots["medication"] = med
        t.slots["on_medication_list"] = med in d.medications if d.medications else None
    return med is not None


def _strength(d: Context, t: Task, u: Understanding, text: str) -> bool:
    t.slots["strength"] = "" if said_any(text, DONT_KNOW) or not text else text
    return True


def _told(slot: str) -> Fill:
    def fill_told(d: Context, t: Task, u: Understanding, text: str) -> bool:
        if not text:
            return False
        # Read back inside a sentence: the caller's own full stop would end it early.
        t.slots[slot] = text.rstrip(".!?,; ")
        return True

    return fill_told


def _supply(d: Context, t: Task, u: Understanding, text: str) -> bool:
    n = slots.number_from(text)
    if n is None and RAN_OUT.search(text.lower()):
        n = 0
    t.slots["supply"] = text
    t.slots["days_left"] = n
    return True


def _screen(d: Context, t: Task, u: Understanding, text: str) -> bool:
    said = yes_no(u)
    if said is None:
        return False
    t.slots["screen"] = said
    return True


def _severity(d: Context, t: Task, u: Understanding, text: str) -> bool:
    n = slots.number_from(text)
    if n is None or not 0 <= n <= 10:
        return False
    t.slots["severity"] = n
    return True


def _phone(d: Context, t: Task, u: Understanding, text: str) -> bool:
    phone = slots.phone_from(u, d.caller_number)
    if phone:
        t.slots["phone"] = phone
    return phone is not None


def _allergies(d: Context, t: Task, u: Understanding, text: str) -> bool:
    """Substances as the entity reads them ("allergic to penicillin and sulfa"), "none" for a
    no, a bare medicine name as the one allergy, or the caller's words."""
    named = [e.value for e in u.entities if e.label == "allergy"]
    if named:
        if "none" in named:
            t.slots["allergies"] = "none"
        else:
            each = [x for v in named if not isinstance(v, str) for x in v]
            t.slots["allergies"] = ", ".join(dict.fromkeys(map(str, each)))
        return True
    if yes_no(u) is False or said_any(text, NO_ALLERGIES):
        t.slots["allergies"] = "none"
        return True
    if said_any(text, DONT_KNOW):
        t.slots["allergies"] = "not sure"
        return True
    med = u.entity("medication")
    if med is not None and isinstance(med.value, str) and med.value:
        t.slots["allergies"] = med.value.lower()
        return True
    return _told("allergies")(d, t, u, text)


def _pharmacy_answer(d: Context, t: Task, u: Understanding, text: str) -> bool:
    """A chain or one of the practice's pharmacies, by its right name (the recogniser's "CB gas"
    is read back as CVS); a name that matches none is asked to be spelled once, then taken as
    spelled or said."""
    e = u.entity("pharmacy")
    if e is not None and isinstance(e.value, dict) and e.value.get("chain"):
        if e.value.get("known", True):
            t.slots["pharmacy"] = _pharmacy(d, e)
            return True
    if not text or d.reprompts == 0:
        return False
    t.slots["pharmacy"] = spelled(text).rstrip(".!?,; ")
    return True


_LETTERS = re.compile(r"\b(?:[a-z]\b[\s,.-]*){2,}", re.IGNORECASE)


def spelled(text: str) -> str:
    """Letters said one by one joined into the word ("h i l l t o p drugs" → "HILLTOP drugs")."""
    return _LETTERS.sub(
        lambda m: "".join(re.findall(r"[a-z]", m.group(0), re.I)).upper() + " ", text
    ).strip()


def _reason(d: Context, t: Task, u: Understanding, text: str) -> bool:
    # "Thursday morning" to "what is the visit for?" is when, not what (kept by ``harvest``).
    if slots.has_preference(u) and len(text.split()) <= 4:
        return False
    return _told("reason")(d, t, u, text)


def _insurance(d: Context, t: Task, u: Understanding, text: str) -> bool:
    if said_any(text, NO_INSURANCE) or yes_no(u) is False:
        t.slots["insurance"] = "none"
        return True
    return _told("insurance")(d, t, u, text)


def _member_id(d: Context, t: Task, u: Understanding, text: str) -> bool:
    if said_any(text, DONT_KNOW) or said_any(text, NOT_AT_HAND) or yes_no(u) is False:
        t.slots["member_id"] = ""
        return True
    # Read back as the caller said it, letters and digits: a card's ID is not a number to parse.
    return _told("member_id")(d, t, u, text)


_FILL: dict[str, Fill] = {
    "name": _name,
    "dob": _dob,
    "provider": _provider,
    "preferences": _preferences,
    "slot": _slot,
    "appointment": _appointment,
    "medication": _medication,
    "strength": _strength,
    "pharmacy": _pharmacy_answer,
    "since": _told("since"),
    "when": _told("when"),
    "complaint": _told("complaint"),
    "supply": _supply,
    "reason": _reason,
    "allergies": _allergies,
    "insurance": _insurance,
    "member_id": _member_id,
    "screen": _screen,
    "severity": _severity,
    "phone": _phone,
}
"""How each slot's value is read from the answer to its question."""


def harvest(d: Context, u: Understanding) -> None:
    """Keep every value the caller volunteered, whatever was asked ("Jane Doe, March 4th 1962";
    "a refill of lisinopril 10 mg at the CVS on Main")."""
    t = d.task
    if t is None:
        return
    s = t.slots
    dob = slots.dob_from(u)
    if dob and "dob" not in d.identity and not d.verified:
        d.identity["dob"] = dob
    person = u.entity("person")
    if person is not None and "name" not in d.identity and isinstance(person.value, str):
        d.identity["name"] = person.value
        d.other_names = tuple(
            n for n in slots.names_from(u) if n.casefold() != person.value.casefold()
        )
    if t.kind in ("schedule", "new_patient") and "reason" not in s and not t.asking:
        # From the request itself ("a checkup"); an answer to the question is taken whole.
        reason = reason_in(u.text)
        if reason:
            s["reason"] = reason
    if t.kind in ("schedule", "new_patient", "reschedule"):
        # The answer to the name question is the patient's name, whoever shares its surname.
        provider = provider_in(d, u) if t.asking != "name" else None
        if provider is not None and t.kind == "schedule":
            s["provider"] = provider
        # "The first one" to the provider question is whoever is free first, not the 1st.
        first_free = t.asking == "provider" and said_any(u.text, ANY_WORDS)
        if (
            t.kind != "new_patient"
            and slots.has_preference(u)
            and t.asking != "slot"
            and not first_free
        ):
            if t.kind == "schedule" or "appointment" in s:
                prefs = slots.preferences_from(u)
                s["preferences"] = declined(prefs, s.get("declined", ()))
        s.setdefault("appointment_type", appointment_type(d, s.get("provider", "")))
    if t.kind == "refill":
        med = medication_in(d, u)
        if med and "medication" not in s:
            s["medication"] = med
            s["on_medication_list"] = med in d.medications if d.medications else None
        dose = u.entity("dose")
        if dose is not None and "strength" not in s:
            s["strength"] = _dose(d, dose)
        pharmacy = u.entity("pharmacy")
        if pharmacy is not None and "pharmacy" not in s:
            s["pharmacy"] = _pharmacy(d, pharmacy)
    if t.kind == "symptoms" and "complaint" not in s and len(t.text.split()) >= 4:
        s["complaint"] = t.text
    if t.kind == "symptoms":
        _note_protocol(d, t, u)
    phone = u.entity("phone")
    if phone is not None and isinstance(phone.value, str) and "phone" not in s:
        s["phone"] = phone.value


def _note_protocol(d: Context, t: Task, u: Understanding) -> None:
    """The symptom task's protocol (from the first turn that named one) and every one of its
    questions the caller has answered yes by their own words so far."""
    book = d.settings.protocols
    if book is None:
        return
    if t.protocol is None and u.protocol is not None and u.protocol in book:
        t.protocol = u.protocol
        for text in (t.text, *d.transcript[-3:]):
            _note_signs(book, t, text, u.lang)
    if t.protocol is not None:
        _note_signs(book, t, u.text, u.lang)


def _note_signs(book: ProtocolBook, t: Task, text: str, lang: str) -> None:
    assert t.protocol is not None
    for flag in Triage.flags_of(book.rules(t.protocol), text, lang):
        t.signs.add(flag.rule_id.rsplit(".", 1)[-1])


# -- the turn in CONFIRM ------------------------------------------------------------------------


def confirmation(d: Context, ev: Heard) -> list[Command]:
    """Yes, no, or a correction to the read-back."""
    u = ev.understanding
    said = yes_no(u)
    if correct(d, u):
        d.reprompts = 0
        return advance(d)
    if said is True:
        d.reprompts = 0
        return commit(d)
    if said is False:
        d.reprompts = 0
        return _declined_read_back(d)
    return d.reprompt_confirm()


def _declined_read_back(d: Context) -> list[Command]:
    """A bare "no" to the read-back: what it means depends on what was read back."""
    t = d.task
    assert t is not None
    if t.kind == "cancel":
        # "Shall I cancel it?" "No.": nothing is changed, and nothing is written.
        d.requests.append({"intent": "cancel", "completed": False, "why": "kept"})
        d.task = None
        return [Say(d.p.STATIC["kept"], "kept"), *d.anything_else()]
    if t.kind in ("schedule", "reschedule") and "slot" in t.slots:
        # Not that time: ask again for a day and time, never offering the declined one.
        no: Slot = t.slots.pop("slot")
        t.slots["declined"] = (*t.slots.get("declined", ()), no.id)
        t.slots.pop("preferences", None)
        t.offered = ()
        return ask(d, "preferences", "ask_when")
    return ask(d, "correction", "ask_correction")


def correct(d: Context, u: Understanding) -> bool:
    """Apply "no, Wednesday" / "no, 20 milligrams" / "no, Doctor Nguyen" to the read-back; True
    when something changed (and the task goes back to finding or re-confirming)."""
    t = d.task
    assert t is not None
    s = t.slots
    changed = False
    if t.kind in ("schedule", "reschedule") and "slot" in s:
        provider = provider_in(d, u) if t.kind == "schedule" else None
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
            s["preferences"] = declined(prefs, (old.id,))
            changed = True
        if changed:
            s.pop("slot")
            t.offered = ()
    elif t.kind == "refill":
        med = medication_in(d, u)
        if med and med != s.get("medication"):
            s["medication"] = med
            changed = True
        dose = u.entity("dose")
        if dose is not None:
            s["strength"] = _dose(d, dose)
            changed = True
        pharmacy = u.entity("pharmacy")
        if pharmacy is not None:
            s["pharmacy"] = _pharmacy(d, pharmacy)
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


# -- values as the practice knows them ----------------------------------------------------------

_REASON = re.compile(
    r"\b(?:for|about|because of|because)\s+((?:my|a|an|his|her|their|the|some|this|these)\s+[^.?!]+)"
)
_WHEN_WORDS = re.compile(
    r"\b(?:morning|afternoon|evening|today|tomorrow|week|month|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday|next|time|slot|appointment|opening|doctor|provider)\b"
    # "for my daughter": who the visit is for, not what.
    r"|^(?:my|his|her|their|a|the)\s+(?:\w+\s+)?(?:daughter|son|wife|husband|mother|father|mom|"
    r"dad|child|kid|kids|baby|grandmother|grandfather|grandma|grandpa|partner|sister|brother|"
    r"family|self|aunt|uncle|patient|friend|children)\b"
)


_VISIT_KINDS = re.compile(
    r"\b(?:annual |yearly |a |my )?(?:check ?-?up|physical|wellness (?:visit|exam)|flu shot|"
    r"vaccine|vaccination|follow ?-?up|blood work|pap smear|well child visit|sports physical)\b"
)


def reason_in(text: str) -> str | None:
    """What a booking is for, when the request says it ("an appointment for my knee pain", "a
    checkup")."""
    kind = _VISIT_KINDS.search(text.lower())
    if kind is not None:
        return kind.group(0).strip()
    m = _REASON.search(text.lower())
    if m is None or _WHEN_WORDS.search(m.group(1)):
        return None
    return m.group(1).strip(" ,")


def provider_in(d: Context, u: Understanding) -> str | None:
    e = u.entity("provider")
    known = {p.id for p in d.settings.providers}
    if e is not None and isinstance(e.value, str) and (not known or e.value in known):
        return e.value
    ws = set(slots.words(u.text))
    for p in d.settings.providers:
        surname = slots.words(p.name)[-1:]
        if surname and surname[0] in ws:
            return p.id
    return None


def appointment_type(d: Context, provider_id: str) -> str:
    types = next((p.appointment_types for p in d.settings.providers if p.id == provider_id), ())
    if not types and d.settings.providers:
        types = d.settings.providers[0].appointment_types
    return "follow-up" if "follow-up" in types or not types else types[0]


def medication_in(d: Context, u: Understanding) -> str | None:
    e = u.entity("medication")
    if e is not None and isinstance(e.value, str) and e.value:
        return e.value.lower()
    ws = set(slots.words(u.text))
    return next((m for m in d.medications if m.lower() in ws), None)


def _dose(d: Context, e: Entity) -> str:
    return spoken_es.spoken_dose(e) if d.lang == "es" else spoken_dose(e)


def _pharmacy(d: Context, e: Entity) -> str:
    return spoken_es.spoken_pharmacy(e) if d.lang == "es" else spoken_pharmacy(e)


def spoken_dose(e: Entity) -> str:
    if isinstance(e.value, dict) and "amount" in e.value:
        amount = e.value["amount"]
        number = int(amount) if float(amount).is_integer() else amount
        unit = {"mg": "milligrams", "mcg": "micrograms", "ml": "milliliters", "g": "grams"}.get(
            str(e.value.get("unit", "")), str(e.value.get("unit", ""))
        )
        return f"{number} {unit}".strip()
    return e.text


def spoken_pharmacy(e: Entity) -> str:
    if isinstance(e.value, dict) and e.value.get("chain"):
        location = e.value.get("location")
        return f"{e.value['chain']} on {location}" if location else str(e.value["chain"])
    return e.text
