"""Person names: the focused parser for "what is your name?" answers (spelled letters, O'Brien),
and names in free speech only where the caller introduces themselves."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from agent.engines.nlu.entities.candidates import _Found
from agent.engines.nlu.entities.words import _NOT_NAME

_FILLERS = frozenset(
    {"um", "uh", "er", "erm", "ah", "oh", "hmm", "mm", "like", "so", "well", "okay", "ok"}
)


def _name_case(word: str) -> str:
    if "'" in word and len(word) > 2:
        head, _, tail = word.partition("'")
        return head.capitalize() + "'" + tail.capitalize()
    if "-" in word:
        return "-".join(_name_case(p) for p in word.split("-"))
    if word.startswith("mc") and len(word) > 3:
        return "Mc" + word[2:].capitalize()
    return word.capitalize()


_NAME_LEADS = (
    ("my", "name", "is"), ("my", "names"), ("the", "name", "is"), ("name", "is"), ("names",),
    ("this", "is"), ("it", "is"), ("its",), ("i", "am"), ("im",), ("me", "llamo"),
    ("mi", "nombre", "es"), ("soy",), ("habla",), ("yes",), ("yeah",), ("hi",), ("hello",),
    ("sure",), ("yes", "its"), ("yeah", "its"), ("hi", "this", "is"), ("hello", "this", "is"),
)  # fmt: skip
_NAME_TAIL = frozenset({"speaking", "here", "calling", "please", "thanks", "thank", "you"})


def _name_words(text: str) -> list[str]:
    # Keep apostrophes and hyphens inside names (O'Brien, Smith-Jones); fold the rest.
    cleaned = re.sub(r"[\u2019\u2018`]", "'", text.lower())
    cleaned = re.sub(r"[^\w'\- ]+", " ", cleaned)
    return [w.strip("'-") for w in cleaned.split() if w.strip("'-")]


def parse_person_name(text: str) -> str | None:
    """A name given in answer to "what is your name?" ("it's mary o'brien", "m a r y")."""
    words = [w for w in _name_words(text) if w not in _FILLERS]
    changed = True
    while changed and words:
        changed = False
        plain = tuple(w.replace("'", "") for w in words)
        for lead in sorted(_NAME_LEADS, key=len, reverse=True):
            if plain[: len(lead)] == lead and len(words) > len(lead):
                words = words[len(lead) :]
                changed = True
                break
    while words and words[-1] in _NAME_TAIL:
        words.pop()
    # Spelled letters: "m a r y" -> "mary"; "mary m a r y" keeps one "mary".
    merged: list[str] = []
    run: list[str] = []
    for w in [*words, ""]:
        if len(w) == 1 and w.isalpha():
            run.append(w)
            continue
        if len(run) >= 2:
            spelled = "".join(run)
            if not merged or merged[-1] != spelled:
                merged.append(spelled)
        elif run:
            merged.extend(run)
        run = []
        if w:
            merged.append(w)
    words = merged
    if not 1 <= len(words) <= 4:
        return None
    if any(w in _NOT_NAME or not re.fullmatch(r"[^\W\d_]+(['-][^\W\d_]+)*", w) for w in words):
        return None
    if all(len(w) == 1 for w in words):
        return None
    return " ".join(_name_case(w) for w in words)


def _find_person(words: Sequence[str], today: date) -> list[_Found]:
    """A name only where the caller gives it: "my name is ...", "this is ... calling"."""
    out = []
    for i in range(len(words)):
        strong = words[i : i + 3] == ["my", "name", "is"] or words[i : i + 2] in (
            ["me", "llamo"],
            ["name", "is"],
        )
        weak = words[i : i + 2] == ["this", "is"] or words[i] in ("im",)
        if not (strong or weak):
            continue
        j = i + (
            3
            if words[i : i + 3] == ["my", "name", "is"]
            else 2
            if strong or words[i] == "this"
            else 1
        )
        k = j
        while k < len(words) and k - j < 3 and words[k] not in _NOT_NAME and words[k].isalpha():
            k += 1
        if k == j:
            continue
        if weak and k < len(words) and words[k] not in _NOT_NAME:
            continue
        if weak and k == len(words) and k - j < 2:
            continue  # "this is terrible": a lone word after a weak cue is not taken as a name
        name = parse_person_name(" ".join(words[j:k]))
        if name:
            out.append(_Found("person", name, j, k, 5))
    return out
