"""Entities with normalised values, from lower-case, unpunctuated, disfluent ASR text.

Pure rules over folded words (``agent.core.negation.fold``): no model, no I/O after the lexicon is
read at import, no clock (the call's ``now`` and the practice time zone are passed in). spaCy's
Matcher was not needed: the grammar of dates, phones and doses here is small, and plain Python keeps
every rule testable and fast (well under a millisecond per utterance for most inputs).

``extract_entities`` finds everything in one utterance. The focused parsers (``parse_yes_no``,
``parse_date_of_birth``, ``parse_person_name``, ``parse_phone``, ``parse_datetime_preference``,
``match_medication``) are for turns where the dialog asked a specific question and so may accept
forms that would be too ambiguous in free speech ("m a r y", "sixty two").

Values:
    date         ISO date ``"2026-12-01"``            date_range  ``{"start": ISO, "end": ISO}``
    time         ``"15:00"``                           part_of_day ``{"part", "start", "end"}``
    dob          ISO date                              phone       digits (10 for US numbers)
    person       ``"Mary O'Brien"``                    medication  generic name (``lisinopril``)
    dose         ``{"amount": 20.0, "unit": "mg"}``    pharmacy    ``{"chain", "location"}``
    provider     ``Provider.id``                       yes_no      ``True`` / ``False``

US conventions: month before day in numeric dates; two-digit birth years are in the past.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.config import Provider
from agent.core.negation import Folded, fold
from agent.core.understanding import Entity

LEXICON_DIR = Path(__file__).resolve().parent / "lexicon"

# --------------------------------------------------------------------------------------------------
# Words

_UNITS_EN = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS_EN = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_ORDINALS_EN = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_NUM_ES = {
    "cero": 0, "uno": 1, "un": 1, "una": 1, "primero": 1, "dos": 2, "tres": 3, "cuatro": 4,
    "cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12,
    "trece": 13, "catorce": 14, "quince": 15, "dieciseis": 16, "diecisiete": 17, "dieciocho": 18,
    "diecinueve": 19, "veinte": 20, "veintiuno": 21, "veintidos": 22, "veintitres": 23,
    "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26, "veintisiete": 27, "veintiocho": 28,
    "veintinueve": 29, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60,
    "setenta": 70, "ochenta": 80, "noventa": 90, "cien": 100, "ciento": 100, "doscientos": 200,
    "trescientos": 300, "cuatrocientos": 400, "quinientos": 500, "seiscientos": 600,
    "setecientos": 700, "ochocientos": 800, "novecientos": 900,
}  # fmt: skip
_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12,
    "dec": 12, "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
}  # fmt: skip
# "may", "mar" and "jun" are also ordinary words; a month needs a day number next to it.
_WEEKDAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tues": 1, "tue": 1, "wednesday": 2, "wed": 2,
    "thursday": 3, "thurs": 3, "thu": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5,
    "sunday": 6, "sun": 6, "mondays": 0, "tuesdays": 1, "wednesdays": 2, "thursdays": 3,
    "fridays": 4, "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4, "sabado": 5,
    "domingo": 6,
}  # fmt: skip
# Short forms that are ordinary words too ("sat", "sun", "wed") only count after "on"/"this"/"next".
_WEEKDAY_SHORT = frozenset({"mon", "tue", "tues", "wed", "thu", "thurs", "fri", "sat", "sun"})

PARTS_OF_DAY: dict[str, tuple[str, str]] = {
    "morning": ("08:00", "12:00"),
    "afternoon": ("12:00", "17:00"),
    "evening": ("17:00", "20:00"),
    "lunchtime": ("11:30", "13:30"),
    "night": ("18:00", "21:00"),
    "early morning": ("07:00", "09:00"),
    "late morning": ("10:00", "12:00"),
    "early afternoon": ("12:00", "14:00"),
    "late afternoon": ("15:00", "17:00"),
}
_PART_WORDS = {
    "morning": "morning", "mornings": "morning", "am": "morning", "afternoon": "afternoon",
    "afternoons": "afternoon", "pm": "afternoon", "evening": "evening", "evenings": "evening",
    "lunch": "lunchtime", "lunchtime": "lunchtime", "night": "night", "tonight": "night",
    "tarde": "afternoon", "noche": "night",
}  # fmt: skip

# Words that are never part of a name (function words and the vocabulary of a call).
_NOT_NAME = frozenset(
    """a an the and or but if so to of in on at for from with by about as is are was were be been
    am im i me my mine you your he she it its we they them his her our their this that these those
    here there what when where who why how yes no not yeah yep nope okay ok please thanks thank hi
    hello hey um uh er ah oh well just calling call called speaking need needs want wants wanted
    would like could can cant will have has had having do does did get got make made schedule
    appointment appointments refill prescription doctor dr nurse office today tomorrow morning
    afternoon evening week next this last patient son daughter mother father wife husband baby
    child calling phone number pharmacy medication medicine pain help sick feel feeling going
    trying try looking check up about again also still some any all one two three four five six
    seven eight nine ten sorry sure right wrong correct fine good bad new old see said say saying
    name names called llamo llama soy mi es el la los las de del y o que por para con en un una
    se me le lo su really very bad terrible great awful urgent important serious crazy weird
    strange kind too quite pretty actually just born birth date almost nearly completely totally
    running out low worried concerned afraid scared due ready done""".split()
)
_FILLERS = frozenset(
    {"um", "uh", "er", "erm", "ah", "oh", "hmm", "mm", "like", "so", "well", "okay", "ok"}
)


@dataclass(frozen=True)
class _Tok:
    word: str
    start: int
    """Offsets in the folded text."""
    end: int


# Hesitations that ASR writes out and that would otherwise split "next uh tuesday". Not "oh" (a
# spoken zero) nor "like"/"so" (they can carry meaning).
_HESITATIONS = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "ah", "hmm", "mm", "eh"})


def _tokens(folded: Folded) -> list[_Tok]:
    return [
        _Tok(m.group(), m.start(), m.end())
        for m in re.finditer(r"\S+", folded.text)
        if m.group() not in _HESITATIONS
    ]


def _words(text: str) -> list[str]:
    return [w for w in fold(text).text.split() if w not in _HESITATIONS]


@dataclass(frozen=True)
class _Found:
    label: str
    value: object
    first: int
    """Token indices, end exclusive."""
    last: int
    priority: int


# --------------------------------------------------------------------------------------------------
# Numbers


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


# --------------------------------------------------------------------------------------------------
# Dates of birth and full dates


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


# --------------------------------------------------------------------------------------------------
# Appointment dates and times


_Date = date
_Time = time


@dataclass(frozen=True)
class DateTimePreference:
    """When a caller would like to come: any of a day (or range of days), a time, a part of day."""

    date: _Date | None = None
    date_end: _Date | None = None
    """Set for a range ("next week"); ``date`` is then its first day."""
    time: _Time | None = None
    part_of_day: str | None = None
    """``morning``, ``afternoon``…; its hours are in ``PARTS_OF_DAY``."""

    @property
    def window(self) -> tuple[_Time, _Time] | None:
        if self.part_of_day is None:
            return None
        start, end = PARTS_OF_DAY[self.part_of_day]
        return _Time.fromisoformat(start), _Time.fromisoformat(end)


def _next_weekday(today: date, weekday: int, *, skip_today: bool) -> date:
    ahead = (weekday - today.weekday()) % 7
    if ahead == 0 and skip_today:
        ahead = 7
    return today + timedelta(days=ahead)


def _next_day_of_month(today: date, day: int) -> date | None:
    """The first date on or after today whose day of the month is ``day``."""
    year, month = today.year, today.month
    for _ in range(13):
        d = _valid_date(year, month, day)
        if d and d >= today:
            return d
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return None


def _date_at(words: Sequence[str], i: int, today: date) -> tuple[_Found, ...]:
    """Date expressions starting at word ``i`` (may return a date and a part of day)."""
    w = words[i]
    prev = words[i - 1] if i > 0 else ""
    nxt = words[i + 1] if i + 1 < len(words) else ""
    d: date | None

    def found(value: object, end: int, label: str = "date") -> tuple[_Found, ...]:
        return (_Found(label, value, i, end, 3),)

    if w == "today" or w == "hoy":
        return found(today.isoformat(), i + 1)
    if w == "tonight":
        return (
            _Found("date", today.isoformat(), i, i + 1, 3),
            _Found("part_of_day", _part("night"), i, i + 1, 3),
        )
    if w == "day" and nxt == "after" and i + 2 < len(words) and words[i + 2] == "tomorrow":
        return found((today + timedelta(days=2)).isoformat(), i + 3)
    if w == "pasado" and nxt == "manana":
        return found((today + timedelta(days=2)).isoformat(), i + 2)
    if w == "tomorrow" or (w == "manana" and prev not in ("la", "por", "de", "en")):
        return found((today + timedelta(days=1)).isoformat(), i + 1)
    # in two weeks / in 3 days / a week from today / en dos semanas / dentro de dos semanas
    if w in ("in", "en") or (w == "dentro" and nxt == "de"):
        j = i + 2 if w == "dentro" else i + 1
        count: tuple[int, int] | None
        if j < len(words) and words[j] in ("a", "one", "una", "un"):
            count = (1, j + 1)
        else:
            count = _small_number(words, j) or _spanish_number(words, j)
        if count and count[1] < len(words):
            unit = words[count[1]]
            days = {"day": 1, "days": 1, "dias": 1, "dia": 1, "week": 7, "weeks": 7, "semana": 7,
                    "semanas": 7}.get(unit)  # fmt: skip
            if days and 0 < count[0] <= 60:
                return found((today + timedelta(days=days * count[0])).isoformat(), count[1] + 1)
    if (
        w in ("a", "one")
        and nxt == "week"
        and words[i + 2 : i + 4] in (["from", "today"], ["from", "now"])
    ):
        return found((today + timedelta(days=7)).isoformat(), i + 4)
    # next week / this week / la semana que viene / la proxima semana
    if (w in ("next", "this") and nxt == "week") or (
        w == "semana" and words[i + 1 : i + 3] == ["que", "viene"]
    ):
        monday = today - timedelta(days=today.weekday())
        first_day = monday + timedelta(days=7) if w != "this" else today
        last_day = (monday + timedelta(days=7 if w != "this" else 0)) + timedelta(days=4)
        if w == "this" and last_day < first_day:
            return ()
        span = i + 3 if w == "semana" else i + 2
        return found(
            {"start": first_day.isoformat(), "end": last_day.isoformat()}, span, "date_range"
        )
    if w in ("proxima", "siguiente") and nxt == "semana":
        monday = today - timedelta(days=today.weekday()) + timedelta(days=7)
        value = {"start": monday.isoformat(), "end": (monday + timedelta(days=4)).isoformat()}
        return found(value, i + 2, "date_range")
    # (this|next|on|el|el proximo) weekday [the 3rd]
    if w in _WEEKDAYS and (w not in _WEEKDAY_SHORT or prev in ("on", "this", "next", "coming")):
        weekday = _WEEKDAYS[w]
        skip_today = prev in ("next", "coming", "proximo", "siguiente")
        d = _next_weekday(today, weekday, skip_today=skip_today)
        end = i + 1
        j = i + 1 + (1 if nxt in ("the", "el") else 0)
        if j < len(words) and words[j] in _MONTHS:
            j += 1  # "monday december 3rd"
        said_day = _day_number(words, j) if j > i + 1 or nxt[:1].isdigit() else None
        if said_day and not (j < len(words) and _is_time_word_after(words, said_day[1])):
            d2 = _weekday_and_day(today, weekday, said_day[0])
            if d2:
                d, end = d2, said_day[1]
        if prev in ("next", "this", "coming", "on", "proximo", "siguiente", "el", "este"):
            return (_Found("date", d.isoformat(), i - 1, end, 3),)
        return found(d.isoformat(), end)
    # december 14th [2026] / the 14th of december / 14 de diciembre
    if w in _MONTHS and (day := _day_number(words, i + 1)):
        d = _month_day(today, _MONTHS[w], day[0])
        if d:
            return found(d.isoformat(), day[1])
    if w in ("the", "el") and (day := _day_number(words, i + 1)):
        k = day[1]
        if (
            k < len(words)
            and words[k] in ("of", "de")
            and k + 1 < len(words)
            and words[k + 1] in _MONTHS
        ):
            d = _month_day(today, _MONTHS[words[k + 1]], day[0])
            return found(d.isoformat(), k + 2) if d else ()
        if w == "the" and not re.fullmatch(r"\d{1,2}(st|nd|rd|th)|[a-z]+", words[i + 1]):
            return ()  # "the 14" without "th" could be anything
        if w == "the" and words[i + 1] in _UNITS_EN:
            return ()  # "the two of us"
        if k < len(words) and words[k] in ("day", "days", "pills", "minutes", "hour", "hours"):
            return ()
        d = _next_day_of_month(today, day[0])
        return found(d.isoformat(), k) if d else ()
    if (day := _day_number(words, i)) and words[i][:1].isdigit():
        k = day[1]
        if k < len(words) and words[k] == "de" and k + 1 < len(words) and words[k + 1] in _MONTHS:
            d = _month_day(today, _MONTHS[words[k + 1]], day[0])
            return found(d.isoformat(), k + 2) if d else ()
    # 12/14 (no year)
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})", w)
    if m:
        d = _month_day(today, int(m.group(1)), int(m.group(2)))
        return found(d.isoformat(), i + 1) if d else ()
    return ()


def _is_time_word_after(words: Sequence[str], j: int) -> bool:
    return j < len(words) and words[j] in ("oclock", "am", "pm")


def _weekday_and_day(today: date, weekday: int, day: int) -> date | None:
    """ "monday the 3rd": the next such date within two months, else the 3rd itself."""
    for offset in range(0, 62):
        d = today + timedelta(days=offset)
        if d.day == day and d.weekday() == weekday:
            return d
    return _next_day_of_month(today, day)


def _month_day(today: date, month: int, day: int) -> date | None:
    """A month and day without a year: this year's, or next year's once it has passed."""
    d = _valid_date(today.year, month, day)
    if d and d < today:
        d = _valid_date(today.year + 1, month, day)
    return d


def _part(name: str) -> dict[str, str]:
    start, end = PARTS_OF_DAY[name]
    return {"part": name, "start": start, "end": end}


def _part_at(words: Sequence[str], i: int) -> _Found | None:
    w = words[i]
    prev = words[i - 1] if i > 0 else ""
    if w in ("early", "late") and i + 1 < len(words) and words[i + 1] in ("morning", "afternoon"):
        return _Found("part_of_day", _part(f"{w} {words[i + 1]}"), i, i + 2, 2)
    if w == "first" and words[i + 1 : i + 3] == ["thing", "in"]:
        return _Found("part_of_day", _part("early morning"), i, i + 2, 2)
    if w == "manana" and prev in ("la", "por", "de", "en"):
        return _Found("part_of_day", _part("morning"), i, i + 1, 2)
    if w in ("am", "pm") and prev[:1].isdigit() or w in ("am", "pm") and prev in _UNITS_EN:
        return None  # part of a clock time
    if w in _PART_WORDS and not (w == "night" and prev in ("last", "at")) and w not in ("am", "pm"):
        return _Found("part_of_day", _part(_PART_WORDS[w]), i, i + 1, 2)
    return None


_TIME_CUES = frozenset(
    {"at", "around", "about", "by", "after", "before", "las", "la", "till", "until"}
)


def _clock_hour(hour: int, meridiem: str | None) -> int:
    if meridiem in ("am", "manana") and hour == 12:
        return 0
    if meridiem in ("pm", "tarde", "noche") and hour < 12:
        return hour + 12
    if meridiem is None and 1 <= hour <= 6:
        # A practice's day: "at 3" is 15:00, "at 9" is 09:00.
        return hour + 12
    return hour


def _time_at(words: Sequence[str], i: int) -> _Found | None:
    w = words[i]
    prev = words[i - 1] if i > 0 else ""

    def meridiem_after(j: int) -> tuple[str | None, int]:
        if j < len(words) and words[j] in ("am", "pm"):
            return words[j], j + 1
        if words[j : j + 2] in (["a", "m"], ["p", "m"]):
            return words[j] + "m", j + 2
        if words[j : j + 3] in (["in", "the", "morning"], ["de", "la", "manana"]):
            return "am", j + 3
        if words[j : j + 3] in (["in", "the", "afternoon"], ["in", "the", "evening"]):
            return "pm", j + 3
        if words[j : j + 3] in (["de", "la", "tarde"], ["de", "la", "noche"]):
            return "pm", j + 3
        return None, j

    def out(hour: int, minute: int, end: int, meridiem: str | None) -> _Found | None:
        if not (0 <= minute <= 59 and 0 <= hour <= 12):
            return None
        h = _clock_hour(hour, meridiem)
        return _Found("time", f"{h:02d}:{minute:02d}", i, end, 4)

    if w in ("noon", "midday", "mediodia"):
        return _Found("time", "12:00", i, i + 1, 4)
    if w in ("midnight", "medianoche"):
        return _Found("time", "00:00", i, i + 1, 4)
    # 10:40 / 10:40am
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(am|pm)?", w)
    if m:
        mer, end = (m.group(3), i + 1) if m.group(3) else meridiem_after(i + 1)
        return out(int(m.group(1)), int(m.group(2)), end, mer)
    m = re.fullmatch(r"(\d{1,2})(am|pm)", w)
    if m:
        return out(int(m.group(1)), 0, i + 1, m.group(2))
    # half past two / quarter to four / quarter past ten
    if w in ("half", "quarter") and i + 2 < len(words) and words[i + 1] in ("past", "to", "after"):
        hour = _small_number(words, i + 2)
        if hour and 1 <= hour[0] <= 12:
            minute = 30 if w == "half" else 15
            h = hour[0]
            if words[i + 1] == "to":
                h, minute = (h - 1) or 12, 60 - minute
            mer, end = meridiem_after(hour[1])
            return out(h, minute, end, mer)
    hour = _small_number(words, i) if not words[i].isdigit() or len(words[i]) <= 2 else None
    if hour is None and prev == "las":
        hour = _spanish_number(words, i)
    if hour is None or not 1 <= hour[0] <= 12:
        return None
    j = hour[1]
    # ten forty / two oh five / three thirty / ten oclock / tres y media
    if j < len(words) and words[j] == "oclock":
        mer, end = meridiem_after(j + 1)
        return out(hour[0], 0, end, mer)
    if words[j : j + 2] == ["y", "media"]:
        mer, end = meridiem_after(j + 2)
        return out(hour[0], 30, end, mer)
    if not words[i].isdigit() and j < len(words):
        if words[j] in ("oh", "o") and j + 1 < len(words) and words[j + 1] in _UNITS_EN:
            minute = _UNITS_EN[words[j + 1]]
            if 1 <= minute <= 9:
                mer, end = meridiem_after(j + 2)
                return out(hour[0], minute, end, mer)
        if words[j] in _TENS_EN or words[j] in ("ten", "eleven", "twelve", "thirteen", "fourteen",
                                                "fifteen", "sixteen", "seventeen", "eighteen",
                                                "nineteen"):  # fmt: skip
            said = _small_number(words, j)
            if (
                said
                and 10 <= said[0] <= 59
                and not (said[1] < len(words) and words[said[1]] in _UNITS_EN)
            ):
                mer, end = meridiem_after(said[1])
                return out(hour[0], said[0], end, mer)
    mer, end = meridiem_after(j)
    if mer is not None and end > j:
        return out(hour[0], 0, end, mer)
    if prev in _TIME_CUES and (w != "one" or prev != "about"):
        return out(hour[0], 0, j, None)
    return None


def parse_datetime_preference(text: str, now: datetime, tz: str) -> DateTimePreference | None:
    """A day and/or time of day the caller prefers ("next tuesday morning", "tomorrow at 3")."""
    found = _scan(_words(text), _local_today(now, tz), [_find_dates, _find_times])
    by_label = {f.label: f.value for f in found}
    d = by_label.get("date")
    rng = by_label.get("date_range")
    t = by_label.get("time")
    part = by_label.get("part_of_day")
    if d is None and rng is None and t is None and part is None:
        return None
    start: date | None = None
    end: date | None = None
    if isinstance(d, str):
        start = date.fromisoformat(d)
    elif isinstance(rng, dict):
        start, end = date.fromisoformat(rng["start"]), date.fromisoformat(rng["end"])
    return DateTimePreference(
        date=start,
        date_end=end,
        time=time.fromisoformat(t) if isinstance(t, str) else None,
        part_of_day=part["part"] if isinstance(part, dict) else None,
    )


def _local_today(now: datetime, tz: str) -> date:
    """The practice's calendar day at the moment of the call."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (the call's time with its zone)")
    return now.astimezone(ZoneInfo(tz)).date()


