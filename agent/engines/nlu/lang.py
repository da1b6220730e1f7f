"""Which language a caller spoke: English or Spanish, from the words alone.

Nothing is downloaded and nothing is trained: callers of a US practice speak one of two languages,
and the commonest short words of each ("the", "my", "is" / "el", "mi", "es") separate them well even
in the three-word turns of a phone call. Spanish-only letters (ñ, ¿, ¡, accented vowels) count
extra because they cannot come from English text. Ties go to English, the practice's default.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Lang = Literal["en", "es"]

# Frequent function words, excluding the ones both languages share ("a", "no", "me", "he"…).
_EN = frozenset(
    """the my i i'm im is are was have has had to and of in on it this that for with can can't
    cant you your do don't dont need want would like please be been at not what when how why
    about will he's she's his her they we our an or so if just get got call appointment doctor
    yes yeah hi hello thank thanks""".split()
)
_ES = frozenset(
    """el la los las mi mis es está esta estoy son un una y de del en que por para con sin se
    lo le su sus tengo tiene quiero necesito puede pueden hola gracias si favor muy
    cita medico doctora dolor hijo hija esposo esposa manana hoy llamar hablar usted ya
    pero como cuando donde cual hay al puedo bien duele voy fiebre pecho receta ayuda nada""".split()
)
"""Written without accents: words are compared with their accents folded, because Whisper and
callers' keyboards often drop them ("esta" for "está"). Not "son": English callers say "my son"."""
_ES_ONLY_CHARS = re.compile(r"[ñ¿¡áéíóú]")
_WORD = re.compile(r"[a-záéíóúüñ']+")


def detect(text: str) -> Lang:
    """``es`` when the text reads as Spanish, else ``en`` (also for empty or unknown text)."""
    lowered = unicodedata.normalize("NFC", text.lower())
    words = _WORD.findall(lowered)
    en = sum(1 for w in words if w in _EN)
    es = sum(1 for w in words if _strip_accents(w) in _ES)
    es += 2 * len(_ES_ONLY_CHARS.findall(lowered))
    return "es" if es > en else "en"


def _strip_accents(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
