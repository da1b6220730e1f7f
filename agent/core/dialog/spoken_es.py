"""Saying values in Spanish: dates, times, providers, phone numbers, doses. Pure functions.

Each mirrors the English function that says the same value (``slots.spoken_when``,
``office.hours_sentence``, ``slots.supply_sentence``, ``answers.spoken_dose``…), takes the
same inputs, and returns what a US Hispanic caller expects to hear: "el viernes 4 a las 8 de la
mañana con el doctor Patel".

The output is written for the synthesizer as well as for the caller:

* Numbers stay as digits (a Spanish voice reads "8" as "ocho"), except where Spanish changes the
  word before a noun or an hour: "la una", "un día", "veintiún días" — a voice reading "1" says
  "uno", which is wrong in all three.
* Nothing is written as ``10:40``, ``555-123-4567`` or ``Dr.``: ``engines.tts.speakable`` rewrites
  those into English words ("ten forty", "Doctor") before any voice sees them.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from agent.core.dialog.commands import Slot
from agent.core.office import WEEKDAYS, parse_span
from agent.core.understanding import Entity

WEEKDAY_NAMES = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
"""Lower case, as Spanish writes them; index 0 is Monday, as ``datetime.weekday``."""

_WEEKDAY_PLURALS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábados", "domingos")
"""For office hours, which hold every week: "los sábados", not "el sábado"."""

PARTS_OF_DAY = {
    "early morning": "temprano en la mañana",
    "morning": "en la mañana",
    "late morning": "a media mañana",
    "early afternoon": "temprano en la tarde",
    "afternoon": "en la tarde",
    "late afternoon": "al final de la tarde",
    "evening": "en la noche",
    "night": "en la noche",
}
"""The NLU's parts of the day (``engines.nlu.entities.times``) as said after a weekday. "En la
mañana" rather than Spain's "por la mañana": it is what US Hispanic callers say."""

_TENS = {2: "veinti", 3: "treinta", 4: "cuarenta", 5: "cincuenta", 6: "sesenta", 7: "setenta"}
_TENS.update({8: "ochenta", 9: "noventa"})

# Title as configured (lower case, longest first so "nurse practitioner" wins over "nurse") →
# (masculine, feminine, feminine when the configuration does not say). English titles carry no
# gender; the defaults follow the usual reading (a doctor "el doctor", a nurse "la enfermera") and
# ``feminine`` overrides them.
_TITLES: tuple[tuple[str, str, str, bool], ...] = (
    ("nurse practitioner", "enfermero practicante", "enfermera practicante", True),
    ("physician assistant", "asistente médico", "asistente médica", False),
    ("enfermera practicante", "enfermero practicante", "enfermera practicante", True),
    ("enfermero practicante", "enfermero practicante", "enfermera practicante", False),
    ("doctora", "doctor", "doctora", True),
    ("doctor", "doctor", "doctora", False),
    ("nurse", "enfermero", "enfermera", True),
    ("enfermera", "enfermero", "enfermera", True),
    ("enfermero", "enfermero", "enfermera", False),
    ("dra.", "doctor", "doctora", True),
    ("dra", "doctor", "doctora", True),
    ("dr.", "doctor", "doctora", False),
    ("dr", "doctor", "doctora", False),
)

_VISIT_TYPES = {
    "follow-up": "de seguimiento",
    "follow up": "de seguimiento",
    "new patient": "de paciente nuevo",
    "physical": "de examen físico",
    "annual physical": "de examen físico anual",
    "sick visit": "por enfermedad",
    "well child": "de control del niño sano",
    "telehealth": "por video",
}
"""Appointment types as configured (``[practice.providers].appointment_types``), said after
"una cita": "una cita de seguimiento"."""

_UNITS = {
    "mg": ("miligramo", "miligramos"),
    "mcg": ("microgramo", "microgramos"),
    "ml": ("mililitro", "mililitros"),
    "g": ("gramo", "gramos"),
}

_TO = {
    "the nurse": "el personal de enfermería",
    "the on-call clinician": "el profesional médico de guardia",
}
"""Who a nurse-line message goes to, as ``workflows`` names it in English."""


def count(n: int) -> str:
    """``n`` before a masculine noun: "un día", "21 días" said "veintiún días". A voice reads the
    digit 1 as "uno", which Spanish never says before a noun."""
    if n == 1:
        return "un"
    if n % 10 == 1 and 20 <= n < 100:
        tens = n // 10
        return "veintiún" if tens == 2 else f"{_TENS[tens]} y un"
    return str(n)


def ordinal(n: int) -> str:
    """The day of the month: Spanish says cardinals ("el viernes 4"), but the first of the month
    is "primero" across Latin America ("el viernes primero")."""
    return "primero" if n == 1 else str(n)


def _hour(h: int) -> str:
    """The hour on a 12-hour clock, as a word where the digit would be read wrong ("una")."""
    h12 = h % 12 or 12
    return "una" if h12 == 1 else str(h12)


def _minutes(m: int) -> str:
    if m == 0:
        return ""
    if m == 15:
        return " y cuarto"
    if m == 30:
        return " y media"
    return f" y {m}"


def _day_part(t: time) -> str:
    """Spanish has no AM/PM on the phone: the part of the day says it."""
    if t.hour < 6:
        return "de la madrugada"
    if t.hour < 12:
        return "de la mañana"
    if t.hour == 12 and t.minute == 0:
        return "del mediodía"
    if t.hour < 19:
        return "de la tarde"
    return "de la noche"


def _clock(t: time) -> str:
    """``8 de la mañana``, ``una y media de la tarde``: the time without its article."""
    return f"{_hour(t.hour)}{_minutes(t.minute)} {_day_part(t)}"


