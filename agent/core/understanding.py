"""What understanding one caller utterance yields: the contract between NLU, triage and the dialog.

Produced by ``agent.engines.nlu`` (intent classifier + rule-based entities) and ``agent.core.triage``
(red flags); consumed by the dialog state machine and printed by ``medagent understand``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Intent = Literal[
    "schedule",
    "reschedule",
    "cancel",
    "refill",
    "symptoms",
    "test_results",
    "billing",
    "office_info",
    "speak_to_staff",
    "message",
]
INTENTS: tuple[str, ...] = (
    "schedule",
    "reschedule",
    "cancel",
    "refill",
    "symptoms",
    "test_results",
    "billing",
    "office_info",
    "speak_to_staff",
    "message",
)
Urgency = Literal["emergency", "urgent", "routine"]
URGENCIES: tuple[str, ...] = ("emergency", "urgent", "routine")


@dataclass(frozen=True)
class Entity:
    label: str
    """``date``, ``time``, ``datetime``, ``dob``, ``person``, ``phone``, ``medication``, ``dose``,
    ``pharmacy``, ``provider``, ``yes_no``, ``digit``…"""
    text: str
    """The words as heard."""
    value: Any
    """Normalised value: ISO date/time string, E.164-ish phone digits, canonical drug name, provider id…"""
    start: int = 0
    """Character offsets in the text."""
    end: int = 0


@dataclass(frozen=True)
class RedFlag:
    rule_id: str
    """Stable id of the triage rule (``chest_pain``)."""
    urgency: Literal["emergency", "urgent"]
    label: str
    """Human-readable name of the rule, for the clinician summary."""
    matched: str
    """The words that matched."""
    subject: Literal["self", "other"] = "self"
    """Whether the caller speaks of themselves or of someone else (``my son can't breathe``)."""


@dataclass(frozen=True)
class Understanding:
    text: str
    lang: str
    """``en`` or ``es``."""
    intent: str
    confidence: float
    urgency: Urgency
    red_flags: list[RedFlag] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    transcript: str | None = None
    """The raw STT text when the input was audio (``text`` is then the same words)."""
    alternatives: tuple[str, ...] = ()
    """The recogniser's other hypotheses of the same words (n-best), best first. The dialog tries
    them for a name the directory did not know ("Robert Chin" heard, "Robert Chen" meant)."""
    protocol: str | None = None
    """The nurse-line protocol the words are about (``agent/data/protocols``); ``None``: not a
    health problem, or none recognised."""

    def entity(self, label: str) -> Entity | None:
        return next((e for e in self.entities if e.label == label), None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "lang": self.lang,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "urgency": self.urgency,
            "red_flags": [asdict(r) for r in self.red_flags],
            "entities": [
                {"label": e.label, "text": e.text, "value": e.value} for e in self.entities
            ],
            "protocol": self.protocol,
        }
        if self.transcript is not None:
            out = {
                "text": self.text,
                "transcript": self.transcript,
                **{k: v for k, v in out.items() if k != "text"},
            }
        return out


def worth_a_second_listen(
    u: Understanding | None, min_confidence: float, *, unclear: bool = False
) -> bool:
    """Whether a larger recogniser should hear this turn again before the dialog acts on it
    (its words are then the ones acted on; triage reads both hearings).

    A turn about the caller's health that raised no emergency is where a small recogniser's slip
    hides one ("I fainted twice" heard "I think it twice", "my toddler swallowed" heard "my covers
    flow"); so is a turn the intent model is unsure of (``min_confidence``: the dialog's
    ``nlu.min_confidence``), where the slip may have changed the topic too ("I think the twice
    this morning" reads as billing). ``u`` is ``None`` when the first recogniser's words were
    not believed; ``unclear`` says there was speech it could not make out (a copy of its prompt,
    a loop: a strong accent, another language), which the larger one may. Turns already flagged
    as emergencies, and clear requests about anything else (booking, billing, hours), go on at
    once."""
    if u is None:
        return unclear
    if u.urgency == "emergency":
        return False
    return u.intent == "symptoms" or u.urgency == "urgent" or u.confidence < min_confidence


def other_hypotheses(best: str, *hypotheses: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Every hypothesis of a turn except ``best``, each once, in the order given: after a second
    listen, the second recogniser's others, then the first recogniser's best and others."""
    out: list[str] = []
    for group in hypotheses:
        for text in group:
            text = text.strip()
            if text and text != best.strip() and text not in out:
                out.append(text)
    return tuple(out)
