"""What a few words mean to the dialog: cue lists and small predicates over the caller's text.

Every list here is matched on whole words of what the recogniser heard, lower-cased. They are kept
together so that a new phrasing ("that'll be all", Spanish closings) is added in one place, and so
the machine's modules read as decisions, not as string handling.
"""

from __future__ import annotations

import re

from agent.core.dialog import slots
from agent.core.understanding import Entity, Understanding

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
"""Words that point an office question at an FAQ topic."""

ANY_WORDS = frozenset(
    {"any", "anyone", "anybody", "whoever", "first", "earliest", "soonest", "whenever", "matter"}
)
"""No preference: any provider, any time."""
DONT_KNOW = ("don't know", "dont know", "not sure", "no idea", "i forget", "no se")
NONE_OF_THOSE = ("none", "neither", "other", "different", "something else", "anything else")
"""None of the offered times suits."""

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
"""The caller has nothing more to ask."""

READ_BACK_TAILS = frozenset(
    {"that's correct", "that is correct", "that's right", "that is right", "correct", "exactly"}
)
"""The end of a "yes" to a read-back, arriving on its own after a pause split the answer."""

RAN_OUT = re.compile(r"\b(none|out|ran out|no more|nothing)\b")
"""No tablets left ("I ran out"): a supply of zero days."""

_NEW_PATIENT = re.compile(r"\bnew patient\b|\bfirst (?:visit|appointment)\b|\bnever been\b")


def yes_no(u: Understanding) -> bool | None:
    """The caller's yes or no, when the recogniser heard one."""
    e = u.entity("yes_no")
    return e.value if e is not None and isinstance(e.value, bool) else None


def keyed(yes: bool, digit: str) -> Understanding:
    """A key pressed for yes or no ("press 1 for yes, 2 for no"), as if it had been said."""
    return Understanding(
        text="yes" if yes else "no",
        lang="en",
        intent="message",
        confidence=1.0,
        urgency="routine",
        entities=[Entity("yes_no", f"dtmf {digit}", yes)],
    )


def keyed_choice(digit: str) -> Understanding:
    """A key pressed for one of the offered choices, as if its ordinal had been said."""
    word = ("first", "second", "third")[int(digit) - 1]
    return Understanding(word, "en", "message", 1.0, "routine")


def short(text: str) -> bool:
    """A bare answer ("no thanks", "yes please", "that's all") rather than a new sentence."""
    return len(text.split()) <= 4


def done(u: Understanding) -> bool:
    """The caller has nothing more: a bare "no", or a closing phrase ("no, that's all, thanks")."""
    text = " ".join(re.findall(r"[\w']+", u.text.lower()))
    return (yes_no(u) is False and short(text)) or any(
        re.search(rf"\b{c}\b", text) for c in CLOSINGS
    )


def read_back_tail(text: str) -> bool:
    return " ".join(re.findall(r"[\w']+", text.lower())) in READ_BACK_TAILS


def said_any(text: str, cues: tuple[str, ...] | frozenset[str]) -> bool:
    lowered = " ".join(slots.words(text))
    return any(re.search(rf"\b{re.escape(c)}\b", lowered) for c in cues)


def new_patient(text: str) -> bool:
    """A booking for someone new to the practice ("I'm a new patient", "never been there")."""
    return bool(_NEW_PATIENT.search(text.lower()))


def faq_answer(text: str, faq: dict[str, str]) -> str | None:
    """The practice's answer to an office question, when it has one for the topic asked about."""
    ws = set(re.findall(r"[a-záéíóúñ]+", text.lower()))
    for topic, cues in FAQ_TOPICS.items():
        if topic in faq and ws & set(cues):
            return faq[topic]
    return None


def self_care(complaint: str, advice: dict[str, str]) -> str | None:
    """Practice-approved self-care text whose topic words all appear in the complaint."""
    ws = set(slots.words(complaint))
    for topic, text in advice.items():
        if set(slots.words(topic.replace("_", " "))) <= ws:
            return text
    return None
