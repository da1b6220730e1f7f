"""Nurse-line protocols: what the agent asks about a health problem, in which order, and what a
yes means. Clinicians write them as TOML files (``agent/data/protocols/<pack>/<id>.toml``; how to
read and edit one: the README beside them); this module parses and checks them and answers the
questions the dialog and the recogniser ask of them. It reads no file: the engines pass the text.

A protocol is one topic a caller's problem is filed under ("urinary symptoms", "insect sting"):
the ways callers describe it (examples to train the topic model on, and terms), its disposition
questions from the most severe to the least, each with the disposition a yes gives and the caller
words (signs) that answer it yes on their own, details asked for the clinician's record, and the
care advice read at the routine end. As a telephone-triage nurse does, the agent asks the
questions in order and stops at the first yes; a caller who already said a sign is not asked.

Dispositions, most severe first:

    911       hang up and dial 911 (the on-call clinician is offered too)
    see_now   the on-call clinician now (warm transfer; an urgent message when nobody answers)
    same_day  the on-call clinician calls back today (an urgent message for them)
    routine   the nurse line's message, with the protocol's care advice
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.core.triage import Rule, compile_rule
from agent.errors import ConfigError

Disposition = Literal["911", "see_now", "same_day", "routine"]
DISPOSITIONS: tuple[Disposition, ...] = ("911", "see_now", "same_day", "routine")
"""Most severe first."""
PACKS = ("base", "cardiology", "dermatology", "pediatrics")
AGES = ("adult", "child", "infant", "any")
MAX_QUESTIONS = 5
"""A caller with a problem should not face an interview: about four questions, five at most."""

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_SIGN = re.compile(r"^[a-z0-9* ]+$")
_TOP_KEYS = frozenset(
    {
        "id",
        "title",
        "title_es",
        "pack",
        "ages",
        "covers",
        "examples",
        "examples_es",
        "routine_examples",
        "routine_examples_es",
        "terms",
        "terms_es",
        "minimum",
        "question",
        "detail",
        "routine",
    }
)
_QUESTION_KEYS = frozenset(
    {"id", "ask", "ask_es", "disposition", "signs", "signs_es", "examples", "examples_es"}
)
_DETAIL_KEYS = frozenset({"id", "ask", "ask_es"})
_ROUTINE_KEYS = frozenset({"advice", "advice_es"})


def urgency_of(disposition: Disposition) -> Literal["emergency", "urgent", "routine"]:
    if disposition == "911":
        return "emergency"
    return "urgent" if disposition in ("see_now", "same_day") else "routine"


def more_severe(a: Disposition, b: Disposition) -> Disposition:
    return a if DISPOSITIONS.index(a) <= DISPOSITIONS.index(b) else b


@dataclass(frozen=True)
class Question:
    id: str
    ask: str
    ask_es: str
    disposition: Disposition
    signs: tuple[str, ...]
    signs_es: tuple[str, ...]
    examples: tuple[str, ...] = ()
    """Caller sentences that answer this question yes on their own (the model learns urgency
    from them)."""
    examples_es: tuple[str, ...] = ()

    def text(self, lang: str) -> str:
        return self.ask_es if lang == "es" else self.ask


@dataclass(frozen=True)
class Detail:
    id: str
    ask: str
    ask_es: str

    def text(self, lang: str) -> str:
        return self.ask_es if lang == "es" else self.ask


@dataclass(frozen=True)
class Protocol:
    id: str
    title: str
    title_es: str
    pack: str
    ages: str
    covers: str
    examples: tuple[str, ...]
    examples_es: tuple[str, ...]
    terms: tuple[str, ...]
    terms_es: tuple[str, ...]
    questions: tuple[Question, ...]
    details: tuple[Detail, ...]
    advice: str
    advice_es: str
    routine_examples: tuple[str, ...] = ()
    """The problem in its mild, routine form (care advice, a regular visit): what the urgency
    model learns is not urgent."""
    routine_examples_es: tuple[str, ...] = ()
    minimum: Disposition = "routine"
    """The least a call about this topic gets, whatever the answers (an infant's fever: see_now)."""
    file: str = ""

    def question(self, question_id: str) -> Question:
        return next(q for q in self.questions if q.id == question_id)

    def rule_id(self, question: Question) -> str:
        """The red-flag id of a question's signs: ``protocol.question``."""
        return f"{self.id}.{question.id}"

    def all_examples(self) -> list[tuple[str, Disposition | None]]:
        """Every example sentence with the disposition it states (``None``: not stated)."""
        out: list[tuple[str, Disposition | None]] = [
            (e, None) for e in (*self.examples, *self.examples_es)
        ]
        out += [(e, "routine") for e in (*self.routine_examples, *self.routine_examples_es)]
        for q in self.questions:
            out += [(e, q.disposition) for e in (*q.examples, *q.examples_es)]
        return out


@dataclass
class ProtocolBook:
    """The protocols in force: the base pack with the practice's specialty packs over it (a
    pack's protocol replaces the base one of the same id)."""

    protocols: dict[str, Protocol]
    packs: tuple[str, ...] = ("base",)
    _rules: dict[str, tuple[Rule, ...]] = field(default_factory=dict, repr=False)
    _terms: dict[str, Rule] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._terms = {
            p.id: compile_rule(
                rule_id=f"{p.id}.terms",
                label=p.title,
                urgency="urgent",
                phrases=p.terms or (p.title.lower(),),
                phrases_es=p.terms_es,
                file=p.file,
                pack=p.pack,
            )
            for p in self.protocols.values()
        }
        self._rules = {
            p.id: tuple(
                compile_rule(
                    rule_id=p.rule_id(q),
                    label=f"{p.title}: {q.ask}",
                    urgency=urgency_of(q.disposition),  # type: ignore[arg-type]
                    phrases=q.signs,
                    phrases_es=q.signs_es,
                    file=p.file,
                    pack=p.pack,
                )
                for q in p.questions
            )
            for p in self.protocols.values()
        }

    @classmethod
    def from_sources(
        cls, sources: Sequence[tuple[str, str]], packs: Iterable[str] = ()
    ) -> ProtocolBook:
        """``(file name, TOML text)`` pairs of every pack's files; ``packs``: the specialty packs
        in force. Raises ``ConfigError`` naming the file and the field."""
        wanted = ["base", *(p for p in dict.fromkeys(packs) if p != "base")]
        for pack in wanted:
            if pack not in PACKS:
                raise ConfigError(
                    f"unknown protocol pack {pack!r}; available: {', '.join(PACKS)}",
                    key="practice.specialty_packs",
                )
        parsed: dict[tuple[str, str], Protocol] = {}
        for file, text in sources:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"not valid TOML: {exc}", file=file) from None
            protocol = parse_protocol(data, file=file)
            key = (protocol.pack, protocol.id)
            if key in parsed:
                raise ConfigError(
                    f"protocol {protocol.id!r} of pack {protocol.pack!r} is already defined in "
                    f"{parsed[key].file}",
                    file=file,
                )
            parsed[key] = protocol
        chosen: dict[str, Protocol] = {}
        for pack in wanted:
            for (p_pack, p_id), protocol in sorted(parsed.items()):
                if p_pack == pack:
                    chosen[p_id] = protocol
        if not chosen:
            raise ConfigError("no protocol files found in the base pack")
        return cls(chosen, tuple(wanted))

    def __getitem__(self, protocol_id: str) -> Protocol:
        return self.protocols[protocol_id]

    def __contains__(self, protocol_id: object) -> bool:
        return protocol_id in self.protocols

    def __len__(self) -> int:
        return len(self.protocols)

    def ids(self) -> list[str]:
        return sorted(self.protocols)

    def rules(self, protocol_id: str) -> tuple[Rule, ...]:
        """The sign rules of one protocol's questions, in the protocol's order."""
        return self._rules.get(protocol_id, ())

    def term_rule(self, protocol_id: str) -> Rule:
        """The protocol's terms as one rule: the lexicon's pointer to the topic."""
        return self._terms[protocol_id]

    def find_question(self, rule_id: str) -> tuple[Protocol, Question] | None:
        """The protocol and question a sign rule id (``protocol.question``) belongs to."""
        pid, _, qid = rule_id.partition(".")
        protocol = self.protocols.get(pid)
        if protocol is None:
            return None
        return next(((protocol, q) for q in protocol.questions if q.id == qid), None)


