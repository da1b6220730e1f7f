"""Red-flag triage: clinician-editable rules (``agent/data/triage/*.toml``) applied to caller speech.

``Triage.load(["cardiology"])`` reads the base pack plus the named specialty packs once, validates
them (an unknown key, a bad urgency, a rule that cannot match, a broken pattern all fail at start-up
with the file and the rule) and compiles them. After that ``assess`` is pure: text in, flags out.

Matching is done on folded text (``agent.core.negation.fold``: lower case, no accents, no
apostrophes), so rules are written without worrying about "can't" vs "cant" or "está" vs "esta".
A finding preceded by a negation in its clause ("no chest pain", "denies fever", "no tengo dolor de
pecho") does not count; a rule may opt out with ``negatable = false`` (suicidal talk). Whom a flag is
about ("my son can't breathe") comes from ``agent.core.negation.subject_of``.

Every rule is applied in both languages whatever ``lang`` says (``lang`` only orders them): the
language guess on a two-second turn is unreliable and callers switch language under stress, and a
Spanish phrase cannot fire on English words by accident (the dev set shows no false alarm from it).

Speech to text mishears, so a phrase of two or more words also matches with one of its long words
heard a letter wrong (``_compile_phrase``) or heard as one or two words that sound like it
(``agent.core.soundalike``: "swole with some of grandma's pills"), the other words as written.

The syntax of a pack is explained at the top of ``agent/data/triage/base.toml``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.core.negation import (
    NEGATION_CUES,
    PSEUDO_NEGATION_NEXT,
    Folded,
    fold,
    is_negated,
    subject_of,
)
from agent.core.soundalike import Respelling, SoundAlikes
from agent.core.understanding import RedFlag, Urgency
from agent.errors import ConfigError

PACK_DIR = Path(__file__).resolve().parent.parent / "data" / "triage"
BASE_PACK = "base"
LANGS = ("en", "es")

_RULE_KEYS = frozenset(
    {
        "id",
        "label",
        "urgency",
        "phrases",
        "phrases_es",
        "patterns",
        "patterns_es",
        "requires",
        "negatable",
        "note",
    }
)
_GROUP_KEYS = frozenset({"name", "phrases", "phrases_es", "patterns", "patterns_es", "note"})
_PACK_KEYS = frozenset({"description", "rule"})
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_WILDCARD_WORDS = 4
"""A lone ``*`` in a phrase stands for up to this many words ("pain in * chest")."""


@dataclass(frozen=True)
class _Matcher:
    """The phrases and patterns of one rule or ``requires`` group, compiled per language."""

    by_lang: dict[str, re.Pattern[str]]
    literal_words: frozenset[str]
    """Words written in the phrases and patterns themselves ("no" in "no wet diapers")."""
    as_written: re.Pattern[str] | None
    """The English phrases as written (no one-letter slips) and the patterns: what a text with a
    sound-alike word put back must match, so that two slips never make a phrase."""
    sound_alike_words: frozenset[str]
    """The words of English phrases of two or more words that may be heard as words that sound
    like them ("swallowed * pills" heard "swole with some of grandma's pills")."""

    def find(
        self,
        folded: Folded,
        langs: Iterable[str],
        *,
        negatable: bool,
        respelled: tuple[int, int] | None = None,
    ) -> re.Match[str] | None:
        """The first match in ``folded`` that no negation governs. With ``respelled`` (where a
        sound-alike word was put back), only the English phrases as written count, and only a
        match that holds that word and at least one word heard as written."""
        for lang in langs:
            if respelled is None:
                rx = self.by_lang.get(lang)
            else:
                rx = self.as_written if lang == "en" else None
            if rx is None:
                continue
            for m in rx.finditer(folded.text):
                if respelled is not None and not (
                    m.start() <= respelled[0]
                    and respelled[1] <= m.end()
                    and (m.start(), m.end()) != respelled
                ):
                    continue
                if negatable and (
                    is_negated(folded.words_before(m.start()))
                    or self._negated_inside(m.group().split())
                ):
                    continue
                return m
        return None

    def _negated_inside(self, words: list[str]) -> bool:
        """A negation that a wildcard let in: "defibrillator has not shocked me"."""
        for index, word in enumerate(words):
            if word in NEGATION_CUES and word not in self.literal_words:
                following = words[index + 1] if index + 1 < len(words) else ""
                if following not in PSEUDO_NEGATION_NEXT:
                    return True
        return False


@dataclass(frozen=True)
class Rule:
    id: str
    label: str
    urgency: Literal["emergency", "urgent"]
    pack: str
    trigger: _Matcher
    requires: tuple[_Matcher, ...]
    negatable: bool


class Triage:
    """The loaded rule set. Build with ``Triage.load``; ``assess`` is pure and thread-safe."""

    def __init__(self, rules: Sequence[Rule], packs: Sequence[str]) -> None:
        self.rules = tuple(rules)
        self.packs = tuple(packs)
        self._sound_alikes = SoundAlikes(w for r in self.rules for w in r.trigger.sound_alike_words)

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def load(cls, packs: list[str], directory: str | Path | None = None) -> Triage:
        """The base pack plus the named specialty packs. Raises ``ConfigError``."""
        where = Path(directory) if directory is not None else PACK_DIR
        names = [BASE_PACK] + [p for p in dict.fromkeys(packs) if p != BASE_PACK]
        sources: list[tuple[str, str]] = []
        for name in names:
            path = where / f"{name}.toml"
            if not path.is_file():
                known = ", ".join(sorted(p.stem for p in where.glob("*.toml")))
                raise ConfigError(
                    f"unknown triage pack {name!r}; available: {known}", file=str(path)
                )
            sources.append((str(path), path.read_text(encoding="utf-8")))
        return cls.from_sources(sources)

    @classmethod
    def from_sources(cls, sources: Sequence[tuple[str, str]]) -> Triage:
        """Build from ``(file name, TOML text)`` pairs; the file name is used in error messages."""
        rules: list[Rule] = []
        seen: dict[str, str] = {}
        for file, text in sources:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"not valid TOML: {exc}", file=file) from None
            pack = Path(file).stem
            for rule in _parse_pack(data, file=file, pack=pack):
                if rule.id in seen:
                    raise ConfigError(
                        f"rule id {rule.id!r} is already defined in {seen[rule.id]}",
                        file=file,
                        key=f"rule {rule.id}",
                    )
                seen[rule.id] = file
                rules.append(rule)
        return cls(rules, [Path(f).stem for f, _ in sources])

    # -- assessing -----------------------------------------------------------------------------

    def assess(self, text: str, lang: str = "en") -> list[RedFlag]:
        """The red flags raised by one utterance, emergencies first, each rule at most once."""
        folded = fold(text)
        order = [lang] + [other for other in LANGS if other != lang]
        flags: list[RedFlag] = []
        for rule in self.rules:
            flag = self._flag(rule, folded, order)
            if flag is not None:
                flags.append(flag)
        # Then the rules still silent, on the text with one word (or two) that sounds like a
        # word of their phrases put back: "swole with some of grandma's pills".
        raised = {f.rule_id for f in flags}
        for respelling in self._sound_alikes.respellings(folded):
            for rule in self.rules:
                if rule.id in raised or respelling.word not in rule.trigger.sound_alike_words:
                    continue
                flag = self._flag(rule, respelling.folded, order, respelled=respelling)
                if flag is not None:
                    raised.add(rule.id)
                    flags.append(flag)
        flags.sort(key=lambda f: 0 if f.urgency == "emergency" else 1)
        return flags

    @classmethod
    def flags_of(cls, rules: Sequence[Rule], text: str, lang: str = "en") -> list[RedFlag]:
        """The flags of ``rules`` alone on ``text`` (a protocol's signs), as ``assess`` finds them."""
        folded = fold(text)
        order = [lang] + [other for other in LANGS if other != lang]
        return [f for r in rules if (f := cls._flag(r, folded, order)) is not None]

    @staticmethod
    def _flag(
        rule: Rule, folded: Folded, order: list[str], *, respelled: Respelling | None = None
    ) -> RedFlag | None:
        span = None if respelled is None else (respelled.start, respelled.end)
        m = rule.trigger.find(folded, order, negatable=rule.negatable, respelled=span)
        if m is None:
            return None
        if any(
            group.find(folded, order, negatable=rule.negatable) is None for group in rule.requires
        ):
            return None
        return RedFlag(
            rule_id=rule.id,
            urgency=rule.urgency,
            label=rule.label,
            matched=folded.original(m.start(), m.end()),
            # The match's own words count too: "le duele el pecho" is about him or her.
            subject=subject_of(folded.words_before(m.end())),
        )

    @staticmethod
    def urgency(flags: Iterable[RedFlag]) -> Urgency:
        levels = {f.urgency for f in flags}
        if "emergency" in levels:
            return "emergency"
        if "urgent" in levels:
            return "urgent"
        return "routine"


# --------------------------------------------------------------------------------------------------
# Pack parsing and validation


def _parse_pack(data: dict[str, Any], *, file: str, pack: str) -> list[Rule]:
    unknown = sorted(set(data) - _PACK_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))}; expected: description, [[rule]]",
            file=file,
        )
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ConfigError("expected at least one [[rule]] table", file=file)
    return [_parse_rule(raw, file=file, pack=pack, index=i) for i, raw in enumerate(raw_rules)]


