"""Words heard as other words that sound the same: a coarse English sound key and a lookup.

Speech to text on a phone line does not only get letters wrong ("passing cloth" for "passing
clots", which ``agent.core.triage`` handles as one edit). It also hears one long word as two short
ones that sound like it ("swallowed" heard "swole with") or as one word spelled quite differently
("bleeding" as "bleating"). Spelling cannot see those; sound can. ``sound_key`` reduces English
letters to a consonant skeleton in the manner of Metaphone, and ``SoundAlikes`` finds, in a folded
text, the word or pair of adjacent words whose key is the key of a known word, or one sound away
from it.

It is deliberately coarse, so its callers keep it on a short leash: only long words, the first
sound must agree, and triage only accepts such a word inside a multi-word phrase whose other words
were heard as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agent.core.negation import Folded

_VOWELS = "aeiouy"
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^(kn|gn|pn)", "n"),
        (r"^wr", "r"),
        (r"^ps", "s"),
        (r"^x", "s"),
        (r"^wh", "w"),
        (r"mb$", "m"),
        (r"x", "ks"),
        (r"tch", "9"),
        (r"sch", "sk"),
        (r"(ch|sh)", "9"),
        (r"th", "0"),
        (r"ph", "f"),
        (r"ck", "k"),
        (r"dg", "j"),
        (r"(?<=.)gh", ""),
        (r"c(?=[eiy])", "s"),
        (r"[cq]", "k"),
        (r"z", "s"),
        (r"d", "t"),
        (r"v", "f"),
        # w, h and y are sounds only before a vowel ("swallow" vs "saw").
        (r"[why](?![aeiou])", ""),
    )
)


def sound_key(word: str) -> str:
    """The sound key of one word or of several written together (``"swole with"``): a leading
    vowel as ``a``, then the consonant sounds, repeats merged (``0`` is "th", ``9`` "sh" or
    "ch"). ``""`` for no letters."""
    letters = "".join(c for c in word.lower() if "a" <= c <= "z")
    if not letters:
        return ""
    for rx, replacement in _RULES:
        letters = rx.sub(replacement, letters)
    if not letters:
        return ""
    head = "a" if letters[0] in _VOWELS else letters[0]
    body = [c for c in letters[1:] if c not in _VOWELS]
    out = [head]
    for c in body:
        if c != out[-1]:
            out.append(c)
    return "".join(out)


def within_one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by at most one letter changed, added or dropped."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]


# Sounds a phone line blurs into each other: lips (b, f/v, p), the back of the mouth (k, g, j),
# t and th, the nasals, s and sh, and a glide heard or lost before a vowel ("all greens" for
# "walgreens"). Swapping one for another costs half a sound.
_NEAR_SOUNDS = ("bfp", "kgj", "t0", "mn", "s9", "awhy")


def sound_distance(a: str, b: str) -> float:
    """Edit distance between two sound keys: a sound added, dropped or changed costs 1, changed
    for a near one (``_NEAR_SOUNDS``) 0.5. For names heard whole, where ``within_one_edit`` is too
    strict ("cb gas" for "CVS" is a near sound and an added one)."""
    prev = [float(j) for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        cur = [float(i)] + [0.0] * len(b)
        for j in range(1, len(b) + 1):
            x, y = a[i - 1], b[j - 1]
            change = 0.0 if x == y else 0.5 if any(x in g and y in g for g in _NEAR_SOUNDS) else 1.0
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + change)
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class Respelling:
    """A text with one word or pair of words replaced by the known word they sound like."""

    folded: Folded
    """The respelled text, its characters mapped back to the original ones."""
    start: int
    end: int
    """Where the known word sits in ``folded.text``."""
    word: str
    heard: str


class SoundAlikes:
    """The known words (say, the long words of the red-flag phrases) and a lookup by sound."""

    MIN_LETTERS = 6
    """Shorter words have too many neighbours by sound ("pain": "pan", "pine", "bang")."""
    MIN_KEY = 4
    """A known word, and what was heard for it, need this many sounds, so that one of them may be
    misheard."""
    MAX_LENGTH_GAP = 3
    """Heard letters may be this many more or fewer than the known word's."""

    def __init__(self, words: Iterable[str]) -> None:
        self._by_key: dict[str, list[tuple[str, str]]] = {}  # key variant -> (word, its key)
        self.words = frozenset(
            w
            for w in words
            if len(w) >= self.MIN_LETTERS and w.isascii() and w.isalpha() and w.islower()
        )
        for w in sorted(self.words):
            key = sound_key(w)
            if len(key) >= self.MIN_KEY:
                for variant in _one_deletion_and_self(key):
                    self._by_key.setdefault(variant, []).append((w, key))

    def sounds_like(self, heard: str) -> tuple[str, ...]:
        """The known words that ``heard`` (one word, or two with a space) sounds like, unless
        ``heard`` is itself a known word. Their key and ``heard``'s differ by one sound at most
        (the first sound agreeing) and their spellings by ``MAX_LENGTH_GAP`` letters at most."""
        letters = heard.replace(" ", "")
        if heard in self.words or not letters.isalpha():
            return ()
        key = sound_key(heard)
        if len(key) < self.MIN_KEY:
            return ()
        found: set[str] = set()
        for variant in _one_deletion_and_self(key):
            for w, wkey in self._by_key.get(variant, ()):
                if (
                    wkey[0] == key[0]
                    and abs(len(letters) - len(w)) <= self.MAX_LENGTH_GAP
                    and within_one_edit(key, wkey)
                ):
                    found.add(w)
        return tuple(sorted(found))

    def respellings(self, folded: Folded) -> Iterator[Respelling]:
        """Each way of replacing one word, or two adjacent words, of ``folded`` by the known word
        it sounds like; the other words are left as they were heard."""
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", folded.text)]
        for i in range(len(spans)):
            for n in (1, 2):
                if i + n > len(spans):
                    break
                start, end = spans[i][0], spans[i + n - 1][1]
                heard = folded.text[start:end]
                for word in self.sounds_like(heard):
                    yield _respell(folded, start, end, word, heard)


def _one_deletion_and_self(key: str) -> set[str]:
    return {key} | {key[:i] + key[i + 1 :] for i in range(len(key))}


def _respell(folded: Folded, start: int, end: int, word: str, heard: str) -> Respelling:
    """``folded`` with ``text[start:end]`` replaced by ``word``, each of its letters mapped to the
    heard words' first character and the last to their last, so ``original`` gives what was
    heard."""
    first, last = folded.origin[start], folded.origin[end - 1]
    origin = folded.origin[:start] + tuple(first for _ in word[:-1]) + (last,) + folded.origin[end:]
    text = folded.text[:start] + word + folded.text[end:]
    return Respelling(
        folded=Folded(text=text, origin=origin, source=folded.source),
        start=start,
        end=start + len(word),
        word=word,
        heard=heard,
    )