# ------------------------------------------------------------------------------------------------
# Parsing and checking one file


def parse_protocol(data: dict[str, Any], *, file: str) -> Protocol:
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))}; expected: {', '.join(sorted(_TOP_KEYS))}",
            file=file,
        )
    pid = _text(data, "id", file=file, where="")
    if not _ID.match(pid):
        raise ConfigError(f"id {pid!r}: lower-case letters, digits and _ only", file=file)
    pack = _text(data, "pack", file=file, where="")
    if pack not in PACKS:
        raise ConfigError(f"pack {pack!r}: expected one of {', '.join(PACKS)}", file=file)
    ages = _text(data, "ages", file=file, where="")
    if ages not in AGES:
        raise ConfigError(f"ages {ages!r}: expected one of {', '.join(AGES)}", file=file)
    minimum = data.get("minimum", "routine")
    if minimum not in DISPOSITIONS:
        raise ConfigError(
            f"minimum {minimum!r}: expected one of {', '.join(DISPOSITIONS)}", file=file
        )
    raw_questions = data.get("question", [])
    if not isinstance(raw_questions, list) or not raw_questions:
        raise ConfigError("expected at least one [[question]]", file=file)
    if len(raw_questions) > MAX_QUESTIONS:
        raise ConfigError(
            f"{len(raw_questions)} questions: at most {MAX_QUESTIONS} (a caller should not face "
            "an interview; put the rarest signs of a level together in one question)",
            file=file,
        )
    questions = tuple(_question(q, file=file, index=i) for i, q in enumerate(raw_questions))
    _check_order(questions, file=file)
    if len({q.id for q in questions}) != len(questions):
        raise ConfigError("two questions have the same id", file=file)
    details = tuple(_detail(d, file=file, index=i) for i, d in enumerate(data.get("detail", [])))
    routine = data.get("routine")
    if not isinstance(routine, dict):
        raise ConfigError("expected a [routine] table with advice and advice_es", file=file)
    unknown = sorted(set(routine) - _ROUTINE_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [routine]", file=file, key="routine")
    protocol = Protocol(
        id=pid,
        title=_text(data, "title", file=file, where=""),
        title_es=_text(data, "title_es", file=file, where=""),
        pack=pack,
        ages=ages,
        covers=_text(data, "covers", file=file, where=""),
        examples=_strings(data, "examples", file=file, where="", least=1),
        examples_es=_strings(data, "examples_es", file=file, where="", least=1),
        terms=_signs(data, "terms", file=file, where=""),
        terms_es=_signs(data, "terms_es", file=file, where=""),
        questions=questions,
        details=details,
        routine_examples=_strings(data, "routine_examples", file=file, where=""),
        routine_examples_es=_strings(data, "routine_examples_es", file=file, where=""),
        advice=_text(routine, "advice", file=file, where="routine"),
        advice_es=_text(routine, "advice_es", file=file, where="routine"),
        minimum=minimum,
        file=file,
    )
    return protocol


def _question(raw: Any, *, file: str, index: int) -> Question:
    where = f"question #{index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError("expected a table", file=file, key=where)
    unknown = sorted(set(raw) - _QUESTION_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))}; expected: {', '.join(sorted(_QUESTION_KEYS))}",
            file=file,
            key=where,
        )
    qid = _text(raw, "id", file=file, where=where)
    if not _ID.match(qid):
        raise ConfigError(
            f"id {qid!r}: lower-case letters, digits and _ only", file=file, key=where
        )
    where = f"question {qid}"
    disposition = raw.get("disposition")
    if disposition not in ("911", "see_now", "same_day"):
        raise ConfigError(
            f"disposition {disposition!r}: expected '911', 'see_now' or 'same_day'",
            file=file,
            key=where,
        )
    signs = _signs(raw, "signs", file=file, where=where)
    signs_es = _signs(raw, "signs_es", file=file, where=where)
    if not signs or not signs_es:
        raise ConfigError(
            "expected signs and signs_es: the caller words that answer this question yes",
            file=file,
            key=where,
        )
    return Question(
        id=qid,
        ask=_text(raw, "ask", file=file, where=where),
        ask_es=_text(raw, "ask_es", file=file, where=where),
        disposition=disposition,
        signs=signs,
        signs_es=signs_es,
        examples=_strings(raw, "examples", file=file, where=where),
        examples_es=_strings(raw, "examples_es", file=file, where=where),
    )


