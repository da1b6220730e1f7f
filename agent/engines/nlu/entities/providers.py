"""The practice's providers, by surname, full name, initial after a title, or a near miss
after a title ("doctor patl")."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from datetime import date

from agent.config import Provider
from agent.core.negation import fold
from agent.engines.nlu.entities.candidates import _Found
from agent.engines.nlu.entities.words import _NOT_NAME

_TITLES = frozenset(
    {"doctor", "dr", "doc", "nurse", "practitioner", "np", "pa", "physician", "assistant", "doctora",
     "enfermera", "enfermero", "la", "el"}
)  # fmt: skip


def _provider_finder(
    providers: Sequence[Provider],
) -> Callable[[Sequence[str], date], list[_Found]]:
    table = []
    for p in providers:
        words = fold(p.name).text.split()
        names = [w for w in words if w not in _TITLES]
        if names:
            table.append((p.id, names))

    def find(words: Sequence[str], today: date) -> list[_Found]:
        out = []
        for i, w in enumerate(words):
            titled = i > 0 and words[i - 1] in _TITLES
            first = i - 1 if titled else i
            for pid, names in table:
                surname = names[-1]
                if w == surname or (len(names) > 1 and words[i : i + len(names)] == names):
                    end = i + len(names) if words[i : i + len(names)] == names else i + 1
                    out.append(_Found("provider", pid, first, end, 8))
                elif titled and len(w) == 1 and w == surname[0]:
                    if sum(1 for _, other in table if other[-1][0] == w) == 1:
                        out.append(_Found("provider", pid, first, i + 1, 8))
                elif titled and len(w) >= 4 and w not in _NOT_NAME and len(surname) >= 4:
                    if difflib.SequenceMatcher(None, w, surname).ratio() >= 0.75:
                        out.append(_Found("provider", pid, first, i + 1, 8))
        return out

    return find
