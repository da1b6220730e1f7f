"""Clock times ("half past two", "ten forty") and parts of the day ("late morning") a caller
would like an appointment at."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from agent.engines.nlu.entities.candidates import _Found
from agent.engines.nlu.entities.numbers import _small_number, _spanish_number
from agent.engines.nlu.entities.words import _TENS_EN, _UNITS_EN

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
