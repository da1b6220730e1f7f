"""Dates of birth, and full calendar dates with a year (US order: month before day)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime

from agent.engines.nlu.entities.numbers import _day_number, _resolve_two_digit_year, _year
from agent.engines.nlu.entities.words import _MONTHS, _words


def _valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _date_with_year(
    words: Sequence[str], i: int, today: date, *, spoken_year_ok: bool
) -> tuple[date, int] | None:
    """A complete calendar date starting at ``i``. Month before day for numeric forms (US)."""
    w = words[i]
    # 3/4/62, 03/04/1962, 3.4.62
    m = re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{2}|\d{4})", w)
    if m:
        month, day_of_month, y = int(m.group(1)), int(m.group(2)), m.group(3)
        full_year = _resolve_two_digit_year(int(y), today) if len(y) == 2 else int(y)
        d = _valid_date(full_year, month, day_of_month)
        return (d, i + 1) if d else None
    # 03041962
    if re.fullmatch(r"\d{8}", w):
        d = _valid_date(int(w[4:]), int(w[:2]), int(w[2:4]))
        return (d, i + 1) if d else None
    # 1962 03 04 (ISO, folded)
    if re.fullmatch(r"(19|20)\d\d", w) and i + 2 < len(words):
        if words[i + 1].isdigit() and words[i + 2].isdigit():
            d = _valid_date(int(w), int(words[i + 1]), int(words[i + 2]))
            if d:
                return d, i + 3
    # 04 03 1962 / 4 3 62
    if w.isdigit() and len(w) <= 2 and i + 2 < len(words) and words[i + 1].isdigit():
        y = words[i + 2]
        if len(words[i + 1]) <= 2 and y.isdigit() and len(y) in (2, 4):
            full_year = _resolve_two_digit_year(int(y), today) if len(y) == 2 else int(y)
            d = _valid_date(full_year, int(w), int(words[i + 1]))
            if d:
                return d, i + 3
    # march 4th 1962 / march fourth nineteen sixty two
    if w in _MONTHS:
        named = _day_number(words, i + 1)
        if named:
            j = named[1]
            if j < len(words) and words[j] in ("of", "de", "del"):
                j += 1
            said = _year(words, j)
            if said and (not said[2] or spoken_year_ok or words[j].isdigit()):
                y = _resolve_two_digit_year(said[0], today) if said[2] else said[0]
                d = _valid_date(y, _MONTHS[w], named[0])
                if d:
                    return d, said[1]
    # the fourth of march nineteen sixty two / 4 de marzo de 1962
    j = i + 1 if w in ("the", "el") else i
    ordinal = _day_number(words, j)
    if ordinal:
        k = ordinal[1]
        if k < len(words) and words[k] in ("of", "de"):
            k += 1
        if k < len(words) and words[k] in _MONTHS:
            month = _MONTHS[words[k]]
            k += 1
            if k < len(words) and words[k] in ("of", "de", "del"):
                k += 1
            said = _year(words, k)
            if said:
                y = _resolve_two_digit_year(said[0], today) if said[2] else said[0]
                d = _valid_date(y, month, ordinal[0])
                if d:
                    return d, said[1]
    return None


def _plausible_birth(d: date, today: date) -> bool:
    return d <= today and d.year >= today.year - 120


def parse_date_of_birth(text: str, now: datetime) -> date | None:
    """The date of birth in an answer to "what is your date of birth?", or ``None``."""
    today = now.date()
    words = _words(text)
    for i in range(len(words)):
        found = _date_with_year(words, i, today, spoken_year_ok=True)
        if found and _plausible_birth(found[0], today):
            return found[0]
    return None
