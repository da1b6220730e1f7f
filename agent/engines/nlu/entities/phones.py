"""Phone numbers, written or spoken digit by digit, in pairs ("twelve thirty four") or with
"double"/"triple"."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from agent.engines.nlu.entities.candidates import _Found
from agent.engines.nlu.entities.numbers import _small_number
from agent.engines.nlu.entities.words import _DIGIT_WORDS, _TENS_EN, _UNITS_EN, _words

_REPEAT = {"double": 2, "triple": 3}


def _phone_runs(words: Sequence[str]) -> list[tuple[str, int, int]]:
    """Runs of spoken or written digits: (digits, first word, end word)."""
    runs: list[tuple[str, int, int]] = []
    i = 0
    while i < len(words):
        digits = ""
        j = i
        while j < len(words):
            w = words[j]
            if re.fullmatch(r"\+?[\d./]+", w) and any(c.isdigit() for c in w):
                digits += re.sub(r"\D", "", w)
                j += 1
            elif w in _REPEAT and j + 1 < len(words) and words[j + 1] in _DIGIT_WORDS:
                digits += _DIGIT_WORDS[words[j + 1]] * _REPEAT[w]
                j += 2
            elif w in _DIGIT_WORDS and (w not in ("oh", "o") or digits):
                digits += _DIGIT_WORDS[w]
                j += 1
            elif w in _TENS_EN or (w in _UNITS_EN and _UNITS_EN[w] >= 10):
                # "five five five twelve thirty four": pairs said as numbers.
                n = _small_number(words, j)
                if n is None or not digits:
                    break
                digits += f"{n[0]:02d}" if n[0] >= 10 else str(n[0])
                j = n[1]
            elif w == "hundred" and digits:
                digits += "00"
                j += 1
            else:
                break
        if j > i and digits:
            runs.append((digits, i, j))
            i = j
        else:
            i += 1
    return runs


def _as_phone(digits: str) -> str | None:
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) in (7, 10) and digits[0] not in "01":
        return digits
    return None


def parse_phone(text: str) -> str | None:
    """A phone number as digits ("five five five one two three four" -> "5551234")."""
    for digits, _first, _end in _phone_runs(_words(text)):
        phone = _as_phone(digits)
        if phone:
            return phone
    return None


def _find_phones(words: Sequence[str], today: date) -> list[_Found]:
    out = []
    for digits, first, end in _phone_runs(words):
        phone = _as_phone(digits)
        if phone:
            out.append(_Found("phone", phone, first, end, 9))
    return out
