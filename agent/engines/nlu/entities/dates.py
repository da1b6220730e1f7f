"""Appointment days: relative ("next tuesday", "in two weeks"), named ("the 14th of december"),
weeks as ranges; and the day-and-time preference built from them and ``times``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.engines.nlu.entities.candidates import _Found, _scan
from agent.engines.nlu.entities.dob import _date_with_year, _plausible_birth, _valid_date
from agent.engines.nlu.entities.numbers import _day_number, _small_number, _spanish_number
from agent.engines.nlu.entities.times import PARTS_OF_DAY, _find_times, _part
from agent.engines.nlu.entities.words import _MONTHS, _UNITS_EN, _words

_WEEKDAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tues": 1, "tue": 1, "wednesday": 2, "wed": 2,
    "thursday": 3, "thurs": 3, "thu": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5,
    "sunday": 6, "sun": 6, "mondays": 0, "tuesdays": 1, "wednesdays": 2, "thursdays": 3,
    "fridays": 4, "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4, "sabado": 5,
    "domingo": 6,
}  # fmt: skip
# Short forms that are ordinary words too ("sat", "sun", "wed") only count after "on"/"this"/"next".
_WEEKDAY_SHORT = frozenset({"mon", "tue", "tues", "wed", "thu", "thurs", "fri", "sat", "sun"})


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