# --------------------------------------------------------------------------------------------------
# Phone numbers

_DIGIT_WORDS = {**{k: str(v) for k, v in _UNITS_EN.items() if v <= 9}}
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


# --------------------------------------------------------------------------------------------------
# Yes / no

_YES_PHRASES = (
    "yes", "yeah", "yea", "yep", "yup", "ya", "sure", "correct", "right", "thats right",
    "that is right", "thats correct", "that is correct", "uh huh", "mhm", "affirmative",
    "of course", "absolutely", "definitely", "please do", "go ahead", "okay", "ok", "alright",
    "all right", "exactly", "it is", "i do", "i am", "si", "claro", "correcto", "asi es", "vale",
    "de acuerdo", "por supuesto", "exacto", "esta bien", "bueno",
)  # fmt: skip
_NO_PHRASES = (
    "no", "nope", "nah", "negative", "not really", "thats wrong", "that is wrong", "wrong",
    "incorrect", "thats not right", "that is not right", "thats not correct", "not correct",
    "not right", "no thanks", "no thank you", "dont", "i dont", "it isnt", "its not", "im not",
    "never", "para nada", "tampoco", "no gracias", "incorrecto", "no es correcto", "de ninguna manera",
)  # fmt: skip


def _phrase_spans(text: str, phrases: Sequence[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for phrase in sorted(phrases, key=len, reverse=True):
        for m in re.finditer(f" {re.escape(phrase)}(?= )", text):
            if not any(s <= m.start() + 1 < e for s, e in spans):
                spans.append((m.start() + 1, m.end()))
    return spans


def parse_yes_no(text: str) -> bool | None:
    """Answer to a yes/no question. ``None`` when there is none or both ("yes no")."""
    t = fold(text).text
    no = _phrase_spans(t, _NO_PHRASES)
    masked = t
    for s, e in no:
        masked = masked[:s] + " " * (e - s) + masked[e:]
    yes = _phrase_spans(masked, _YES_PHRASES)
    if yes and not no:
        return True
    if no and not yes:
        return False
    return None


# --------------------------------------------------------------------------------------------------
# Person names


def _name_case(word: str) -> str:
    if "'" in word and len(word) > 2:
        head, _, tail = word.partition("'")
        return head.capitalize() + "'" + tail.capitalize()
    if "-" in word:
        return "-".join(_name_case(p) for p in word.split("-"))
    if word.startswith("mc") and len(word) > 3:
        return "Mc" + word[2:].capitalize()
    return word.capitalize()


_NAME_LEADS = (
    ("my", "name", "is"), ("my", "names"), ("the", "name", "is"), ("name", "is"), ("names",),
    ("this", "is"), ("it", "is"), ("its",), ("i", "am"), ("im",), ("me", "llamo"),
    ("mi", "nombre", "es"), ("soy",), ("habla",), ("yes",), ("yeah",), ("hi",), ("hello",),
    ("sure",), ("yes", "its"), ("yeah", "its"), ("hi", "this", "is"), ("hello", "this", "is"),
)  # fmt: skip
_NAME_TAIL = frozenset({"speaking", "here", "calling", "please", "thanks", "thank", "you"})


def _name_words(text: str) -> list[str]:
    # Keep apostrophes and hyphens inside names (O'Brien, Smith-Jones); fold the rest.
    cleaned = re.sub(r"[\u2019\u2018`]", "'", text.lower())
    cleaned = re.sub(r"[^\w'\- ]+", " ", cleaned)
    return [w.strip("'-") for w in cleaned.split() if w.strip("'-")]


def parse_person_name(text: str) -> str | None:
    """A name given in answer to "what is your name?" ("it's mary o'brien", "m a r y")."""
    words = [w for w in _name_words(text) if w not in _FILLERS]
    changed = True
    while changed and words:
        changed = False
        plain = tuple(w.replace("'", "") for w in words)
        for lead in sorted(_NAME_LEADS, key=len, reverse=True):
            if plain[: len(lead)] == lead and len(words) > len(lead):
                words = words[len(lead) :]
                changed = True
                break
    while words and words[-1] in _NAME_TAIL:
        words.pop()
    # Spelled letters: "m a r y" -> "mary"; "mary m a r y" keeps one "mary".
    merged: list[str] = []
    run: list[str] = []
    for w in [*words, ""]:
        if len(w) == 1 and w.isalpha():
            run.append(w)
            continue
        if len(run) >= 2:
            spelled = "".join(run)
            if not merged or merged[-1] != spelled:
                merged.append(spelled)
        elif run:
            merged.extend(run)
        run = []
        if w:
            merged.append(w)
    words = merged
    if not 1 <= len(words) <= 4:
        return None
    if any(w in _NOT_NAME or not re.fullmatch(r"[^\W\d_]+(['-][^\W\d_]+)*", w) for w in words):
        return None
    if all(len(w) == 1 for w in words):
        return None
    return " ".join(_name_case(w) for w in words)


def _find_person(words: Sequence[str], today: date) -> list[_Found]:
    """A name only where the caller gives it: "my name is ...", "this is ... calling"."""
    out = []
    for i in range(len(words)):
        strong = words[i : i + 3] == ["my", "name", "is"] or words[i : i + 2] in (
            ["me", "llamo"],
            ["name", "is"],
        )
        weak = words[i : i + 2] == ["this", "is"] or words[i] in ("im",)
        if not (strong or weak):
            continue
        j = i + (
            3
            if words[i : i + 3] == ["my", "name", "is"]
            else 2
            if strong or words[i] == "this"
            else 1
        )
        k = j
        while k < len(words) and k - j < 3 and words[k] not in _NOT_NAME and words[k].isalpha():
            k += 1
        if k == j:
            continue
        if weak and k < len(words) and words[k] not in _NOT_NAME:
            continue
        if weak and k == len(words) and k - j < 2:
            continue  # "this is terrible": a lone word after a weak cue is not taken as a name
        name = parse_person_name(" ".join(words[j:k]))
        if name:
            out.append(_Found("person", name, j, k, 5))
    return out


# --------------------------------------------------------------------------------------------------
# Medications


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


# --------------------------------------------------------------------------------------------------
# Doses

_DOSE_UNITS = {
    "mg": "mg", "milligram": "mg", "milligrams": "mg", "miligramos": "mg",
    "mcg": "mcg", "microgram": "mcg", "micrograms": "mcg", "ug": "mcg", "g": "g", "gram": "g",
    "grams": "g", "gramos": "g", "ml": "ml", "milliliter": "ml", "milliliters": "ml",
    "millilitre": "ml", "millilitres": "ml", "cc": "ml", "unit": "units", "units": "units",
    "unidades": "units", "iu": "units", "puff": "puffs", "puffs": "puffs", "tablet": "tablets",
    "tablets": "tablets", "pill": "tablets", "pills": "tablets", "capsule": "capsules",
    "capsules": "capsules", "drop": "drops", "drops": "drops", "percent": "%", "meq": "meq",
}  # fmt: skip


def _amount(words: Sequence[str], i: int) -> tuple[float, int] | None:
    w = words[i]
    if re.fullmatch(r"\d+(\.\d+)?", w):
        value, j = float(w), i + 1
    elif w == "point" and i + 1 < len(words) and words[i + 1] in _DIGIT_WORDS:
        value, j = float("0." + _DIGIT_WORDS[words[i + 1]]), i + 2
    elif w == "half" or (w == "a" and i + 1 < len(words) and words[i + 1] == "half"):
        return 0.5, i + (2 if w == "a" else 1)
    else:
        n = _small_number(words, i)
        if n is None:
            return None
        value, j = float(n[0]), n[1]
        if j < len(words) and words[j] == "hundred":
            value, j = value * 100, j + 1
            if j + 1 < len(words) and words[j] == "and":
                rest = _small_number(words, j + 1)
                if rest:
                    value, j = value + rest[0], rest[1]
            else:
                rest = _small_number(words, j)
                if rest:
                    value, j = value + rest[0], rest[1]
        elif j < len(words) and words[j] == "thousand":
            value, j = value * 1000, j + 1
    if j + 1 < len(words) and words[j] == "point" and words[j + 1] in _DIGIT_WORDS:
        value, j = value + float("0." + _DIGIT_WORDS[words[j + 1]]), j + 2
    if words[j : j + 3] == ["and", "a", "half"]:
        value, j = value + 0.5, j + 3
    return value, j


def _find_doses(words: Sequence[str], today: date) -> list[_Found]:
    out = []
    for i in range(len(words)):
        amount = _amount(words, i)
        if amount is None:
            continue
        j = amount[1]
        unit = _DOSE_UNITS.get(words[j]) if j < len(words) else None
        if unit is None and words[j : j + 2] == ["milli", "grams"]:
            unit, j = "mg", j + 1
        if unit is not None:
            out.append(_Found("dose", {"amount": amount[0], "unit": unit}, i, j + 1, 7))
        elif words[i] == "point" or (i > 0 and words[i - 1] in _MEDICATION_LAST_WORDS):
            # "point five", "metformin five hundred": a strength whose unit went unsaid.
            out.append(_Found("dose", {"amount": amount[0], "unit": None}, i, j, 7))
    return out


# --------------------------------------------------------------------------------------------------
# Pharmacies

PHARMACY_CHAINS = {
    "cvs": "CVS", "c v s": "CVS", "cvs caremark": "CVS Caremark", "caremark": "CVS Caremark",
    "walgreens": "Walgreens", "walgreen": "Walgreens", "wal greens": "Walgreens",
    "rite aid": "Rite Aid", "right aid": "Rite Aid", "riteaid": "Rite Aid", "walmart": "Walmart",
    "wal mart": "Walmart", "costco": "Costco", "kroger": "Kroger", "target": "Target",
    "publix": "Publix", "safeway": "Safeway", "heb": "H-E-B", "h e b": "H-E-B", "meijer": "Meijer",
    "wegmans": "Wegmans", "duane reade": "Duane Reade", "sams club": "Sam's Club",
    "albertsons": "Albertsons", "giant eagle": "Giant Eagle", "harris teeter": "Harris Teeter",
    "hy vee": "Hy-Vee", "hyvee": "Hy-Vee", "winn dixie": "Winn-Dixie", "food lion": "Food Lion",
    "stop and shop": "Stop & Shop", "shoprite": "ShopRite", "shop rite": "ShopRite",
    "vons": "Vons", "ralphs": "Ralphs", "king soopers": "King Soopers", "jewel osco": "Jewel-Osco",
    "osco": "Osco", "express scripts": "Express Scripts", "optum": "Optum Rx",
    "optum rx": "Optum Rx", "amazon pharmacy": "Amazon Pharmacy", "health mart": "Health Mart",
    "good neighbor pharmacy": "Good Neighbor Pharmacy", "medicine shoppe": "Medicine Shoppe",
    "kaiser pharmacy": "Kaiser Pharmacy", "farmacia": "Farmacia",
}  # fmt: skip
_STREET_WORDS = frozenset(
    "street st avenue ave road rd boulevard blvd drive dr lane ln way highway hwy parkway pkwy pike "
    "plaza square court ct place pl circle route".split()
)
_MAX_CHAIN_WORDS = max(len(k.split()) for k in PHARMACY_CHAINS)


def _find_pharmacies(words: Sequence[str], today: date) -> list[_Found]:
    out = []
    for i in range(len(words)):
        for n in range(min(_MAX_CHAIN_WORDS, len(words) - i), 0, -1):
            key = " ".join(words[i : i + n])
            if key in PHARMACY_CHAINS:
                if key == "target" and not _pharmacy_context(words, i, i + n):
                    continue  # "target" is an ordinary word
                j = i + n
                if j < len(words) and words[j] in ("pharmacy", "drugstore", "store"):
                    j += 1
                location, end = _location(words, j)
                first = i - 1 if i > 0 and words[i - 1] == "the" else i
                out.append(
                    _Found(
                        "pharmacy",
                        {"chain": PHARMACY_CHAINS[key], "location": location},
                        first,
                        end,
                        5,
                    )
                )
                break
    return out


def _pharmacy_context(words: Sequence[str], first: int, end: int) -> bool:
    near = set(words[max(0, first - 4) : end + 3])
    return bool(near & {"pharmacy", "prescription", "refill", "send", "sent", "pick", "call"})


def _location(words: Sequence[str], j: int) -> tuple[str | None, int]:
    """ "on main street", "on 5th avenue", "in springfield", "at the mall": up to 4 words."""
    if j >= len(words) or words[j] not in ("on", "in", "at", "by", "near", "en"):
        return None, j
    k = j + 1
    if k < len(words) and words[k] == "the":
        k += 1
    start = k
    while k < len(words) and k - start < 4:
        if words[k] in _STREET_WORDS:
            k += 1
            if k < len(words) and words[k].isdigit() and words[k - 1] in ("route", "highway"):
                k += 1  # "route 9"
            break
        if words[k] in _NOT_NAME and words[k] not in ("main",):
            break
        k += 1
    if k == start:
        return None, j
    return " ".join(words[start:k]), k


# --------------------------------------------------------------------------------------------------
# Providers

_TITLES = frozenset(
    {"doctor", "dr", "doc", "nurse", "practitioner", "np", "pa", "physician", "assistant", "doctora",
     "enfermera", "enfermero", "la", "el"}
)  # fmt: skip


def _provider_finder(
    providers: Sequence[Provider],
) -> Callable[[Sequence[str], date], list[_Found]]:
    table = []
    for p in providers:
        words = fold(p.name).text.split()
        names = [w for w in words if w not in _TITLES]
        if names:
            table.append((p.id, names))

    def find(words: Sequence[str], today: date) -> list[_Found]:
        out = []
        for i, w in enumerate(words):
            titled = i > 0 and words[i - 1] in _TITLES
            first = i - 1 if titled else i
            for pid, names in table:
                surname = names[-1]
                if w == surname or (len(names) > 1 and words[i : i + len(names)] == names):
                    end = i + len(names) if words[i : i + len(names)] == names else i + 1
                    out.append(_Found("provider", pid, first, end, 8))
                elif titled and len(w) == 1 and w == surname[0]:
                    if sum(1 for _, other in table if other[-1][0] == w) == 1:
                        out.append(_Found("provider", pid, first, i + 1, 8))
                elif titled and len(w) >= 4 and w not in _NOT_NAME and len(surname) >= 4:
                    if difflib.SequenceMatcher(None, w, surname).ratio() >= 0.75:
                        out.append(_Found("provider", pid, first, i + 1, 8))
        return out

    return find


# --------------------------------------------------------------------------------------------------
# Putting it together

_DOB_CUES = frozenset(
    {"born", "birth", "birthday", "dob", "nacimiento", "naci", "nacio", "birthdate"}
)


def _find_dates(words: Sequence[str], today: date) -> list[_Found]:
    out: list[_Found] = []
    cue = any(w in _DOB_CUES for w in words)
    for i in range(len(words)):
        full = _date_with_year(words, i, today, spoken_year_ok=cue)
        if full:
            d, end = full
            label = "dob" if (cue or d.year < today.year) and _plausible_birth(d, today) else "date"
            out.append(_Found(label, d.isoformat(), i, end, 8 if label == "dob" else 4))
            continue
        out.extend(_date_at(words, i, today))
    return out


def _find_times(words: Sequence[str], today: date) -> list[_Found]:
    out: list[_Found] = []
    for i in range(len(words)):
        t = _time_at(words, i)
        if t:
            out.append(t)
        part = _part_at(words, i)
        if part:
            out.append(part)
    return out


_Finder = Callable[[Sequence[str], date], list[_Found]]


def _scan(words: Sequence[str], today: date, finders: Sequence[_Finder]) -> list[_Found]:
    """All candidates, then the best non-overlapping ones (higher priority, then longer, first)."""
    candidates = [f for finder in finders for f in finder(words, today)]
    candidates.sort(key=lambda f: (-f.priority, -(f.last - f.first), f.first))
    taken: list[_Found] = []
    for c in candidates:
        if c.last <= c.first:
            continue
        overlaps = any(c.first < t.last and t.first < c.last for t in taken)
        # A date and its part of day may share words ("tonight").
        shared = any(
            (c.first, c.last) == (t.first, t.last) and {c.label, t.label} == {"date", "part_of_day"}
            for t in taken
        )
        if not overlaps or shared:
            taken.append(c)
    taken.sort(key=lambda f: f.first)
    return taken


def extract_entities(
    text: str, *, now: datetime, tz: str, providers: list[Provider], lang: str = "en"
) -> list[Entity]:
    """Every entity in one utterance, in order of appearance. Pure: ``now`` is the call's time."""
    today = _local_today(now, tz)
    folded = fold(text)
    toks = _tokens(folded)
    words = [t.word for t in toks]
    finders: list[_Finder] = [
        _find_phones,
        _find_dates,
        _find_times,
        _find_doses,
        _find_medications,
        _find_pharmacies,
        _find_person,
        _provider_finder(providers),
    ]
    entities = []
    for f in _scan(words, today, finders):
        start, end = folded.span(toks[f.first].start, toks[f.last - 1].end)
        value = f.value
        if f.label == "person":
            # Folding lost the apostrophe of O'Brien; the original words keep it.
            value = parse_person_name(text[start:end]) or value
        entities.append(Entity(f.label, text[start:end], value, start, end))
    yes_no = parse_yes_no(text) if len(words) <= 6 else None
    if yes_no is not None and toks:
        entities.append(Entity("yes_no", text.strip(), yes_no, 0, len(text)))
    return entities
