"""Medication names from the lexicon (generic and brand), matched exactly or, for names ASR split
into ordinary words, by spelling and sound."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from agent.core.negation import fold
from agent.engines.nlu.entities.candidates import _Found
from agent.engines.nlu.entities.words import _NOT_NAME, _tokens

LEXICON_DIR = Path(__file__).resolve().parents[1] / "lexicon"


def _load_medications() -> dict[str, str]:
    """Lexicon: every name (generic and brand, folded) -> generic name."""
    names: dict[str, str] = {}
    path = LEXICON_DIR / "medications.txt"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        generic, sep, brands = line.partition("|")
        if not sep:
            raise ValueError(f"{path}:{number}: expected 'generic | brand, brand', got {line!r}")
        canonical = " ".join(fold(generic).text.split())
        for name in [generic, *brands.split(",")]:
            key = " ".join(fold(name).text.split())
            if key:
                if key in names and names[key] != canonical:
                    raise ValueError(f"{path}:{number}: {key!r} already maps to {names[key]!r}")
                names[key] = canonical
    return names


MEDICATIONS: dict[str, str] = _load_medications()


def _load_common_words() -> frozenset[str]:
    path = LEXICON_DIR / "common_words.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and not w.startswith("#"))


COMMON_WORDS: frozenset[str] = _load_common_words()
"""Ordinary words: a fuzzy medication match needs at least one word that is not one of these."""
_MAX_MED_WORDS = max(len(k.split()) for k in MEDICATIONS)
_MEDICATION_LAST_WORDS = frozenset(k.split()[-1] for k in MEDICATIONS)
_FUZZY_MIN_LETTERS = 6
FUZZY_THRESHOLD = 0.8
"""Mean of the spelling and consonant-skeleton similarities a fuzzy match must reach."""


def _skeleton(word: str) -> str:
    """Consonants with doubles collapsed and a few sound-alike spellings merged: what ASR keeps."""
    w = word.replace("ph", "f").replace("ck", "k").replace("qu", "kw").replace("x", "ks")
    w = re.sub(r"[aeiouy]", "", w[1:]) if w else w
    w = (word[:1] if word[:1] not in "aeiouy" else "") + w
    w = w.replace("z", "s").replace("c", "k")
    return re.sub(r"(.)\1+", r"\1", w)


_FUZZY_INDEX: list[tuple[str, str, str]] = [
    (key.replace(" ", ""), _skeleton(key.replace(" ", "")), generic)
    for key, generic in MEDICATIONS.items()
    if len(key.replace(" ", "")) >= _FUZZY_MIN_LETTERS
]


def _fuzzy_medication(window: str) -> tuple[str, float] | None:
    if len(window) < _FUZZY_MIN_LETTERS:
        return None
    skel = _skeleton(window)
    best: tuple[str, float] | None = None
    for name, name_skel, generic in _FUZZY_INDEX:
        if abs(len(name) - len(window)) > max(3, len(name) // 3) or name[0] != window[0]:
            continue
        spelling = difflib.SequenceMatcher(None, window, name).ratio()
        if spelling < 0.6:
            continue
        sound = difflib.SequenceMatcher(None, skel, name_skel).ratio()
        score = (spelling + sound) / 2
        if score >= FUZZY_THRESHOLD and (best is None or score > best[1]):
            best = (generic, score)
    return best


def _medication_at(words: Sequence[str], i: int) -> tuple[str, int] | None:
    for n in range(min(_MAX_MED_WORDS, len(words) - i), 0, -1):
        key = " ".join(words[i : i + n])
        if key in MEDICATIONS:
            return MEDICATIONS[key], i + n
    # Fuzzy: ASR splits an unfamiliar drug name into ordinary words ("listen a pril").
    best: tuple[str, int, float] | None = None
    for n in range(1, 4):
        if i + n > len(words):
            break
        chunk = words[i : i + n]
        if any(not w.isalpha() for w in chunk) or all(w in COMMON_WORDS for w in chunk):
            continue  # "normal" is not Neoral: ordinary words alone never make a drug
        if chunk[0] in _NOT_NAME or chunk[-1] in _NOT_NAME:
            continue
        hit = _fuzzy_medication("".join(chunk))
        if hit and (best is None or hit[1] > best[2]):
            best = (hit[0], i + n, hit[1])
    return (best[0], best[1]) if best else None


def match_medication(text: str) -> tuple[str, str] | None:
    """The first medication named: ``(generic name, words as heard)``."""
    folded = fold(text)
    toks = _tokens(folded)
    words = [t.word for t in toks]
    for i in range(len(words)):
        hit = _medication_at(words, i)
        if hit:
            return hit[0], folded.original(toks[i].start, toks[hit[1] - 1].end)
    return None


def _find_medications(words: Sequence[str], today: date) -> list[_Found]:
    out = []
    i = 0
    while i < len(words):
        hit = _medication_at(words, i)
        if hit:
            out.append(_Found("medication", hit[0], i, hit[1], 6))
            i = hit[1]
        else:
            i += 1
    return out
