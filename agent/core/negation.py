"""Negation scope and subject of a finding in caller speech (English and Spanish).

Pure: text in, answers out. Used by ``agent.core.triage`` so that "no chest pain" raises no flag and
"my son can't breathe" raises one about someone else, and by the entity extractor for the shared
text folding.

The approach is NegEx-like and deliberately conservative, because a missed emergency is worse than
an unnecessary transfer:

- Only words *before* a finding can negate it, within the same clause and at most
  ``NEGATION_WINDOW`` words back. "I can't breathe" is not a negated "breathe": the rule's own
  phrase contains "can't", and the scan starts before the phrase.
- A clause ends at a conjunction ("but", "and", "pero", "y") or at a new subject ("no I have chest
  pain": "I" starts a new clause). "and" ends the scope on purpose: "no fever and chest pain" keeps
  the chest pain (over-triage rather than a miss).
- Pseudo-negations are not negations: "not sure if it's chest pain", "I don't know", "can't stop
  the bleeding", "it won't stop", "no better".
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

NEGATION_WINDOW = 6
"""How many words before a finding a negation cue may stand."""

# Text is folded first (lower case, no accents, no apostrophes), so "can't" is "cant", "sí" is "si".
NEGATION_CUES = frozenset(
    """
    no not never without denies denied deny nor neither dont doesnt didnt isnt arent wasnt
    werent havent hasnt hadnt aint none negative sin niega nunca ni tampoco ningun ninguna
    ninguno nada
    """.split()
)

# "can't", "cannot", "won't" are not cues: they negate abilities ("I can't stand up, my chest
# hurts"), and inability is how emergencies are phrased ("can't breathe", "won't wake up").

# A cue followed by one of these words is not a negation of what follows ("not sure if it's chest
# pain", "I can't stop the bleeding", "no better"). The scan stops there: the finding stands.
PSEUDO_NEGATION_NEXT = frozenset(
    """
    sure certain know think idea stop stopping only just better improving matter tell wake
    waking responding doubt feel feeling seguro segura se para deja mejora
    """.split()
)
# "doubt" is in the list because "no doubt it's chest pain" affirms.

# Words that end a negation's scope: conjunctions and the start of a new clause with its own subject.
SCOPE_BREAKS = frozenset(
    """
    but and however though although except yet so because now then i im ive id ill he hes she
    shes they theyre we were pero y e aunque sino ahora its thats my yo ella mi porque
    """.split()
)

_SPANISH_CUES_BEFORE_HE = frozenset({"no", "nunca", "jamas", "tampoco", "ni"})
_PARTICIPLE_ENDINGS = ("ado", "ido", "ada", "ida", "to", "cho")


def _spanish_perfect(words: list[str], index: int) -> bool:
    """ "no he tenido fiebre": here "he" is the Spanish verb "haber" after a negation, followed by
    a participle, not the English pronoun that starts a new clause ("no, he has a fever")."""
    if words[index] != "he" or index == 0 or words[index - 1] not in _SPANISH_CUES_BEFORE_HE:
        return False
    following = words[index + 1] if index + 1 < len(words) else ""
    return following.endswith(_PARTICIPLE_ENDINGS)


# Relations whose condition a caller reports: "my son", "mi hija".
RELATIONS = frozenset(
    """
    son daughter child kid baby infant newborn toddler boy girl mother mom mum mommy father dad
    daddy husband wife partner boyfriend girlfriend brother sister grandmother grandma
    grandfather grandpa grandson granddaughter aunt uncle niece nephew cousin friend neighbor
    neighbour roommate patient client resident fiance fiancee stepson stepdaughter stepmother
    stepfather hijo hija hijos nino nina bebe madre mama padre papa esposo esposa marido mujer
    hermano hermana abuelo abuela nieto nieta tio tia amigo amiga vecino vecina pareja
    """.split()
)
_POSSESSIVES = frozenset(
    {"my", "our", "his", "her", "their", "the", "mi", "mis", "nuestro", "nuestra", "su"}
)
THIRD_PERSON = frozenset(
    {"he", "hes", "she", "shes", "him", "his", "her", "they", "theyre", "them", "ella", "le"}
)
FIRST_PERSON = frozenset({"i", "im", "ive", "id", "me", "myself", "yo", "tengo", "estoy"})
SUBJECT_WINDOW = 12
"""How many words before a finding the subject is looked for."""


@dataclass(frozen=True)
class Folded:
    """Text folded for matching, with a map back to the original characters.

    ``text`` is lower case, without accents or apostrophes, with every run of other non-alphanumeric
    characters turned into one space and a space at each end, so a phrase can be found as
    ``" chest pain "``. ``origin[i]`` is the index in the original text of ``text[i]``.
    """

    text: str
    origin: tuple[int, ...]
    source: str

    def original(self, start: int, end: int) -> str:
        """The original words behind ``text[start:end]``."""
        while start < end and self.text[start] == " ":
            start += 1
        while end > start and self.text[end - 1] == " ":
            end -= 1
        if start >= end:
            return ""
        return self.source[self.origin[start] : self.origin[end - 1] + 1]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original character offsets of ``text[start:end]`` (spaces at the edges trimmed)."""
        while start < end and self.text[start] == " ":
            start += 1
        while end > start and self.text[end - 1] == " ":
            end -= 1
        if start >= end:
            return (0, 0)
        return (self.origin[start], self.origin[end - 1] + 1)

    def words_before(self, start: int) -> list[str]:
        return self.text[:start].split()


