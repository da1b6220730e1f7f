"""Pharmacies: a chain's name, or one of the practice's own (``practice.pharmacies``), and where
the branch is when said ("cvs on main street").

Speech to text on a phone line mangles pharmacy names ("CVS" heard "CB gas", "Walgreens" "all
greens", "Rite Aid" "write aid"), and reading that back ("sent to CB gas") tells the caller we did
not understand. So a name is also matched by sound (``agent.core.soundalike``): the heard words'
sound key against each name's, with near sounds cheap, and their spelling too, so that one cue
alone cannot make a match. An acronym is compared as it is said, by its letters' names ("see vee
ess"), and is only taken from words that were heard spelled ("cb", "vs"). Sound alone is weak
evidence, so such a match needs a pharmacy context: after "pharmacy" or "send it to", before a
street ("on elm street"), or as nearly the whole answer to the pharmacy question.

Value: ``{"chain": name, "location": where or None, "known": True}``; for one of the practice's
own, ``chain`` and ``location`` are its configured name and street, whatever was heard. A
pharmacy that was plainly meant but matched nothing ("Smith's pharmacy", "the pharmacy on Elm
Street") is ``{"chain": None, "location": where or None, "known": False}``: the dialog should ask
the caller to spell it rather than read back what was heard.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from agent.core.negation import fold
from agent.core.soundalike import sound_distance, sound_key
from agent.engines.nlu.entities.candidates import _Found
from agent.engines.nlu.entities.words import _NOT_NAME

PHARMACY_CHAINS = {
    "cvs": "CVS", "c v s": "CVS", "cvs caremark": "CVS Caremark", "caremark": "CVS Caremark",
    "walgreens": "Walgreens", "walgreen": "Walgreens", "wal greens": "Walgreens",
    "rite aid": "Rite Aid", "right aid": "Rite Aid", "riteaid": "Rite Aid", "walmart": "Walmart",
    "wal mart": "Walmart", "costco": "Costco", "kroger": "Kroger", "target": "Target",
    "publix": "Publix", "safeway": "Safeway", "heb": "H-E-B", "h e b": "H-E-B", "meijer": "Meijer",
    "wegmans": "Wegmans", "duane reade": "Duane Reade", "sams club": "Sam's Club",
    "albertsons": "Albertsons", "giant eagle": "Giant Eagle", "harris teeter": "Harris Teeter",
    "hy vee": "Hy-Vee", "hyvee": "Hy-Vee", "winn dixie": "Winn-Dixie", "food lion": "Food Lion",
    "stop and shop": "Stop & Shop", "shoprite": "ShopRite", "shop rite": "ShopRite",
    "vons": "Vons", "ralphs": "Ralphs", "king soopers": "King Soopers", "jewel osco": "Jewel-Osco",
    "osco": "Osco", "express scripts": "Express Scripts", "optum": "Optum Rx",
    "optum rx": "Optum Rx", "amazon pharmacy": "Amazon Pharmacy", "health mart": "Health Mart",
    "good neighbor pharmacy": "Good Neighbor Pharmacy", "medicine shoppe": "Medicine Shoppe",
    "kaiser pharmacy": "Kaiser Pharmacy",
}  # fmt: skip
"""Chains by their folded names. "farmacia" is not one: "a la farmacia" is "to the pharmacy"."""
_STREET_WORDS = frozenset(
    "street st avenue ave road rd boulevard blvd drive dr lane ln way highway hwy parkway pkwy pike "
    "plaza square court ct place pl circle route".split()
)
_PHARMACY_WORDS = frozenset("pharmacy pharmacies drugstore drugstores farmacia".split())
_GENERIC_WORDS = _PHARMACY_WORDS | frozenset("drug drugs store apothecary chemist rx".split())
"""Words of a pharmacy's name that do not tell one from another ("Hilltop Drug")."""
_CUES = frozenset("pharmacy drugstore farmacia send sent refill refilled fill filled pick".split())
"""Words shortly before a name that make it a pharmacy's ("send it to the ...")."""
_FILLERS = frozenset("the a at to its it is in on my please one la el en".split())
"""Words around a short answer to the pharmacy question ("it's the all greens")."""
_VAGUE = frozenset(
    "mail order new same usual regular local other old different closest nearest nearby "
    "hospital retail specialty compounding that this".split()
)
"""Words before "pharmacy" that say which of the caller's, not what it is called."""
_LETTER_NAMES = dict(
    zip(
        "abcdefghijklmnopqrstuvwxyz",
        "ay bee see dee ee ef jee aitch eye jay kay el em en oh pee cue ar ess tee you vee "
        "doubleyou ex why zee".split(),
        strict=True,
    )
)
SOUND_THRESHOLD = 0.75
"""Mean of the sound-key and spelling similarities a name heard by sound must reach."""
SPELLED_THRESHOLD = 0.6
"""The same for an acronym heard as letters ("cb gas" for CVS): spelling out a name at all is
evidence of its own, and letter names blur into each other more than words do."""
_MAX_WINDOW = 3
_AT = (["on"], ["in"], ["at"], ["by"], ["near"])


