"""Reading slot values out of what the caller said, and saying them back. Pure functions.

The NLU already normalises most values (``agent.engines.nlu.entities``: dates, times, phone digits,
drug names, doses, pharmacies, providers). What is here is what only the dialog knows: which of the
three offered times "the second one" is, what a bare answer to "what is your name?" means, and how a
slot sounds when read back ("Tuesday the 3rd at 10:40 AM").
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta
from typing import Any

from agent.core.dialog.commands import Slot, SlotPreferences
from agent.core.understanding import Understanding

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAY_WORDS = {name.lower(): i for i, name in enumerate(WEEKDAY_NAMES)} | {
    "lunes": 0, "martes": 1, "miercoles": 2, "miércoles": 2, "jueves": 3, "viernes": 4,
    "sabado": 5, "sábado": 5, "domingo": 6,
}  # fmt: skip

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "fifteen": 15,
    "twenty": 20, "thirty": 30, "a": 1, "an": 1, "couple": 2, "few": 3,
}  # fmt: skip
_ORDINAL_WORDS = {
    "first": 0, "1st": 0, "one": 0, "second": 1, "2nd": 1, "two": 1, "third": 2, "3rd": 2,
    "three": 2,
    # Spanish callers: "la primera", "el segundo", "la tercera"; "uno", "dos", "tres".
    "primera": 0, "primero": 0, "uno": 0, "segunda": 1, "segundo": 1, "dos": 1, "tercera": 2,
    "tercero": 2, "tres": 2,
}  # fmt: skip
_NAME_LEAD_INS = re.compile(
    r"^(?:(?:yes|yeah|sure|okay|ok|so|um|uh|well)\s+)*"
    r"(?:my name is|my name's|name is|this is|that's|that is|it's|it is|i am|i'm|me llamo|soy)\s+"
)
_NOT_NAME = {"calling", "here", "speaking", "please", "thanks", "thank", "you"}


def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def spoken_time(t: time) -> str:
    hour = t.hour % 12 or 12
    meridiem = "AM" if t.hour < 12 else "PM"
    return f"{hour} {meridiem}" if t.minute == 0 else f"{hour}:{t.minute:02d} {meridiem}"


def spoken_when(at: datetime) -> str:
    """``Tuesday the 3rd at 10:40 AM``: weekday and day of month are what callers check."""
    return f"{WEEKDAY_NAMES[at.weekday()]} the {ordinal(at.day)} at {spoken_time(at.time())}"


def spoken_slot(slot: Slot) -> str:
    return f"{spoken_when(slot.starts_at)} with {slot.provider_name}"


def spoken_date(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{WEEKDAY_NAMES[d.weekday()]} the {ordinal(d.day)}"


def spoken_digits(number: str) -> str:
    """A phone number read digit by digit, grouped the way people say it (555, 123, 4567)."""
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) == 10:
        groups = [digits[:3], digits[3:6], digits[6:]]
    else:
        groups = [digits]
    return ", ".join(" ".join(g) for g in groups if g)


def words(text: str) -> list[str]:
    """Lower-cased words with accents folded ("miércoles" → "miercoles", "sé" → "se"): Whisper
    and callers drop accents as often as they keep them."""
    folded = unicodedata.normalize("NFKD", text.lower())
    return re.findall(r"[a-z0-9']+", "".join(c for c in folded if not unicodedata.combining(c)))


def preferences_from(u: Understanding, base: SlotPreferences | None = None) -> SlotPreferences:
    """Day and time wishes in one utterance, laid over ``base`` (a correction replaces only what the
    caller named: "no, Wednesday" keeps the morning)."""
    prefs = base or SlotPreferences()
    dates: tuple[str, ...] | None = None
    not_before, not_after = prefs.not_before, prefs.not_after
    for e in u.entities:
        if e.label == "date" and isinstance(e.value, str):
            dates = (*(dates or ()), e.value)
        elif e.label == "date_range" and isinstance(e.value, dict):
            dates = (*(dates or ()), *_days(e.value.get("start"), e.value.get("end")))
        elif e.label == "part_of_day" and isinstance(e.value, dict):
            not_before = str(e.value.get("start", ""))
            not_after = str(e.value.get("end", ""))
        elif e.label == "time" and isinstance(e.value, str):
            not_before, not_after = _around(e.value)
    weekdays = prefs.weekdays
    if dates is None:
        named = tuple(
            _WEEKDAY_WORDS[w.rstrip("s")] for w in words(u.text) if w.rstrip("s") in _WEEKDAY_WORDS
        )
        if named:
            weekdays = named
    else:
        weekdays = ()
    return SlotPreferences(
        dates=prefs.dates if dates is None else dates,
        weekdays=weekdays,
        not_before=not_before,
        not_after=not_after,
        exclude=prefs.exclude,
    )


def has_preference(u: Understanding) -> bool:
    return any(e.label in ("date", "date_range", "part_of_day", "time") for e in u.entities) or any(
        w.rstrip("s") in _WEEKDAY_WORDS for w in words(u.text)
    )


def _days(start: Any, end: Any) -> tuple[str, ...]:
    try:
        first, last = date.fromisoformat(str(start)), date.fromisoformat(str(end))
    except ValueError:
        return ()
    span = min((last - first).days, 27)
    return tuple((first + timedelta(days=i)).isoformat() for i in range(span + 1))


def _around(hhmm: str) -> tuple[str, str]:
    """ "At three": an hour either side, so a nearby opening is still offered."""
    try:
        t = time.fromisoformat(hhmm)
    except ValueError:
        return "", ""
    at = datetime.combine(date(2000, 1, 3), t)
    lo, hi = at - timedelta(hours=1), at + timedelta(hours=1)
    return (
        "00:00" if lo.date() != at.date() else lo.strftime("%H:%M"),
        "23:59" if hi.date() != at.date() else hi.strftime("%H:%M"),
    )


def choose(u: Understanding, offered: tuple[Slot, ...]) -> Slot | None:
    """Which offered slot the caller picked: "the second one", "Wednesday", "the 2:20", "yes" to a
    single offer. None when the answer does not single one out."""
    if not offered:
        return None
    ws = words(u.text)
    for w in ws:
        if w in ("last", "latter", "ultima", "última", "ultimo", "último") and len(offered) > 1:
            return offered[-1]
    for w in ws:
        i = _ORDINAL_WORDS.get(w)
        if i is not None and i < len(offered) and ("one" not in ws or w != "one" or len(ws) <= 3):
            return offered[i]
    matches = list(offered)
    named_days = {_WEEKDAY_WORDS[w] for w in ws if w in _WEEKDAY_WORDS}
    dates = {e.value for e in u.entities if e.label == "date"}
    times = {e.value for e in u.entities if e.label == "time"}
    if dates:
        matches = [s for s in matches if s.starts_at.date().isoformat() in dates] or matches
    elif named_days:
        matches = [s for s in matches if s.starts_at.weekday() in named_days] or matches
    if times:
        matches = [s for s in matches if s.starts_at.strftime("%H:%M") in times] or matches
    if (dates or named_days or times) and len(matches) == 1:
        return matches[0]
    yes = u.entity("yes_no")
    if len(offered) == 1 and yes is not None and yes.value is True:
        return offered[0]
    return None


def name_from(u: Understanding) -> str | None:
    """The caller's name from an answer to "what is your full name?": the NLU's person entity, or
    the words themselves once lead-ins ("my name is", "it's") are dropped."""
    e = u.entity("person")
    if e is not None and isinstance(e.value, str) and e.value.strip():
        return e.value.strip()
    text = u.text
    # Drop what the NLU recognised as something else ("Jane Doe, March 4 1962": the birth date).
    for other in sorted(u.entities, key=lambda x: x.start, reverse=True):
        # A provider's surname stays: a patient may share it ("Linda Garcia" with NP Garcia).
        if other.end > other.start and other.label not in ("person", "yes_no", "provider"):
            text = text[: other.start] + " " + text[other.end :]
    text = _NAME_LEAD_INS.sub("", " ".join(words(text)))
    text = re.split(r"\b(?:born|birth|date of birth|dob)\b", text)[0]
    parts = [w for w in text.split() if w not in _NOT_NAME and not w.isdigit()]
    if not 2 <= len(parts) <= 4:
        return None
    return " ".join(p.capitalize() for p in parts)


def names_from(u: Understanding) -> tuple[str, ...]:
    """Every name the answer may hold, best first: ``name_from`` on the recogniser's best
    hypothesis, then on each of its other hypotheses. The best hypothesis of a rare name is often
    not a name at all ("Faramiller." for "Sarah Miller."), while an other one is."""
    out: list[str] = []
    others = (Understanding(a, u.lang, u.intent, u.confidence, u.urgency) for a in u.alternatives)
    for heard in (u, *others):
        name = name_from(heard)
        if name and name.casefold() not in {n.casefold() for n in out}:
            out.append(name)
    return tuple(out)


def dob_from(u: Understanding) -> str | None:
    for label in ("dob", "date"):
        e = u.entity(label)
        if e is not None and isinstance(e.value, str):
            try:
                d = date.fromisoformat(e.value)
            except ValueError:
                continue
            if label == "dob" or d.year < 2020:
                return d.isoformat()
    return None


def number_from(text: str) -> int | None:
    """A small count or rating: "three", "about 5", "a couple"."""
    for w in words(text):
        if w.isdigit():
            return int(w)
        if w in _NUMBER_WORDS and w not in ("a", "an"):
            return _NUMBER_WORDS[w]
    return None


def phone_from(u: Understanding, caller_number: str) -> str | None:
    """A call-back number: digits the caller said, or the number they are calling from when they
    say "this number" or simply "yes" to it."""
    e = u.entity("phone")
    if e is not None and isinstance(e.value, str) and e.value:
        return e.value
    yes = u.entity("yes_no")
    said_this = bool(set(words(u.text)) & {"this", "same", "that", "este", "mismo", "ese"})
    if caller_number and (said_this or (yes is not None and yes.value is True)):
        return caller_number
    return None


def supply_sentence(s: dict[str, Any]) -> str:
    days = s.get("days_left")
    if days is None:
        return ""
    if days == 0:
        return "You have run out."
    return f"You have about {days} day{'s' if days != 1 else ''} left."
