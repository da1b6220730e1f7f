"""Answers to a yes/no question, English and Spanish; a "no" phrase hides the "yes" inside it
("not right")."""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.core.negation import fold

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
