"""One way to compare names: the demo directory and the database's blind index agree."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from agent.adapters.store.crypto import Keyring
from agent.core.names import normalise_name
from agent.runtime.practice_data import FakePatient, InMemoryDirectory


def test_accents_case_punctuation_and_spacing_fold_digits_stay() -> None:
    assert normalise_name("Anne-Marie  NÚÑEZ") == "anne marie nunez"
    assert normalise_name("Ann O'Neil") == normalise_name("ann oneil") == "ann oneil"
    assert normalise_name("Ann O\u2019Neil") == "ann oneil"
    assert normalise_name("John Smith 3rd") == "john smith 3rd"
    assert normalise_name("John Smith 3rd") != normalise_name("John Smith")


def test_the_in_memory_directory_matches_what_the_blind_index_matches() -> None:
    ring = Keyring((("k1", bytes(32)),))
    patient = FakePatient("p1", "José O'Brien", date(1950, 3, 4), "5550100", [])
    directory = InMemoryDirectory([patient])
    now = datetime(2026, 1, 5, tzinfo=UTC)
    for spoken in ("jose obrien", "JOSE O'BRIEN", "José  O\u2019Brien"):
        same_index = ring.blind_index(spoken, patient.dob) == ring.blind_index(
            patient.name, patient.dob
        )
        found = asyncio.run(directory.find(spoken, patient.dob, actor="test", now=now))
        assert same_index and [p.id for p in found] == ["p1"]
    # Both say no to a different person in the same way.
    assert asyncio.run(directory.find("jose brien", patient.dob, actor="test", now=now)) == []
    assert ring.blind_index("jose brien", patient.dob) != ring.blind_index(
        patient.name, patient.dob
    )
