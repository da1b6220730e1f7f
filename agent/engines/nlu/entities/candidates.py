"""A candidate entity over a span of tokens, and the choice among overlapping candidates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class _Found:
    label: str
    value: object
    first: int
    """Token indices, end exclusive."""
    last: int
    priority: int


_Finder = Callable[[Sequence[str], date], list[_Found]]


def _scan(words: Sequence[str], today: date, finders: Sequence[_Finder]) -> list[_Found]:
    """All candidates, then the best non-overlapping ones (higher priority, then longer, first)."""
    candidates = [f for finder in finders for f in finder(words, today)]
    candidates.sort(key=lambda f: (-f.priority, -(f.last - f.first), f.first))
    taken: list[_Found] = []
    for c in candidates:
        if c.last <= c.first:
            continue
        overlaps = any(c.first < t.last and t.first < c.last for t in taken)
        # A date and its part of day may share words ("tonight").
        shared = any(
            (c.first, c.last) == (t.first, t.last) and {c.label, t.label} == {"date", "part_of_day"}
            for t in taken
        )
        if not overlaps or shared:
            taken.append(c)
    taken.sort(key=lambda f: f.first)
    return taken
