"""Pharmacies: a chain's name and, when said, where the branch is ("cvs on main street")."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

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
    "kaiser pharmacy": "Kaiser Pharmacy", "farmacia": "Farmacia",
}  # fmt: skip
_STREET_WORDS = frozenset(
    "street st avenue ave road rd boulevard blvd drive dr lane ln way highway hwy parkway pkwy pike "
    "plaza square court ct place pl circle route".split()
)
_MAX_CHAIN_WORDS = max(len(k.split()) for k in PHARMACY_CHAINS)


def _find_pharmacies(words: Sequence[str], today: date) -> list[_Found]:
    out = []
    for i in range(len(words)):
        for n in range(min(_MAX_CHAIN_WORDS, len(words) - i), 0, -1):
            key = " ".join(words[i : i + n])
            if key in PHARMACY_CHAINS:
                if key == "target" and not _pharmacy_context(words, i, i + n):
                    continue  # "target" is an ordinary word
                j = i + n
                if j < len(words) and words[j] in ("pharmacy", "drugstore", "store"):
                    j += 1
                location, end = _location(words, j)
                first = i - 1 if i > 0 and words[i - 1] == "the" else i
                out.append(
                    _Found(
                        "pharmacy",
                        {"chain": PHARMACY_CHAINS[key], "location": location},
                        first,
                        end,
                        5,
                    )
                )
                break
    return out


def _pharmacy_context(words: Sequence[str], first: int, end: int) -> bool:
    near = set(words[max(0, first - 4) : end + 3])
    return bool(near & {"pharmacy", "prescription", "refill", "send", "sent", "pick", "call"})


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
