"""A small triage topic model for tests that need a model folder but not its accuracy: a few
examples of each protocol and of ordinary requests, embedded by the real engine (a few seconds),
saved where the intent model is."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agent.engines.nlu import train
from agent.engines.nlu.protocol_files import all_protocols
from agent.engines.nlu.topics import E5Embedder, EmbeddingTopics, TrainingSet, training_set


def save_small_topic_model(model_dir: str | Path, *, per_topic: int = 3) -> EmbeddingTopics:
    ordinary = sorted({t for t, intent in train.expand(train.load_data()) if intent != "symptoms"})
    full = training_set(all_protocols(), ordinary[::20])
    seen: Counter[str] = Counter()
    keep = []
    for i, topic in enumerate(full.topics):
        if seen[topic] < per_topic or (topic == "none" and seen[topic] < 40):
            seen[topic] += 1
            keep.append(i)
    small = TrainingSet(
        tuple(full.texts[i] for i in keep),
        tuple(full.topics[i] for i in keep),
        tuple(full.dispositions[i] for i in keep),
    )
    model = EmbeddingTopics.fit(small, E5Embedder(), epochs=100)
    model.save(model_dir)
    return model


class HashingEmbedder:
    """Words hashed into 384 dimensions: fast and deterministic, for tests about where a model
    is saved rather than what it knows."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 384] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-6)
