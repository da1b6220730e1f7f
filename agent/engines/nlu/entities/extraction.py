"""Every entity in one utterance: each kind's finder proposes candidates, the best
non-overlapping ones are kept, in order of appearance."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from agent.config import Provider
from agent.core.negation import fold
from agent.core.understanding import Entity
from agent.engines.nlu.entities.allergies import _find_allergies
from agent.engines.nlu.entities.candidates import _Finder, _scan
from agent.engines.nlu.entities.dates import _find_dates, _local_today
from agent.engines.nlu.entities.doses import _find_doses
from agent.engines.nlu.entities.medications import _find_medications
from agent.engines.nlu.entities.person_names import _find_person, parse_person_name
from agent.engines.nlu.entities.pharmacies import _pharmacy_finder
from agent.engines.nlu.entities.phones import _find_phones
from agent.engines.nlu.entities.providers import _provider_finder
from agent.engines.nlu.entities.times import _find_times
from agent.engines.nlu.entities.words import _tokens
from agent.engines.nlu.entities.yes_no import parse_yes_no


def extract_entities(
    text: str,
    *,
    now: datetime,
    tz: str,
    providers: list[Provider],
    lang: str = "en",
    pharmacies: Sequence[str] = (),
) -> list[Entity]:
    """Every entity in one utterance, in order of appearance. Pure: ``now`` is the call's time;
    ``pharmacies`` are the practice's own (``practice.pharmacies``: "name, street")."""
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
        _find_allergies,
        _pharmacy_finder(pharmacies),
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