def _detail(raw: Any, *, file: str, index: int) -> Detail:
    where = f"detail #{index + 1}"
    if not isinstance(raw, dict) or set(raw) - _DETAIL_KEYS:
        raise ConfigError("expected a table with id, ask and ask_es", file=file, key=where)
    return Detail(
        id=_text(raw, "id", file=file, where=where),
        ask=_text(raw, "ask", file=file, where=where),
        ask_es=_text(raw, "ask_es", file=file, where=where),
    )


def _check_order(questions: Sequence[Question], *, file: str) -> None:
    ranks = [DISPOSITIONS.index(q.disposition) for q in questions]
    for before, after, q in zip(ranks, ranks[1:], questions[1:], strict=False):
        if after < before:
            raise ConfigError(
                f"question {q.id} ({q.disposition}) comes after a less severe one: order the "
                "questions from the most severe disposition to the least",
                file=file,
            )


def _text(raw: dict[str, Any], key: str, *, file: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"expected {key} = some text", file=file, key=where or None)
    return value.strip()


def _strings(
    raw: dict[str, Any], key: str, *, file: str, where: str, least: int = 0
) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"expected {key} = a list of sentences", file=file, key=where or None)
    if len(value) < least:
        raise ConfigError(
            f"expected at least {least} entries in {key}", file=file, key=where or None
        )
    return tuple(v.strip() for v in value)


def _signs(raw: dict[str, Any], key: str, *, file: str, where: str) -> tuple[str, ...]:
    values = _strings(raw, key, file=file, where=where)
    for v in values:
        if not _SIGN.match(v):
            raise ConfigError(
                f"{key}: {v!r}: write signs in lower case without accents or apostrophes "
                '("cant breathe", "nino"); * stands for up to four words',
                file=file,
                key=where or None,
            )
    return values
