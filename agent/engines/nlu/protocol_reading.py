"""Which protocol a caller's words are about, and which of its questions they already answer.

Recall first: the topic comes from the topic model, or, when it is unsure, from the protocols'
terms (the lexicon); the signs of every protocol in the running (the model's best few and those
whose terms were said) are looked for in every hypothesis of the turn, and a sign found raises
the turn's urgency to its question's disposition. The model's nearest yes-example raises it too,
and so does a protocol's minimum (an infant's fever is never routine). Only negation, in the
sign matcher, lowers anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agent.core.negation import fold
from agent.core.protocols import ProtocolBook, urgency_of
from agent.core.triage import Triage
from agent.core.understanding import RedFlag
from agent.engines.nlu.topics import (
    EMERGENCY_LEVEL,
    NONE,
    URGENT_LEVEL,
    Near,
    TopicGuess,
    TopicModel,
)

RUNNING_SCORE = 0.10
"""A topic the model gives at least this probability is in the running: its signs are looked for."""
RUNNING = 3
ORDINARY = 0.6
"""When the model gives ``none`` (ordinary business: a booking, a bill) at least this probability,
no protocol's signs are looked for; the pack's red-flag rules still are."""
INFANT_WORDS = (
    "baby",
    "babies",
    "newborn",
    "infant",
    "week old",
    "weeks old",
    "month old",
    "months old",
    "bebe",
    "recien nacido",
    "semanas de nacido",
    "meses",
)
"""A protocol for babies is only chosen when the words say there is a baby."""


@dataclass(frozen=True)
class ProtocolReading:
    protocol: str | None
    score: float
    flags: list[RedFlag] = field(default_factory=list)
    guess: TopicGuess | None = None
    near: Near | None = None
    by: str = ""
    """``model``, ``terms`` or ``""`` (no protocol)."""
    running: tuple[str, ...] = ()
    """The protocols whose signs were looked for."""


HEAD_MIN_WORDS = 5
"""The urgency model reads sentences: a short detail answer ("the ten milligram pills") is not
one it was trained to judge."""


def _long_enough(text: str) -> bool:
    return len(fold(text).text.split()) >= HEAD_MIN_WORDS


class ProtocolReader:
    def __init__(self, book: ProtocolBook | Callable[[], ProtocolBook], topics: TopicModel) -> None:
        # A callable: the book in force at each turn (``medagent reload`` may replace it).
        self._book = book
        self.topics = topics

    @property
    def book(self) -> ProtocolBook:
        return self._book() if callable(self._book) else self._book

    def _fits_age(self, pid: str, text: str, alternatives: Sequence[str], lang: str) -> bool:
        if self.book[pid].ages != "infant":
            return True
        return any(f" {w} " in fold(t).text for t in (text, *alternatives) for w in INFANT_WORDS)

    def read(
        self, text: str, *, lang: str = "en", alternatives: Sequence[str] = ()
    ) -> ProtocolReading:
        guess = self.topics.guess(text)
        # Every protocol's terms in one pass over each hypothesis (the text is folded once).
        book = self.book
        terms = [book.term_rule(pid) for pid in book.ids()]
        heard = {
            flag.rule_id for t in (text, *alternatives) for flag in Triage.flags_of(terms, t, lang)
        }
        said_terms = [pid for pid, rule in zip(book.ids(), terms, strict=True) if rule.id in heard]
        probability = dict(guess.ranked)
        ordinary = probability.get(NONE, 0.0) >= ORDINARY
        protocol, by, score = guess.protocol, "model", guess.score
        if protocol is not None and (
            protocol not in self.book or not self._fits_age(protocol, text, alternatives, lang)
        ):
            # A pack the practice does not run, or a baby's protocol with no baby in the words:
            # the next best that fits.
            protocol = next(
                (
                    pid
                    for pid, p in guess.ranked[1:RUNNING]
                    if pid != NONE
                    and p >= RUNNING_SCORE
                    and pid in self.book
                    and self._fits_age(pid, text, alternatives, lang)
                ),
                None,
            )
            score = probability.get(protocol, 0.0) if protocol else 0.0
        if protocol is None and said_terms and not ordinary:
            protocol = max(said_terms, key=lambda pid: probability.get(pid, 0.0))
            by, score = "terms", probability.get(protocol, 0.0)
        if protocol is None:
            by = ""
        # Whose signs are looked for: the protocol's own, all of them; and the dangerous ones
        # (911, see now) of the other topics the words may be about. A turn the model is sure is
        # ordinary business has only the pack's red-flag rules looked at.
        running = [protocol] if protocol else []
        if not ordinary:
            running += [
                pid
                for pid, p in guess.ranked[:RUNNING]
                if pid != NONE and p >= RUNNING_SCORE and pid in self.book
            ]
            running += said_terms
            running = [
                pid
                for pid in running
                if pid == protocol or self._fits_age(pid, text, alternatives, lang)
            ]
        running = list(dict.fromkeys(running))
        flags: list[RedFlag] = []
        seen: set[str] = set()
        for pid in running:
            rules = self.book.rules(pid)
            if pid != protocol:
                rules = tuple(
                    r
                    for r, q in zip(rules, self.book[pid].questions, strict=True)
                    if q.disposition != "same_day"
                )
            for hypothesis in (text, *alternatives):
                for flag in Triage.flags_of(rules, hypothesis, lang):
                    if flag.rule_id not in seen:
                        seen.add(flag.rule_id)
                        flags.append(flag)
        # The closest example of the topics in the running, for ``medagent triage explain``. Its
        # disposition does not raise the turn: on held-out examples a close yes-example said
        # little (bench/protocols.py: at similarity 0.95, 10 % of yes-examples raised for 9 % of
        # plain ones); the urgency model below does better.
        near = self.topics.nearest_in(guess, running)
        if guess.levels and not ordinary and protocol is not None and _long_enough(text):
            emergency = guess.level("911")
            urgent = emergency + guess.level("see_now")
            level: Literal["emergency", "urgent"] | None = (
                "emergency"
                if emergency >= EMERGENCY_LEVEL
                else "urgent"
                if urgent >= URGENT_LEVEL
                else None
            )
            if level is not None:
                flags.append(
                    RedFlag(
                        rule_id=f"model.{level}",
                        urgency=level,
                        label=f"The urgency model: 911 {emergency:.2f}, any urgent {urgent:.2f}",
                        matched=text,
                    )
                )
        if protocol is not None:
            minimum = self.book[protocol].minimum
            if minimum != "routine":
                urgency = urgency_of(minimum)
                assert urgency != "routine"
                flags.append(
                    RedFlag(
                        rule_id=f"{protocol}.minimum",
                        urgency=urgency,
                        label=f"{self.book[protocol].title}: always {minimum}",
                        matched=fold(text).text.strip(),
                    )
                )
        flags.sort(key=lambda f: 0 if f.urgency == "emergency" else 1)
        return ProtocolReading(protocol, score, flags, guess, near, by, tuple(running))