def _parse_rule(raw: Any, *, file: str, pack: str, index: int) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError("expected a table", file=file, key=f"rule #{index + 1}")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise ConfigError(
            f"expected id = a lower-case name like 'chest_pain', got {rule_id!r}",
            file=file,
            key=f"rule #{index + 1}",
        )
    where = f"rule {rule_id}"
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))}; expected: {', '.join(sorted(_RULE_KEYS))}",
            file=file,
            key=where,
        )
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ConfigError("expected label = a short readable name", file=file, key=where)
    urgency = raw.get("urgency")
    if urgency not in ("emergency", "urgent"):
        raise ConfigError(
            f"expected urgency = 'emergency' or 'urgent', got {urgency!r}", file=file, key=where
        )
    negatable = raw.get("negatable", True)
    if not isinstance(negatable, bool):
        raise ConfigError("expected negatable = true or false", file=file, key=where)
    trigger = _compile_group(raw, file=file, where=where)
    if urgency == "emergency" and "es" not in trigger.by_lang:
        raise ConfigError(
            "an emergency rule needs Spanish phrases_es or patterns_es", file=file, key=where
        )
    requires_raw = raw.get("requires", [])
    if not isinstance(requires_raw, list):
        raise ConfigError("expected [[rule.requires]] tables", file=file, key=where)
    requires: list[_Matcher] = []
    for n, group in enumerate(requires_raw):
        gwhere = f"{where}.requires #{n + 1}"
        if not isinstance(group, dict):
            raise ConfigError("expected a table", file=file, key=gwhere)
        unknown = sorted(set(group) - _GROUP_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(map(repr, unknown))}; expected: {', '.join(sorted(_GROUP_KEYS))}",
                file=file,
                key=gwhere,
            )
        requires.append(_compile_group(group, file=file, where=gwhere))
    return Rule(
        id=rule_id,
        label=label.strip(),
        urgency=urgency,
        pack=pack,
        trigger=trigger,
        requires=tuple(requires),
        negatable=negatable,
    )


