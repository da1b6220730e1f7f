"""Which protocol a caller's words are about, and which of its questions they already answer.

Recall first: the topic comes from the topic model, or, when it is unsure, from the protocols'
terms (the lexicon); the signs of every protocol in the running (the model's best few and those
whose terms were said) are looked for in every hypothesis of the turn, and a sign found raises
the turn's urgency to its question's disposition. The model's nearest yes-example raises it too,
and so does a protocol's minimum (an infant's fever is never routine). Only negation, in the
sign matcher, lowers anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.core.negation import fold
from agent.core.protocols import ProtocolBook, urgency_of
from agent.core.triage import Triage
from agent.core.understanding import RedFlag
from agent.engines.nlu.topics import NEAR_DISPOSITION, NONE, Near, TopicGuess, TopicModel

RUNNING_SCORE = 0.10
"""A topic the model gives at least this probability is in the running: its signs are looked for."""
RUNNING = 3


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


class ProtocolReader:
    def __init__(self, book: ProtocolBook, topics: TopicModel) -> None:
        self.book = book
        self.topics = topics

    def read(
        self, text: str, *, lang: str = "en", alternatives: Sequence[str] = ()
    ) -> ProtocolReading:
        guess = self.topics.guess(text)
        said_terms = [
            pid
            for pid in self.book.ids()
            if any(
                Triage.flags_of([self.book.term_rule(pid)], t, lang) for t in (text, *alternatives)
            )
        ]
        probability = dict(guess.ranked)
        protocol, by, score = guess.protocol, "model", guess.score
        if protocol is not None and protocol not in self.book:
            protocol = None  # a pack the practice does not run
        if protocol is None and said_terms:
            protocol = max(said_terms, key=lambda pid: probability.get(pid, 0.0))
            by, score = "terms", probability.get(protocol, 0.0)
        if protocol is None:
            by = ""
        running = [protocol] if protocol else []
        running += [
            pid
            for pid, p in guess.ranked[:RUNNING]
            if pid != NONE and p >= RUNNING_SCORE and pid in self.book
        ]
        running += said_terms
        running = list(dict.fromkeys(running))
        flags: list[RedFlag] = []
        seen: set[str] = set()
        for pid in running:
            for hypothesis in (text, *alternatives):
                for flag in Triage.flags_of(self.book.rules(pid), hypothesis, lang):
                    if flag.rule_id not in seen:
                        seen.add(flag.rule_id)
                        flags.append(flag)
        near = self.topics.nearest_in(guess, running)
        if (
            near is not None
            and near.disposition is not None
            and near.similarity >= NEAR_DISPOSITION
        ):
            urgency = urgency_of(near.disposition)
            assert urgency != "routine"
            flags.append(
                RedFlag(
                    rule_id=f"{near.protocol}.model",
                    urgency=urgency,
                    label=f"Close to a {near.disposition} example of {near.protocol}: {near.text!r}",
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