@dataclass(frozen=True)
class _Name:
    value: dict[str, object]
    words: tuple[str, ...]
    """Folded, as matched exactly."""
    spoken: str
    """The letters as said: an acronym by its letters' names."""
    key: str
    letters: int
    """For an acronym, how many letters (and so syllables) it is said as; 0 for a word."""


def _is_spelled(word: str) -> bool:
    """A word heard as letters: ASR writes a spelled name as short vowel-less words ("cb")."""
    return len(word) <= 4 and not any(c in "aeiouy" for c in word)


def _spoken(words: Sequence[str]) -> str:
    return "".join(
        "".join(_LETTER_NAMES[c] for c in w if c in _LETTER_NAMES) if _is_spelled(w) else w
        for w in words
    )


def _name(value: dict[str, object], words: Sequence[str], acronym: str = "") -> _Name:
    spoken = _spoken(list(acronym) if acronym else words)
    return _Name(value, tuple(words), spoken, sound_key(spoken), len(acronym))


def _chain_names() -> list[_Name]:
    names = []
    for key, chain in PHARMACY_CHAINS.items():
        letters = "".join(c for c in chain if c.isalpha())
        acronym = letters.lower() if letters.isupper() and len(letters) <= 4 else ""
        names.append(_name({"chain": chain, "location": None}, key.split(), acronym))
    return names


_CHAIN_NAMES = _chain_names()


def local_pharmacy(entry: str) -> tuple[str, str]:
    """``"Main Street Pharmacy, 12 Main St"`` -> ``("Main Street Pharmacy", "12 Main St")``: the
    name before the first comma, the street after it (``""`` when none)."""
    name, _, street = entry.partition(",")
    return name.strip(), street.strip()


@lru_cache(maxsize=8)
def _local_names(pharmacies: tuple[str, ...]) -> tuple[list[_Name], list[_Name]]:
    """The practice's pharmacies by full name (matched anywhere) and by the words that tell it
    from others (matched in a pharmacy context, like a sound-alike)."""
    full, core = [], []
    for entry in pharmacies:
        name, street = local_pharmacy(entry)
        words = fold(name).text.split()
        if not words:
            continue
        value: dict[str, object] = {"chain": name, "location": street or None}
        full.append(_name(value, words))
        own = [w for w in words if w not in _GENERIC_WORDS]
        if own and own != words:
            core.append(_name(value, own))
    return full, core


def _pharmacy_finder(
    pharmacies: Sequence[str] = (),
) -> Callable[[Sequence[str], date], list[_Found]]:
    """The pharmacy finder for a practice whose own pharmacies are ``practice.pharmacies``."""
    full, core = _local_names(tuple(pharmacies))

    def find(words: Sequence[str], today: date) -> list[_Found]:
        return _find(words, full, core)

    return find


def _find_pharmacies(words: Sequence[str], today: date) -> list[_Found]:
    return _find(words, [], [])


