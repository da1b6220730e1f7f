"""Entities with normalised values, from lower-case, unpunctuated, disfluent ASR text.

Pure rules over folded words (``agent.core.negation.fold``): no model, no I/O after the lexicon is
read at import, no clock (the call's ``now`` and the practice time zone are passed in). spaCy's
Matcher was not needed: the grammar of dates, phones and doses here is small, and plain Python keeps
every rule testable and fast (well under a millisecond per utterance for most inputs).

``extract_entities`` finds everything in one utterance. The focused parsers (``parse_yes_no``,
``parse_date_of_birth``, ``parse_person_name``, ``parse_phone``, ``parse_datetime_preference``,
``match_medication``, ``parse_allergies``) are for turns where the dialog asked a specific
question and so may accept forms that would be too ambiguous in free speech ("m a r y", "sixty
two", "none that I know of").

Values:
    date         ISO date ``"2026-12-01"``            date_range  ``{"start": ISO, "end": ISO}``
    time         ``"15:00"``                           part_of_day ``{"part", "start", "end"}``
    dob          ISO date                              phone       digits (10 for US numbers)
    person       ``"Mary O'Brien"``                    medication  generic name (``lisinopril``)
    dose         ``{"amount": 20.0, "unit": "mg"}``    provider    ``Provider.id``
    pharmacy     ``{"chain", "location", "known"}``   yes_no      ``True`` / ``False``
    allergy      ``("penicillin", "sulfa")`` or ``"none"``

A pharmacy with ``known`` false was plainly meant ("Smith's pharmacy") but matched no chain and
none of ``practice.pharmacies``; its ``chain`` is ``None``.

US conventions: month before day in numeric dates; two-digit birth years are in the past.

One module per kind of entity (``dates``, ``times``, ``dob``, ``phones``, ``person_names``,
``medications``, ``allergies``, ``doses``, ``pharmacies``, ``providers``, ``yes_no``), over the
shared ``words`` and ``numbers``; ``candidates`` chooses among overlapping finds and
``extraction`` puts the finders together. Import from this package: a name with a leading
underscore is shared by its modules and private to it.
"""

from __future__ import annotations

from agent.engines.nlu.entities.allergies import ALLERGENS, parse_allergies
from agent.engines.nlu.entities.dates import DateTimePreference, parse_datetime_preference
from agent.engines.nlu.entities.dob import parse_date_of_birth
from agent.engines.nlu.entities.extraction import extract_entities
from agent.engines.nlu.entities.medications import (
    COMMON_WORDS,
    FUZZY_THRESHOLD,
    LEXICON_DIR,
    MEDICATIONS,
    match_medication,
)
from agent.engines.nlu.entities.person_names import parse_person_name
from agent.engines.nlu.entities.pharmacies import PHARMACY_CHAINS, local_pharmacy
from agent.engines.nlu.entities.phones import parse_phone
from agent.engines.nlu.entities.times import PARTS_OF_DAY
from agent.engines.nlu.entities.yes_no import parse_yes_no

__all__ = [
    "ALLERGENS",
    "COMMON_WORDS",
    "FUZZY_THRESHOLD",
    "LEXICON_DIR",
    "MEDICATIONS",
    "PARTS_OF_DAY",
    "PHARMACY_CHAINS",
    "DateTimePreference",
    "extract_entities",
    "local_pharmacy",
    "match_medication",
    "parse_allergies",
    "parse_date_of_birth",
    "parse_datetime_preference",
    "parse_person_name",
    "parse_phone",
    "parse_yes_no",
]
