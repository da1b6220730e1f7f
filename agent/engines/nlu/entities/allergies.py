"""Allergies: what the caller says they must not be given ("allergic to penicillin", "sulfa
breaks me out", "alérgica a las sulfas"), or that they have none ("no known drug allergies").

A drug named after such words is an allergy, not a medication to refill: the finder claims those
words at a higher priority than the medication finder, so ``candidates._scan`` drops the
medication there and keeps it elsewhere in the sentence ("my lisinopril refilled, and I'm allergic
to sulfa" is one of each).

Value: a tuple of substance names, normalised (medications by their generic name from the
lexicon, other allergens by the English name in ``ALLERGENS``), in the order said; or ``"none"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Literal

from agent.engines.nlu.entities.candidates import _Found
from agent.engines.nlu.entities.medications import _medication_at
from agent.engines.nlu.entities.words import _NOT_NAME, _words

ALLERGENS: dict[str, str] = {
    "sulfa": "sulfa", "sulfa drugs": "sulfa", "sulfas": "sulfa", "sulpha": "sulfa",
    "sulfonamides": "sulfa", "sulfa antibiotics": "sulfa", "sulfamidas": "sulfa",
    "penicilina": "penicillin", "penicillins": "penicillin", "amoxicilina": "amoxicillin",
    "codeina": "codeine", "aspirina": "aspirin", "ibuprofeno": "ibuprofen", "morfina": "morphine",
    "nsaids": "NSAIDs", "n s a i d s": "NSAIDs", "antiinflamatorios": "NSAIDs",
    "cephalosporins": "cephalosporins", "antibiotics": "antibiotics", "antibioticos": "antibiotics",
    "latex": "latex", "peanut": "peanuts", "peanuts": "peanuts", "cacahuate": "peanuts",
    "cacahuates": "peanuts", "cacahuetes": "peanuts", "mani": "peanuts", "tree nuts": "tree nuts",
    "nuts": "nuts", "nueces": "nuts", "shellfish": "shellfish", "mariscos": "shellfish",
    "shrimp": "shrimp", "camarones": "shrimp", "fish": "fish", "pescado": "fish", "egg": "eggs",
    "eggs": "eggs", "huevo": "eggs", "huevos": "eggs", "milk": "milk", "leche": "milk",
    "dairy": "dairy", "lactose": "lactose", "soy": "soy", "soya": "soy", "wheat": "wheat",
    "gluten": "gluten", "iodine": "iodine", "yodo": "iodine", "contrast": "contrast dye",
    "contrast dye": "contrast dye", "bee stings": "bee stings", "bee sting": "bee stings",
    "bees": "bee stings", "abejas": "bee stings", "wasps": "wasp stings", "pollen": "pollen",
    "polen": "pollen", "dust": "dust", "polvo": "dust", "mold": "mold", "moho": "mold",
    "cats": "cats", "gatos": "cats", "dogs": "dogs", "perros": "dogs", "adhesive": "adhesive",
    "tape": "adhesive",
}  # fmt: skip
"""Allergens that are not in the medication lexicon (or are said in Spanish): folded -> name."""
_MAX_ALLERGEN_WORDS = max(len(k.split()) for k in ALLERGENS)

# Cue words before the substances, and whether they are about allergy itself ("allergic to
# strawberries" names an allergen even if we do not know the word) or only about a bad experience
# ("a reaction to the new pill" is an allergy only when a known substance follows).
_BEFORE: dict[tuple[str, ...], bool] = {
    **{tuple(cue.split()): True for cue in (
        "allergic to", "allergy to", "allergies to", "allergies include", "allergic reaction to",
        "allergies except", "allergies other than", "allergies besides", "alergico a",
        "alergica a", "alergicos a", "alergicas a", "alergico al", "alergica al", "alergia a",
        "alergia al", "alergias a", "alergias al", "alergias excepto", "alergias menos",
    )},
    # "my allergies are acting up": only a known substance after these.
    **{tuple(cue.split()): False for cue in (
        "allergies are", "allergy is", "alergias son", "alergia es",
        "reaction to", "reactions to", "react to", "reacted to", "reacts to", "cant take",
        "cannot take", "can not take", "couldnt take", "no puedo tomar", "reaccion a",
        "reaccion al",
    )},
}  # fmt: skip
# Cue words after the substances ("penicillin breaks me out", "a sulfa allergy").
_AFTER = tuple(
    tuple(cue.split())
    for cue in (
        "breaks me out", "break me out", "broke me out", "makes me break out",
        "make me break out", "gives me hives", "give me hives", "gave me hives", "allergy",
        "allergies", "me da alergia", "me dan alergia",
    )
)  # fmt: skip
_MAX_CUE_WORDS = max(len(c) for c in [*_BEFORE, *_AFTER])
_DETERMINERS = frozenset("the a an any all my la las el los un una unas unos like".split())
_JOINERS = frozenset("and or y o e plus also".split())
_NEGATORS = frozenset("no not never nunca dont isnt arent".split())
_VAGUE = frozenset(
    "medicine medicines medication medications meds pills pill drugs drug stuff something things "
    "anything nothing it them that this those some kind kinds type types new old nada algo "
    "medicina medicinas medicamento medicamentos".split()
)
"""Words after "allergic to" that name no substance."""

# "no known drug allergies", "not allergic to anything", "no tengo alergias", "NKDA".
_NONE = re.compile(
    r"\b(?:"
    r"(?:no|without|dont have any|do not have any|dont have|do not have|never had any|not any"
    r"|no tengo|no tengo ninguna|ninguna|ningun|sin|no hay)"
    r" (?:known |known drug |drug |medication |medicine |food |other )?(?:allergies|allergy"
    r"|alergias|alergia)\b"
    # "no allergy medicine helps" is about the medicine, "no allergy to penicillin" about one.
    r"(?! (?:medicines?|medications?|meds|pills?|shots?|tests?|testing|symptoms|season|doctor"
    r"|specialist|appointment|spray|medicina|medicinas|pastillas|to|a|al)\b)"
    r"|(?:allergies|alergias) (?:none|no|ninguna)"
    r"|n ?k ?d ?a"
    r"|not allergic to (?:anything|any medications?|any medicines?|any drugs?|nothing|any)"
    # "no soy alérgico a la penicilina" is not "no soy alérgico".
    r"|no soy alergic[oa]s? a nada|no soy alergic[oa]s?(?! al?\b)"
    r"|no tengo alergia a nada|no tengo alergias? a nada"
    r")\b"
)
# Said only in answer to the allergies question: a bare "none" means nothing elsewhere.
_NONE_ANSWERS = frozenset(
    {
        "none", "no", "nope", "nah", "nothing", "no none", "nope none", "none at all",
        "none that i know of", "not that i know of", "no not that i know of",
        "nope not that i know",
        "none that im aware of", "not that im aware of", "nada", "ninguna", "ninguno", "no ninguna",
        "no nada", "ninguna que yo sepa", "no que yo sepa", "no tengo", "no i dont", "i dont",
        "no i dont have any", "i dont have any", "none i know of",
    }
)  # fmt: skip

AllergyValue = tuple[str, ...] | Literal["none"]


def _substance_at(words: Sequence[str], i: int) -> tuple[str, int] | None:
    """The substance named at ``words[i]``: ``(name, end)``."""
    for n in range(min(_MAX_ALLERGEN_WORDS, len(words) - i), 0, -1):
        key = " ".join(words[i : i + n])
        if key in ALLERGENS:
            return ALLERGENS[key], i + n
    hit = _medication_at(words, i)
    if hit is not None:
        return hit
    return None


def _heard_substance_at(words: Sequence[str], i: int) -> tuple[str, int] | None:
    """After "allergic to", an unknown word is still the allergen ("strawberries"), as heard."""
    if i < len(words) and words[i].isalpha() and len(words[i]) > 2:
        if words[i] not in _NOT_NAME and words[i] not in _VAGUE and words[i] not in _JOINERS:
            return words[i], i + 1
    return None


def _substances_from(words: Sequence[str], i: int, strong: bool) -> tuple[list[str], int]:
    """The substances listed from ``words[i]`` on ("the penicillin, sulfa and latex")."""
    found: list[str] = []
    j = i
    while True:
        k = j
        while k < len(words) and words[k] in _DETERMINERS:
            k += 1
        hit = _substance_at(words, k) or (_heard_substance_at(words, k) if strong else None)
        if hit is None:
            break
        if hit[0] not in found:
            found.append(hit[0])
        j = hit[1]
        if j < len(words) and words[j] in _JOINERS:
            nxt = j + 1
            while nxt < len(words) and words[nxt] in _JOINERS:
                nxt += 1  # "and also"
            k = nxt
            while k < len(words) and words[k] in _DETERMINERS:
                k += 1
            if _substance_at(words, k) or (strong and _heard_substance_at(words, k)):
                j = nxt
                continue
        break
    return found, j


def _substances_before(words: Sequence[str], end: int) -> tuple[list[str], int]:
    """The substances listed just before ``words[end]`` ("penicillin and sulfa break me out")."""
    found: list[str] = []
    first = end
    while True:
        hit = None
        for start in range(max(0, first - _MAX_ALLERGEN_WORDS - 2), first):
            h = _substance_at(words, start)
            if h is not None and h[1] == first:
                hit = (start, h[0])
                break
        if hit is None:
            break
        first = hit[0]
        found.insert(0, hit[1])
        if first >= 2 and words[first - 1] in _JOINERS:
            # Only go on past "and" when a substance ends there.
            if any(
                (h := _substance_at(words, s)) is not None and h[1] == first - 1
                for s in range(max(0, first - 1 - _MAX_ALLERGEN_WORDS - 2), first - 1)
            ):
                first -= 1
                continue
        break
    return list(dict.fromkeys(found)), first


def _negated(words: Sequence[str], i: int) -> bool:
    """ "not allergic to penicillin", "no reaction to the new pill": no allergy said."""
    return any(w in _NEGATORS for w in words[max(0, i - 2) : i])


def _find_allergies(words: Sequence[str], today: date) -> list[_Found]:
    out: list[_Found] = []
    for i in range(len(words)):
        for n in range(min(_MAX_CUE_WORDS, len(words) - i), 0, -1):
            cue = tuple(words[i : i + n])
            # "no allergies except penicillin": the "no" is not about penicillin.
            excepting = cue[-1] in ("except", "than", "besides", "excepto", "menos")
            if cue in _BEFORE and (excepting or not _negated(words, i)):
                found, end = _substances_from(words, i + n, _BEFORE[cue])
                if found:
                    out.append(_Found("allergy", tuple(found), i, end, 7))
                break
            if cue in _AFTER:
                found, first = _substances_before(words, i)
                if found and not _negated(words, first):
                    out.append(_Found("allergy", tuple(found), first, i + n, 7))
                break
    text = " ".join(words)
    starts = _word_starts(words)
    for m in _NONE.finditer(text):
        if m.start() in starts:  # not from inside a word ("3/no" cannot be folded, but be sure)
            first, last = starts.index(m.start()), _word_at(starts, m.end() - 1)
            out.append(_Found("allergy", "none", first, last + 1, 7))
    return out


def _word_starts(words: Sequence[str]) -> list[int]:
    starts, offset = [], 0
    for w in words:
        starts.append(offset)
        offset += len(w) + 1
    return starts


def _word_at(starts: list[int], offset: int) -> int:
    return max(i for i, s in enumerate(starts) if s <= offset)


def parse_allergies(text: str) -> AllergyValue | None:
    """The answer to "Do you have any allergies?": the substances named (each once, in order,
    with or without "allergic to": "penicillin and latex"), or ``"none"`` for no allergies,
    including the answers that only mean that after this question ("none that I know of",
    "nope"). ``None`` when the answer says neither ("yes", "I'm not sure")."""
    words = _words(text)
    found: list[str] = []
    said_none = False
    for f in _find_allergies(words, date.min):
        if f.value == "none":
            said_none = True
        elif isinstance(f.value, tuple):
            found.extend(s for s in f.value if s not in found)
    if not found:
        i = 0
        while i < len(words):
            hit = _substance_at(words, i)
            if hit is None:
                i += 1
                continue
            # "I'm not allergic to penicillin": the cue was negated, so no allergy was found.
            if not any(w in _NEGATORS for w in words[max(0, i - 4) : i]) and hit[0] not in found:
                found.append(hit[0])
            i = hit[1]
    if found:
        return tuple(found)
    if said_none or " ".join(words) in _NONE_ANSWERS:
        return "none"
    return None