def _find(words: Sequence[str], full: Sequence[_Name], core: Sequence[_Name]) -> list[_Found]:
    out = []
    exact = {nm.words: nm for nm in [*_CHAIN_NAMES, *full]}  # the practice's own name wins
    own = {nm.words: nm for nm in core}
    by_sound = [*core, *full, *_CHAIN_NAMES]
    longest = max(len(w) for w in exact)
    for i in range(len(words)):
        for n in range(min(longest, len(words) - i), 0, -1):
            hit = exact.get(tuple(words[i : i + n]))
            if hit is not None and hit.value["chain"] == "Target":
                if not _target_context(words, i, i + n):
                    continue  # "target" is an ordinary word
            if hit is not None:
                out.append(_found(words, hit, i, i + n, 5))
                break
        else:
            for n in range(1, min(_MAX_WINDOW, len(words) - i) + 1):
                window = words[i : i + n]
                if not _could_be_name(window) or not _context(words, i, i + n):
                    continue
                hit = own.get(tuple(window)) or _sounds_like(window, by_sound)
                if hit is not None:
                    out.append(_found(words, hit, i, i + n, 4))
    out.extend(_unknown(words, full))
    return out


def _found(words: Sequence[str], name: _Name, i: int, j: int, priority: int) -> _Found:
    while j < len(words) and words[j] in _GENERIC_WORDS and j - i < len(name.words) + 2:
        j += 1  # "walmart pharmacy", "hilltop drug store"
    heard, end = _location(words, j)
    first = i - 1 if i > 0 and words[i - 1] in ("the", "la", "el") else i
    value = dict(name.value)
    if value["location"] is None:
        value["location"] = heard
    value["known"] = True
    return _Found("pharmacy", value, first, end, priority)


def _could_be_name(window: Sequence[str]) -> bool:
    """Heard words that might be a misheard name: not a function word at the end ("cb gas",
    "all greens"), nothing that only joins words, no number, not only a street word."""
    if window[-1] in _NOT_NAME or any(w in _FILLERS or w in _GENERIC_WORDS for w in window):
        return False
    if all(w in _STREET_WORDS for w in window):
        return False  # "route", "way": a street, unless with more ("save way")
    return all(w.isalpha() for w in window)


def _sounds_like(window: Sequence[str], names: Sequence[_Name]) -> _Name | None:
    spoken = _spoken(window)
    key = sound_key(spoken)
    spelled = any(_is_spelled(w) for w in window)
    if len(key) < 2:
        return None
    best: tuple[float, _Name] | None = None
    for nm in names:
        if nm.letters and (not spelled or _syllables(window) != nm.letters):
            # An acronym is heard as letters, a syllable each: never as a word ("six" is not
            # CVS), nor with more after it ("cbs news").
            continue
        if len(nm.key) < 3 and not _word_for_word(window, nm):
            continue  # too few sounds to tell "rite aid" from "rated" or "route"
        if nm.key[0] != key[0] and sound_distance(nm.key[0], key[0]) > 0.5:
            continue
        by_sound = 1 - sound_distance(key, nm.key) / max(len(key), len(nm.key))
        by_spelling = difflib.SequenceMatcher(None, spoken, nm.spoken).ratio()
        score = (by_sound + by_spelling) / 2
        threshold = SPELLED_THRESHOLD if nm.letters else SOUND_THRESHOLD
        if score >= threshold and (best is None or score > best[0]):
            best = (score, nm)
    return best[1] if best else None


def _syllables(window: Sequence[str]) -> int:
    """A spelled word's letters, another word's vowel groups ("cb gas": 3)."""
    return sum(
        len(w) if _is_spelled(w) else len(re.findall(r"[aeiouy]+", w.removesuffix("e")) or [w])
        for w in window
    )


def _word_for_word(window: Sequence[str], name: _Name) -> bool:
    """Two words or more, each sounding like the name's word in its place ("write aid")."""
    return len(window) == len(name.words) >= 2 and all(
        sound_distance(sound_key(w), sound_key(n)) <= 0.5
        for w, n in zip(window, name.words, strict=True)
    )