def spoken_time(t: time) -> str:
    """``las 8 de la mañana``, ``la una y media de la tarde``. The article is part of a Spanish
    time, and its number follows the hour ("la una", "las dos")."""
    article = "la" if t.hour % 12 == 1 else "las"
    return f"{article} {_clock(t)}"


def spoken_date(iso: str) -> str:
    """``el viernes 4``: the weekday and the day of the month, as ``slots.spoken_date``."""
    d = date.fromisoformat(iso)
    return f"el {WEEKDAY_NAMES[d.weekday()]} {ordinal(d.day)}"


def spoken_when(at: datetime) -> str:
    """``el viernes 4 a las 8 de la mañana``."""
    return f"{spoken_date(at.date().isoformat())} a {spoken_time(at.time())}"


def spoken_provider(name: str, feminine: bool | None = None) -> str:
    """A provider as configured ("Doctor Patel", "Nurse Practitioner García") with the Spanish
    title and its article: "el doctor Patel", "la enfermera practicante García". Surnames are left
    as the practice spells them. A name without a known title is said as it is, with no article."""
    words = name.split()
    lowered = [w.lower() for w in words]
    for title, masculine, feminine_title, default in _TITLES:
        size = len(title.split())
        if lowered[:size] == title.split() and len(words) > size:
            is_feminine = default if feminine is None else feminine
            rest = " ".join(words[size:])
            return f"{'la' if is_feminine else 'el'} {feminine_title if is_feminine else masculine} {rest}"
    return name.strip()


def spoken_slot(slot: Slot) -> str:
    """``el viernes 4 a las 8 de la mañana con el doctor Patel``."""
    return f"{spoken_when(slot.starts_at)} con {spoken_provider(slot.provider_name)}"


def spoken_day_part(weekday: int | None, part: str) -> str:
    """``el jueves en la mañana``; with no weekday, only the part ("en la tarde"). ``part`` is one
    of the NLU's parts of the day; an unknown one is left out rather than said in English."""
    said = PARTS_OF_DAY.get(part.lower().strip(), "")
    if weekday is None:
        return said
    return f"el {WEEKDAY_NAMES[weekday]} {said}".strip()


def spoken_digits(number: str) -> str:
    """A phone number digit by digit in its 3-3-4 groups, as ``slots.spoken_digits``: the commas
    make the voice pause between groups, as a person reading a number does."""
    digits = "".join(c for c in number if c.isdigit())
    groups = [digits[:3], digits[3:6], digits[6:]] if len(digits) == 10 else [digits]
    return ", ".join(" ".join(g) for g in groups if g)


def visit_type(appointment_type: str) -> str:
    """An appointment type said after "una cita": "de seguimiento". Its own output and anything
    already starting with a Spanish preposition come back unchanged, so calling it twice is safe."""
    t = appointment_type.strip()
    if t.lower() in _VISIT_TYPES:
        return _VISIT_TYPES[t.lower()]
    if t.lower().startswith(("de ", "por ", "para ")) or not t:
        return t
    return f"de {t}"


def recipient(to: str) -> str:
    """Who a nurse-line message goes to, in Spanish ("the nurse" → "el personal de enfermería",
    which names no gender); Spanish input comes back as it is."""
    return _TO.get(to.strip().lower(), to.strip())


def hours_sentence(office_hours: dict[str, str]) -> str:
    """The office hours as one sentence, grouping neighbouring days with the same hours, as
    ``office.hours_sentence``: "Estamos abiertos de lunes a jueves, de 8 de la mañana a 5 de la
    tarde, y los viernes, de 8 de la mañana a 4 de la tarde."."""
    groups: list[tuple[list[int], str]] = []
    for i, day in enumerate(WEEKDAYS):
        span = office_hours.get(day)
        if not span:
            continue
        start, end = parse_span(span)
        spoken = f"de {_clock(start)} a {_clock(end)}"
        if groups and groups[-1][1] == spoken and groups[-1][0][-1] == i - 1:
            groups[-1][0].append(i)
        else:
            groups.append(([i], spoken))
    if not groups:
        return "El consultorio no tiene un horario fijo de atención."
    parts = []
    for days, spoken in groups:
        if len(days) == 1:
            names = f"los {_WEEKDAY_PLURALS[days[0]]}"
        else:
            names = f"de {WEEKDAY_NAMES[days[0]]} a {WEEKDAY_NAMES[days[-1]]}"
        parts.append(f"{names}, {spoken}")
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", y " + parts[-1]
    return f"Estamos abiertos {joined}."


def supply_sentence(s: dict[str, Any]) -> str:
    """How much medicine is left, from the refill's slots, as ``slots.supply_sentence``."""
    days = s.get("days_left")
    if days is None:
        return ""
    if days == 0:
        return "Ya no le queda medicina."
    if days == 1:
        return "Le queda más o menos un día."
    return f"Le quedan más o menos {count(days)} días."


def spoken_dose(e: Entity) -> str:
    """A dose entity as said: "10 miligramos", "un miligramo", as ``answers.spoken_dose``."""
    if isinstance(e.value, dict) and "amount" in e.value:
        amount = e.value["amount"]
        whole = float(amount).is_integer()
        number = int(amount) if whole else amount
        unit = str(e.value.get("unit", ""))
        one, many = _UNITS.get(unit, (unit, unit))
        if whole and number == 1:
            return f"un {one}".strip()
        said = count(int(number)) if whole else str(number)
        return f"{said} {many}".strip()
    return e.text


def spoken_pharmacy(e: Entity) -> str:
    """A pharmacy entity as said: "CVS en Main Street", as ``answers.spoken_pharmacy``."""
    if isinstance(e.value, dict) and e.value.get("chain"):
        location = e.value.get("location")
        return f"{e.value['chain']} en {location}" if location else str(e.value["chain"])
    return e.text
