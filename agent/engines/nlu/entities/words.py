"""The shared vocabulary of the entity rules: number, month and function words, and the folded
tokens every rule reads. Tables that only one kind of entity needs live with that entity."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.core.negation import Folded, fold

_UNITS_EN = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS_EN = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_ORDINALS_EN = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_NUM_ES = {
    "cero": 0, "uno": 1, "un": 1, "una": 1, "primero": 1, "dos": 2, "tres": 3, "cuatro": 4,
    "cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12,
    "trece": 13, "catorce": 14, "quince": 15, "dieciseis": 16, "diecisiete": 17, "dieciocho": 18,
    "diecinueve": 19, "veinte": 20, "veintiuno": 21, "veintidos": 22, "veintitres": 23,
    "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26, "veintisiete": 27, "veintiocho": 28,
    "veintinueve": 29, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60,
    "setenta": 70, "ochenta": 80, "noventa": 90, "cien": 100, "ciento": 100, "doscientos": 200,
    "trescientos": 300, "cuatrocientos": 400, "quinientos": 500, "seiscientos": 600,
    "setecientos": 700, "ochocientos": 800, "novecientos": 900,
}  # fmt: skip
# "may", "mar" and "jun" are also ordinary words; a month needs a day number next to it.
_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12,
    "dec": 12, "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
}  # fmt: skip


# Words that are never part of a name (function words and the vocabulary of a call).
_NOT_NAME = frozenset(
    """a an the and or but if so to of in on at for from with by about as is are was were be been
    am im i me my mine you your he she it its we they them his her our their this that these those
    here there what when where who why how yes no not yeah yep nope okay ok please thanks thank hi
    hello hey um uh er ah oh well just calling call called speaking need needs want wants wanted
    would like could can cant will have has had having do does did get got make made schedule
    appointment appointments refill prescription doctor dr nurse office today tomorrow morning
    afternoon evening week next this last patient son daughter mother father wife husband baby
    child calling phone number pharmacy medication medicine pain help sick feel feeling going
    trying try looking check up about again also still some any all one two three four five six
    seven eight nine ten sorry sure right wrong correct fine good bad new old see said say saying
    name names called llamo llama soy mi es el la los las de del y o que por para con en un una
    se me le lo su really very bad terrible great awful urgent important serious crazy weird
    strange kind too quite pretty actually just born birth date almost nearly completely totally
    running out low worried concerned afraid scared due ready done""".split()
)


@dataclass(frozen=True)
class _Tok:
    word: str
    start: int
    """Offsets in the folded text."""
    end: int


# Hesitations that ASR writes out and that would otherwise split "next uh tuesday". Not "oh" (a
# spoken zero) nor "like"/"so" (they can carry meaning).
_HESITATIONS = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "ah", "hmm", "mm", "eh"})


def _tokens(folded: Folded) -> list[_Tok]:
    return [
        _Tok(m.group(), m.start(), m.end())
        for m in re.finditer(r"\S+", folded.text)
        if m.group() not in _HESITATIONS
    ]


def _words(text: str) -> list[str]:
    return [w for w in fold(text).text.split() if w not in _HESITATIONS]


_DIGIT_WORDS = {**{k: str(v) for k, v in _UNITS_EN.items() if v <= 9}}
