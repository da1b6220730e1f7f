"""The triage topic model: multilingual-e5-small embeddings + softmax against a spaCy bag of words.

Held-out protocol examples (every fifth example of each protocol, and of the ordinary requests,
kept out of training): topic accuracy of each model, and for the embedding model how the
"close to a yes-example" similarity threshold trades disposition recall against raising plain
examples. Then the blind set's protocol labels (``tests/data/triage_blind``), topic accuracy only:
the blind set is reported, never tuned on.

    BENCH_ONLY=protocols python -m bench
"""

from __future__ import annotations

import time
from typing import Any

from agent.core.protocols import DISPOSITIONS
from agent.engines.nlu import train
from agent.engines.nlu.evaluate import BLIND_SET, load_set
from agent.engines.nlu.protocol_files import all_protocols
from agent.engines.nlu.topics import (
    NONE,
    E5Embedder,
    EmbeddingTopics,
    SpacyTopics,
    TrainingSet,
    training_set,
)

THRESHOLDS = (0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96)


def _split(data: TrainingSet) -> tuple[TrainingSet, TrainingSet]:
    seen: dict[str, int] = {}
    train_i, held_i = [], []
    for i, topic in enumerate(data.topics):
        n = seen.get(topic, 0)
        seen[topic] = n + 1
        (held_i if n % 5 == 4 else train_i).append(i)

    def pick(idx: list[int]) -> TrainingSet:
        return TrainingSet(
            tuple(data.texts[i] for i in idx),
            tuple(data.topics[i] for i in idx),
            tuple(data.dispositions[i] for i in idx),
        )

    return pick(train_i), pick(held_i)


def run(quick: bool = False) -> dict[str, Any]:
    ordinary = sorted({t for t, intent in train.expand(train.load_data()) if intent != "symptoms"})
    data = training_set(all_protocols(), ordinary)
    fit_on, held = _split(data)
    if quick:
        fit_on = TrainingSet(fit_on.texts[::6], fit_on.topics[::6], fit_on.dispositions[::6])
        held = TrainingSet(held.texts[::6], held.topics[::6], held.dispositions[::6])
    embedder = E5Embedder(threads=2)
    out: dict[str, Any] = {"train_examples": len(fit_on.texts), "held_out": len(held.texts)}

    started = time.perf_counter()
    e5 = EmbeddingTopics.fit(fit_on, embedder)
    out["e5_train_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    bow = SpacyTopics.fit(fit_on, epochs=4 if quick else 12)
    out["bow_train_s"] = round(time.perf_counter() - started, 1)

    guesses = e5.guess_many(list(held.texts))
    out["held_out_topic_accuracy"] = {
        "e5": _accuracy([g.protocol or NONE for g in guesses], held.topics),
        "bow": _accuracy([bow.guess(t).protocol or NONE for t in held.texts], held.topics),
    }
    # The disposition a yes-example of a protocol in the running gives, by threshold.
    curve = []
    for threshold in THRESHOLDS:
        raised_yes = raised_plain = yes = plain = 0
        for g, topic, disposition in zip(guesses, held.topics, held.dispositions, strict=True):
            running = [p for p, s in g.ranked[:3] if p != NONE and s >= 0.10] or [topic]
            near = e5.nearest_in(g, running)
            hit = near is not None and near.disposition is not None and near.similarity >= threshold
            if disposition is not None:
                yes += 1
                assert near is None or hit is False or near.disposition is not None
                at_least = hit and DISPOSITIONS.index(near.disposition) <= DISPOSITIONS.index(  # type: ignore[union-attr, arg-type]
                    disposition
                )
                raised_yes += bool(at_least)
            else:
                plain += 1
                raised_plain += bool(hit)
        curve.append(
            {
                "threshold": threshold,
                "yes_examples_raised_at_least_as_labelled": round(raised_yes / max(yes, 1), 3),
                "plain_examples_and_ordinary_requests_raised": round(
                    raised_plain / max(plain, 1), 3
                ),
            }
        )
    out["e5_disposition_by_threshold"] = curve

    # The urgency head on held-out sentences of known urgency, by threshold: recall of the
    # 911 yes-examples (as emergencies) and of all yes-examples (as at least urgent), against
    # routine examples and ordinary requests raised.
    known = [
        (g, d or "routine")
        for g, t, d in zip(guesses, held.topics, held.dispositions, strict=True)
        if d is not None or t == NONE
    ]
    levels = []
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        e_hit = e_n = u_hit = u_n = r_raised = r_n = 0
        for g, d in known:
            emergency = g.level("911")
            urgent = emergency + g.level("see_now") + g.level("same_day")
            if d == "911":
                e_n += 1
                e_hit += emergency >= threshold
            if d != "routine":
                u_n += 1
                u_hit += urgent >= threshold or emergency >= threshold
            else:
                r_n += 1
                r_raised += urgent >= threshold or emergency >= threshold
        levels.append(
            {
                "threshold": threshold,
                "emergency_recall": round(e_hit / max(e_n, 1), 3),
                "urgent_recall": round(u_hit / max(u_n, 1), 3),
                "routine_raised": round(r_raised / max(r_n, 1), 3),
                "n": [e_n, u_n, r_n],
            }
        )
    out["e5_urgency_head_by_threshold"] = levels

    blind = [i for i in load_set(BLIND_SET) if i.protocol is not None]
    if quick:
        blind = blind[::8]
    gold = [i.protocol or NONE for i in blind]
    out["blind_topic_accuracy"] = {
        "n": len(blind),
        "e5": _accuracy([g.protocol or NONE for g in e5.guess_many([i.text for i in blind])], gold),
        "bow": _accuracy([bow.guess(i.text).protocol or NONE for i in blind], gold),
    }
    return out


def _accuracy(predicted: list[str], gold: tuple[str, ...] | list[str]) -> float:
    return round(sum(p == g for p, g in zip(predicted, gold, strict=True)) / max(len(gold), 1), 3)
