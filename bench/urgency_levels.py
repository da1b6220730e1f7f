"""The urgency model's levels, on held-out protocol examples: the whole protocol reader (signs,
protocol minimums, the model) on the sentences whose urgency is known, for several pairs of
``EMERGENCY_LEVEL`` / ``URGENT_LEVEL``. Every fifth example of each protocol is kept out of
training (``bench.protocols._split``); the blind set is never read here.

    BENCH_ONLY=urgency_levels python -m bench         # about 5 minutes on 2 cores
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.engines.nlu import protocol_reading, train
from agent.engines.nlu.protocol_files import all_protocols, current_book
from agent.engines.nlu.topics import NONE, E5Embedder, EmbeddingTopics, Vector, training_set
from bench.protocols import _split

LEVELS = ((2.0, 2.0), (0.9, 0.95), (0.7, 0.85), (0.6, 0.75), (0.5, 0.7))
"""(911, urgent) pairs; 2.0: the model never raises a turn."""


class _Cached:
    """Each sentence embedded once for the fit and every reading."""

    def __init__(self, inner: E5Embedder) -> None:
        self.inner = inner
        self.cache: dict[str, Vector] = {}

    def embed(self, texts: Sequence[str]) -> Vector:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for i in range(0, len(missing), 256):
            chunk = missing[i : i + 256]
            for text, vector in zip(chunk, self.inner.embed(chunk), strict=True):
                self.cache[text] = vector
        return np.stack([self.cache[t] for t in texts])


def run(quick: bool = False) -> dict[str, Any]:
    ordinary = sorted({t for t, intent in train.expand(train.load_data()) if intent != "symptoms"})
    data = training_set(all_protocols(), ordinary)
    fit_on, held = _split(data)
    rows = [
        (text, disposition)
        for text, topic, disposition in zip(held.texts, held.topics, held.dispositions, strict=True)
        if disposition is not None and topic != NONE
    ]
    if quick:
        rows = rows[::10]
        fit_on = type(fit_on)(fit_on.texts[::6], fit_on.topics[::6], fit_on.dispositions[::6])
    embedder = _Cached(E5Embedder(threads=2))
    topics = EmbeddingTopics.fit(fit_on, embedder)
    reader = protocol_reading.ProtocolReader(current_book(()), topics)
    counts = {
        d: sum(1 for _, x in rows if x == d) for d in ("911", "see_now", "same_day", "routine")
    }
    saved = (protocol_reading.EMERGENCY_LEVEL, protocol_reading.URGENT_LEVEL)
    results = []
    try:
        for emergency, urgent in LEVELS:
            protocol_reading.EMERGENCY_LEVEL, protocol_reading.URGENT_LEVEL = emergency, urgent
            hit = dict.fromkeys(counts, 0)
            for text, disposition in rows:
                flags = reader.read(text).flags
                if disposition == "911":
                    hit["911"] += any(f.urgency == "emergency" for f in flags)
                else:
                    hit[disposition] += bool(flags)
            results.append(
                {
                    "levels": [emergency, urgent],
                    "emergency_recall": round(hit["911"] / max(counts["911"], 1), 3),
                    "see_now_raised": round(hit["see_now"] / max(counts["see_now"], 1), 3),
                    "same_day_raised": round(hit["same_day"] / max(counts["same_day"], 1), 3),
                    "routine_raised": round(hit["routine"] / max(counts["routine"], 1), 3),
                }
            )
    finally:
        protocol_reading.EMERGENCY_LEVEL, protocol_reading.URGENT_LEVEL = saved
    return {"held_out": counts, "in_force": list(saved), "levels": results}
