"""Doses: an amount and its unit ("twenty milligrams", "a half tablet"), or a bare strength
right after a medication name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from agent.engines.nlu.entities.candidates import _Found
from agent.engines.nlu.entities.medications import _MEDICATION_LAST_WORDS
from agent.engines.nlu.entities.numbers import _small_number
from agent.engines.nlu.entities.words import _DIGIT_WORDS

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