_APOSTROPHES = "'\u2019\u2018`\u00b4"


def fold(text: str) -> Folded:
    out: list[str] = [" "]
    origin: list[int] = [0]
    for i, ch in enumerate(text):
        if ch in _APOSTROPHES:
            continue
        base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        for c in base.lower():
            # ASCII digits only: "²" or "٣" would pass str.isdigit() and break int().
            if c.isalpha() or c in "0123456789:./":
                # ":" "." "/" kept inside numbers so "10:40", "3/4/62", "0.5" survive folding.
                if c in ":./" and not (
                    out[-1] in "0123456789" and i + 1 < len(text) and text[i + 1] in "0123456789"
                ):
                    c = " "
            else:
                c = " "
            if c == " " and out[-1] == " ":
                continue
            out.append(c)
            origin.append(i)
    if out[-1] != " ":
        out.append(" ")
        origin.append(len(text))
    return Folded(text="".join(out), origin=tuple(origin), source=text)


def is_negated(words_before: list[str]) -> bool:
    """Whether a finding preceded by ``words_before`` (folded words, nearest last) is negated."""
    scanned = 0
    for index in range(len(words_before) - 1, -1, -1):
        word = words_before[index]
        if word in SCOPE_BREAKS and not _spanish_perfect(words_before, index):
            return False
        if word in NEGATION_CUES:
            following = words_before[index + 1] if index + 1 < len(words_before) else ""
            if following in PSEUDO_NEGATION_NEXT:
                return False
            return True
        scanned += 1
        if scanned >= NEGATION_WINDOW:
            return False
    return False


def subject_of(words_before: list[str]) -> Literal["self", "other"]:
    """Who a finding is about, from the nearest subject before it: "my son ..." is someone else."""
    for index in range(len(words_before) - 1, max(-1, len(words_before) - 1 - SUBJECT_WINDOW), -1):
        word = words_before[index]
        if word.endswith("s") and word[:-1] in RELATIONS:
            word = word[:-1]  # "my husband's incision" (folded "husbands")
        previous = words_before[index - 1] if index > 0 else ""
        if word in RELATIONS and previous in _POSSESSIVES | {"a", "an", "este", "esta"}:
            return "other"
        if word in RELATIONS and previous in {"year", "month", "week", "old"}:
            # "my 3 year old son" was handled above; "my two year old can't ..." here.
            return "other"
        if word == "old" and previous in {"year", "month", "week", "months", "years", "weeks"}:
            return "other"
        if word in THIRD_PERSON:
            return "other"
        if word in FIRST_PERSON:
            return "self"
    return "self"
