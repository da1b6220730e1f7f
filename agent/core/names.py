"""How two spellings of a person's name are compared.

A caller's spelling differs from the chart's in case, accents, punctuation and spacing ("Ann
O'Neil", "ann oneil", "Anne-Marie Núñez", "anne marie nunez"); digits are kept (a suffix such as
"John Smith 3rd" is part of the record). The patient store's blind index is built from this form,
so every directory (the database's and the demo's in-memory one) must match names the same way.
"""

from __future__ import annotations

import re
import unicodedata


def normalise_name(name: str) -> str:
    """Case, accents, apostrophes, other punctuation and spacing folded away; digits kept."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = re.findall(r"[a-z0-9]+", letters.lower().replace("'", "").replace("\u2019", ""))
    return " ".join(words)
