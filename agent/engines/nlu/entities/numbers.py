"""Spoken and written numbers in the forms dates, times and doses are said in (English and
Spanish): small cardinals, days of the month, years."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from agent.engines.nlu.entities.words import _NUM_ES, _ORDINALS_EN, _TENS_EN, _UNITS_EN


def _small_number(words: Sequence[str], i: int) -> tuple[int, int] | None:
    """0-99 from digits or English words ("twenty one", "21"). Returns (value, next index)."""
    if i >= len(words):
        return None
    w = words[i]
    if w.isdigit() and len(w) <= 2:
        return int(w), i + 1
    if w in _TENS_EN:
        if i + 1 < len(words) and words[i + 1] in _UNITS_EN and 1 <= _UNITS_EN[words[i + 1]] <= 9:
            if words[i + 1] not in ("oh", "o"):
                return _TENS_EN[w] + _UNITS_EN[words[i + 1]], i + 2
        return _TENS_EN[w], i + 1
    if w in _UNITS_EN and w not in ("oh", "o"):
        return _UNITS_EN[w], i + 1
    return None


def _spanish_number(words: Sequence[str], i: int) -> tuple[int, int] | None:
    """Spanish cardinal up to 9999 ("mil novecientos sesenta y dos")."""
    total, current, j, seen = 0, 0, i, False
    while j < len(words):
        w = words[j]
        if w == "mil":
            total += (current or 1) * 1000
            current, seen = 0, True
        elif w in _NUM_ES and w != "primero":
            current += _NUM_ES[w]
            seen = True
        elif w == "y" and seen and j + 1 < len(words) and words[j + 1] in _NUM_ES:
            pass
        else:
            break
        j += 1
    if not seen:
        return None
    return total + current, j


def _day_number(words: Sequence[str], i: int) -> tuple[int, int] | None:
    """A day of the month: "14th", "14", "fourteenth", "twenty first", "primero"."""
    if i >= len(words):
        return None
    w = words[i]
    m = re.fullmatch(r"(\d{1,2})(st|nd|rd|th)?", w)
    if m:
        day = int(m.group(1))
        return (day, i + 1) if 1 <= day <= 31 else None
    if w in _ORDINALS_EN:
        return _ORDINALS_EN[w], i + 1
    if w in ("twenty", "thirty") and i + 1 < len(words) and words[i + 1] in _ORDINALS_EN:
        day = _TENS_EN[w] + _ORDINALS_EN[words[i + 1]]
        return (day, i + 2) if day <= 31 else None
    if w == "primero":
        return 1, i + 1
    n = _small_number(words, i)
    if n and 1 <= n[0] <= 31:
        return n
    es = _spanish_number(words, i)
    if es and 1 <= es[0] <= 31:
        return es
    return None


def _year(words: Sequence[str], i: int) -> tuple[int, int, bool] | None:
    """A year: "1962", "62", "nineteen sixty two", "two thousand five", "twenty ten", Spanish.
    Returns (year, next index, whether it had only two digits)."""
    if i >= len(words):
        return None
    w = words[i]
    if re.fullmatch(r"(19|20)\d\d", w):
        return int(w), i + 1, False
    if re.fullmatch(r"\d\d", w):
        return int(w), i + 1, True
    if w in ("nineteen", "eighteen") or w == "twenty":
        century = {"nineteen": 1900, "eighteen": 1800, "twenty": 2000}[w]
        if i + 1 < len(words) and words[i + 1] in ("oh", "o") and i + 2 < len(words):
            unit = _UNITS_EN.get(words[i + 2])
            if unit is not None and 1 <= unit <= 9:
                return century + unit, i + 3, False
        rest = _small_number(words, i + 1)
        if rest and rest[0] >= 10:
            return century + rest[0], rest[1], False
        if w == "twenty" and rest is None:
            return None
    if w == "two" and i + 1 < len(words) and words[i + 1] == "thousand":
        j = i + 2
        if j < len(words) and words[j] == "and":
            j += 1
        rest = _small_number(words, j)
        if rest:
            return 2000 + rest[0], rest[1], False
        return 2000, j, False
    if w == "mil" or w == "dos":
        es = _spanish_number(words, i)
        if es and 1900 <= es[0] <= 2099:
            return es[0], es[1], False
    n = _small_number(words, i)
    if n and n[0] >= 10:
        return n[0], n[1], True
    return None


def _resolve_two_digit_year(yy: int, today: date) -> int:
    """A two-digit birth year is in the past: 62 -> 1962, 05 -> 2005 (in 2026), 30 -> 1930."""
    year = 2000 + yy
    return year if year <= today.year else year - 100