def compile_rule(
    *,
    rule_id: str,
    label: str,
    urgency: Literal["emergency", "urgent"],
    phrases: Sequence[str],
    phrases_es: Sequence[str],
    file: str,
    pack: str,
    negatable: bool = True,
) -> Rule:
    """A rule built from phrases held elsewhere (a protocol question's signs): the same matching
    as a pack's rules, so both read callers the same way."""
    trigger = _compile_group(
        {"phrases": list(phrases), "phrases_es": list(phrases_es)}, file=file, where=rule_id
    )
    return Rule(
        id=rule_id,
        label=label,
        urgency=urgency,
        pack=pack,
        trigger=trigger,
        requires=(),
        negatable=negatable,
    )


def _compile_group(raw: dict[str, Any], *, file: str, where: str) -> _Matcher:
    by_lang: dict[str, re.Pattern[str]] = {}
    literal: set[str] = set()
    as_written: list[str] = []
    sound_alike: set[str] = set()
    for lang in LANGS:
        suffix = "" if lang == "en" else f"_{lang}"
        parts: list[str] = []
        for key in ("phrases", "patterns"):
            values = raw.get(key + suffix, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ConfigError(
                    f"expected {key + suffix} = a list of strings", file=file, key=where
                )
            for value in values:
                if not value.strip():
                    raise ConfigError(f"empty entry in {key + suffix}", file=file, key=where)
                literal.update(re.findall(r"[a-z]+", fold(value).text))
                at = f"{where}.{key + suffix}"
                if key == "patterns":
                    parts.append(_checked_pattern(value, file=file, where=at))
                    if lang == "en":
                        as_written.append(parts[-1])
                    continue
                phrase = _compile_phrase(value, file=file, where=at)
                parts.append(phrase.regex)
                if lang == "en":
                    as_written.append(phrase.as_written)
                    sound_alike.update(phrase.sound_alike_words)
        if parts:
            by_lang[lang] = _whole_words(parts)
    if not by_lang:
        raise ConfigError(
            "no phrases or patterns: the rule could never match", file=file, key=where
        )
    return _Matcher(
        by_lang=by_lang,
        literal_words=frozenset(literal),
        as_written=_whole_words(as_written) if as_written else None,
        sound_alike_words=frozenset(sound_alike),
    )


def _whole_words(parts: list[str]) -> re.Pattern[str]:
    # Whole words only: folded text has a space at each end and between words.
    return re.compile("(?<= )(?:" + "|".join(parts) + ")(?= )")


@dataclass(frozen=True)
class _Phrase:
    regex: str
    """Its words as written, or with one of its long words misheard."""
    as_written: str
    """Its words as written only."""
    sound_alike_words: frozenset[str]
    """Its words that may be heard as words that sound like them (``agent.core.soundalike``):
    each word written out (not ``*``, not a ``word*`` prefix) of a phrase of two words or more."""


def _compile_phrase(phrase: str, *, file: str, where: str) -> _Phrase:
    """The regexes of one phrase.

    Speech to text often gets one word of a phrase a letter wrong ("passing cloth", "severe
    bleating"). A phrase of two or more words therefore also matches when exactly one of its words
    of ``_SOUND_ALIKE_MIN`` letters or more is one edit away (a letter changed, added or dropped)
    and every other word is as written. One-word phrases and ``word*`` prefixes stay exact: on
    their own, one-edit neighbours of a single word are too often other words ("bleed"/"breed").
    """
    tokens = phrase.lower().split()
    if not tokens or tokens[0] == "*" or tokens[-1] == "*":
        raise ConfigError(f"phrase {phrase!r} must start and end with a word", file=file, key=where)
    pieces: list[tuple[str, str | None]] = []  # (exact regex, sound-alike regex or None)
    written_out: set[str] = set()
    word_count = 0
    for token in tokens:
        if token == "*":
            pieces.append((f"(?:\\S+ ){{0,{_WILDCARD_WORDS}}}", None))
            continue
        words = fold(token.rstrip("*")).text.split()
        if not words:
            raise ConfigError(f"phrase {phrase!r} has an empty word", file=file, key=where)
        prefix = token.endswith("*")
        word_count += len(words)
        for i, w in enumerate(words):
            last = i == len(words) - 1
            exact = re.escape(w) + ("\\S*" if prefix and last else "") + " "
            fuzzy = None if (prefix and last) else _one_edit_regex(w)
            pieces.append((exact, None if fuzzy is None else fuzzy + " "))
            if not (prefix and last):
                written_out.add(w)
    variants = ["".join(exact for exact, _ in pieces)[:-1]]
    if word_count >= 2:
        for k, (_, fuzzy) in enumerate(pieces):
            if fuzzy is not None:
                variants.append(
                    "".join(fuzzy if j == k else exact for j, (exact, _) in enumerate(pieces))[:-1]
                )
    return _Phrase(
        regex=variants[0] if len(variants) == 1 else "(?:" + "|".join(variants) + ")",
        as_written=variants[0],
        sound_alike_words=frozenset(written_out if word_count >= 2 else ()),
    )


_SOUND_ALIKE_MIN = 5
"""Shortest word of a phrase that may be matched one edit away (shorter words are too close to
other words: "pain"/"rain", "arm"/"art")."""


def _one_edit_regex(word: str) -> str | None:
    """A regex for the words one edit away from ``word`` (not ``word`` itself), or ``None`` when
    ``word`` is short or not plain letters."""
    if len(word) < _SOUND_ALIKE_MIN or not word.isalpha() or not word.isascii():
        return None
    alts = {word[:i] + "[a-z]" + word[i + 1 :] for i in range(len(word))}  # a letter changed
    alts |= {word[:i] + "[a-z]" + word[i:] for i in range(len(word) + 1)}  # a letter added
    alts |= {word[:i] + word[i + 1 :] for i in range(len(word))}  # a letter dropped
    return "(?:" + "|".join(sorted(alts)) + ")"


def _checked_pattern(pattern: str, *, file: str, where: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"pattern {pattern!r} is not a valid regex: {exc}", file=file, key=where
        ) from None
    return pattern