def _context(words: Sequence[str], first: int, end: int) -> bool:
    """Whether ``words[first:end]``, heard where a pharmacy's name would be, may be taken for one
    by sound: after a pharmacy cue, before "pharmacy" or a street, or as the whole of a short
    answer ("it's the cb gas")."""
    if set(words[max(0, first - 5) : first]) & _CUES:
        return True
    if end < len(words) and words[end] in _GENERIC_WORDS:
        return True
    if _street_after(words, end):
        return True
    if any(
        words[k : k + 2] == ["the", "one"] and words[k + 2 : k + 3] in _AT
        for k in range(len(words))
    ):
        return True  # "the cb gas, the one on main"
    rest = [*words[:first], *words[end:]]
    return len(words) <= 6 and all(w in _FILLERS or w in _GENERIC_WORDS for w in rest)


def _target_context(words: Sequence[str], first: int, end: int) -> bool:
    near = set(words[max(0, first - 4) : end + 3])
    return bool(near & {"pharmacy", "prescription", "refill", "send", "sent", "pick", "call"})


def _street_after(words: Sequence[str], j: int) -> bool:
    """ "on elm street", "on route 9": a place that is plainly a street, not "on tuesday"."""
    location, end = _location(words, j)
    return location is not None and (
        words[end - 1] in _STREET_WORDS or (end >= 2 and words[end - 2] in ("route", "highway"))
    )


def _unknown(words: Sequence[str], full: Sequence[_Name]) -> list[_Found]:
    """A pharmacy plainly meant that matched no name: "smiths pharmacy", "the pharmacy on elm
    street". Lowest priority, so any name or date in the same words wins."""
    out = []
    for i, w in enumerate(words):
        if w not in _PHARMACY_WORDS and words[i : i + 2] != ["drug", "store"]:
            continue
        j = i + (2 if w == "drug" else 1)
        first = i
        while (
            first > 0
            and i - first < 3
            and words[first - 1].isalpha()
            and words[first - 1] not in _NOT_NAME
            and words[first - 1] not in _VAGUE
        ):
            first -= 1
        location, end = _location(words, j)
        # Not the words after "farmacia": "la farmacia dice que..." names nothing.
        named = first < i
        if not named and not _street_after(words, j):
            continue
        street = location if not named else None
        local = next((nm for nm in full if street and _same_street(nm, street)), None)
        if local is not None:
            out.append(_found(words, local, i, j, 2))
            continue
        if first > 0 and words[first - 1] in ("the", "la", "el"):
            first -= 1
        out.append(
            _Found("pharmacy", {"chain": None, "location": location, "known": False}, first, end, 1)
        )
    return out


def _same_street(name: _Name, heard: str) -> bool:
    street = name.value["location"]
    if not isinstance(street, str):
        return False
    said = fold(street).text.split()
    if said and said[0].isdigit():
        said = said[1:]  # the house number, which callers do not say
    ends = {"st": "street", "ave": "avenue", "rd": "road", "dr": "drive", "ln": "lane"}
    return [ends.get(w, w) for w in said] == [ends.get(w, w) for w in heard.split()]


def _location(words: Sequence[str], j: int) -> tuple[str | None, int]:
    """ "on main street", "on 5th avenue", "in springfield", "at the mall": up to 4 words."""
    if j >= len(words) or words[j] not in ("on", "in", "at", "by", "near", "en"):
        return None, j
    k = j + 1
    if k < len(words) and words[k] == "the":
        k += 1
    start = k
    while k < len(words) and k - start < 4:
        if words[k] in _STREET_WORDS:
            k += 1
            if k < len(words) and words[k].isdigit() and words[k - 1] in ("route", "highway"):
                k += 1  # "route 9"
            break
        if words[k] in _NOT_NAME and words[k] not in ("main",):
            break
        k += 1
    if k == start:
        return None, j
    return " ".join(words[start:k]), k
