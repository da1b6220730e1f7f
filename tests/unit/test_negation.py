"""Negation scope, subject and text folding (agent.core.negation)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.negation import fold, is_negated, subject_of


def before(text: str, finding: str) -> list[str]:
    folded = fold(text)
    return folded.words_before(folded.text.index(f" {finding} ") + 1)


@pytest.mark.parametrize(
    ("text", "finding", "negated"),
    [
        ("no chest pain", "chest", True),
        ("I'm not short of breath", "short", True),
        ("patient denies fever", "fever", True),
        ("without any bleeding", "bleeding", True),
        ("I haven't had a fever since Monday", "fever", True),
        ("no tengo dolor de pecho", "dolor", True),
        ("sin fiebre", "fiebre", True),
        ("no he tenido fiebre", "fiebre", True),  # "he": the Spanish verb, not a new subject
        ("nunca he pensado en quitarme la vida", "quitarme", True),
        ("no, he has a fever", "fever", False),
        ("not sure if it's chest pain", "chest", False),
        ("I don't know if this is chest pain", "chest", False),
        ("I can't stop the bleeding", "bleeding", False),
        ("no I have chest pain", "chest", False),
        ("no fever but chest pain", "chest", False),
        ("no fever and chest pain", "chest", False),
        ("not feeling well my chest hurts", "chest", False),
        ("no no it's chest pain", "chest", False),
        ("no doubt it's a fever", "fever", False),
        ("I have chest pain", "chest", False),
        ("no, one, two, three, four, five, six, seven, fever", "fever", False),  # out of window
    ],
)
def test_negation_scope(text: str, finding: str, negated: bool) -> None:
    assert is_negated(before(text, finding)) is negated


@pytest.mark.parametrize(
    ("text", "finding", "subject"),
    [
        ("my son can't breathe", "cant", "other"),
        ("my mother is unconscious", "unconscious", "other"),
        ("my husband's chest hurts", "chest", "other"),
        ("he is not breathing", "not", "other"),
        ("my two year old has a fever", "fever", "other"),
        ("mi hijo no puede respirar", "no", "other"),
        ("the baby is floppy", "floppy", "other"),
        ("I think my wife is having a stroke", "stroke", "other"),
        ("I have chest pain", "chest", "self"),
        ("my chest hurts", "chest", "self"),
        ("my son is fine but I can't breathe", "cant", "self"),
        ("tengo dolor de pecho", "dolor", "self"),
        ("can't breathe", "cant", "self"),
    ],
)
def test_subject(text: str, finding: str, subject: str) -> None:
    assert subject_of(before(text, finding)) == subject


def test_fold_maps_back_to_the_callers_words() -> None:
    folded = fold("Mi hijo NO está respirando, ¡ayuda!")
    assert folded.text == " mi hijo no esta respirando ayuda "
    start = folded.text.index("esta")
    assert folded.original(start, start + len("esta respirando")) == "está respirando"
    assert folded.span(start, start + 4) == (11, 15)


def test_fold_keeps_numbers_whole() -> None:
    assert fold("at 10:40, on 3/4/62; 0.5 mg. Can't").text == " at 10:40 on 3/4/62 0.5 mg cant "


@given(st.text())
def test_fold_never_raises_and_maps_every_character(text: str) -> None:
    folded = fold(text)
    assert len(folded.origin) == len(folded.text)
    assert folded.text.startswith(" ") and folded.text.endswith(" ")
    assert all(0 <= i <= len(text) for i in folded.origin)
    folded.original(0, len(folded.text))
