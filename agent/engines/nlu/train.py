"""Building the intent model from the data the project owns (``medagent nlu train``).

The training set is expanded from ``data/intents.yaml`` deterministically: templates are filled from
the slot lists, and a seeded share of the examples gets a hesitant prefix, a second request or a
typical speech-to-text slip. The model directory records a hash of the data files, this code and the
spaCy version; ``--if-changed`` skips training when the hash matches (``make test`` relies on it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from agent.core.understanding import INTENTS
from agent.engines.nlu import classifier, topics
from agent.engines.nlu.classifier import META_FILE, IntentClassifier
from agent.engines.nlu.protocol_files import PROTOCOL_DIR, all_protocols, protocol_sources
from agent.log import get_logger

DATA_DIR = Path(__file__).resolve().parent / "data"
DATA_FILE = DATA_DIR / "intents.yaml"
SEED = 1337
EPOCHS = 12
VARIANTS_PER_TEMPLATE = 8
PREFIX_SHARE = 0.2
MIXED_SHARE = 0.08
ASR_SHARE = 0.15

_SLOT = re.compile(r"\{(\w+)\}")
log = get_logger(__name__)


def load_data(path: Path = DATA_FILE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("intents"), dict):
        raise ValueError(f"{path}: expected a mapping with an 'intents' table")
    missing = [i for i in INTENTS if i not in data["intents"]]
    extra = [i for i in data["intents"] if i not in INTENTS]
    if missing or extra:
        raise ValueError(f"{path}: intents missing {missing}, unknown {extra}")
    return data


def expand(data: dict[str, Any], *, seed: int = SEED) -> list[tuple[str, str]]:
    """All training pairs ``(text, intent)`` in a fixed order: same data + seed → same list."""
    rng = random.Random(seed)
    slots: dict[str, list[str]] = data.get("slots", {})
    base: list[tuple[str, str, str]] = []  # (text, intent, language)
    for intent in INTENTS:
        spec = data["intents"][intent]
        for template in spec.get("templates", []):
            names = _SLOT.findall(template)
            unknown = [n for n in names if n not in slots]
            if unknown:
                raise ValueError(f"template {template!r} of {intent}: unknown slot(s) {unknown}")
            seen: set[str] = set()
            for _ in range(VARIANTS_PER_TEMPLATE):
                text = _SLOT.sub(lambda m: rng.choice(slots[m.group(1)]), template)
                if text not in seen:
                    seen.add(text)
                    base.append((text, intent, "en"))
        base.extend((text, intent, "en") for text in spec.get("sentences", []))
        base.extend((text, intent, "es") for text in spec.get("es", []))

    # Each language gets its own hesitations; mixed requests and STT slips are English only, the
    # language of the joiners and of the confusions measured with tiny.en.
    prefixes: dict[str, list[str]] = {
        "en": data.get("prefixes", []),
        "es": data.get("es_prefixes", []),
    }
    joiners: list[str] = data.get("joiners", [])
    confusions: dict[str, list[str]] = data.get("asr_confusions", {})
    english_by_intent = {
        intent: [t for t, i, lang in base if i == intent and lang == "en"] for intent in INTENTS
    }
    augmented: list[tuple[str, str]] = []
    for text, intent, lang in base:
        if prefixes[lang] and rng.random() < PREFIX_SHARE:
            augmented.append((f"{rng.choice(prefixes[lang])} {text}", intent))
        if lang != "en":
            continue
        if joiners and rng.random() < MIXED_SHARE:
            other = rng.choice([i for i in INTENTS if i != intent])
            second = rng.choice(english_by_intent[other])
            augmented.append((f"{text} {rng.choice(joiners)} {second}", intent))
        if rng.random() < ASR_SHARE:
            slipped = _asr_slip(text, confusions, rng)
            if slipped != text:
                augmented.append((slipped, intent))
    return [(text, intent) for text, intent, _ in base] + augmented


def _asr_slip(text: str, confusions: dict[str, list[str]], rng: random.Random) -> str:
    words = text.split()
    hits = [i for i, w in enumerate(words) if w in confusions]
    if not hits:
        return text
    i = rng.choice(hits)
    words[i] = rng.choice(confusions[words[i]])
    return " ".join(words)


def detail_answers() -> list[str]:
    """Short answers to the agent's detail questions (``data/detail_answers.txt``): ordinary."""
    path = DATA_DIR / "detail_answers.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def fingerprint(architecture: str = classifier.DEFAULT_ARCHITECTURE, epochs: int = EPOCHS) -> str:
    """Hash of everything the model depends on: data files, training code, spaCy version."""
    h = hashlib.sha256()
    # Only the YAML data: the README is not training input and is not installed with the package,
    # so hashing it would call an installed model stale.
    for path in sorted([*DATA_DIR.glob("*.yaml"), *DATA_DIR.glob("*.txt")]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    for module in (Path(__file__), Path(classifier.__file__), Path(topics.__file__)):
        h.update(module.read_bytes())
    for file, text in protocol_sources():
        h.update(Path(file).relative_to(PROTOCOL_DIR).as_posix().encode())
        h.update(text.encode())
    h.update(
        f"spacy={importlib.metadata.version('spacy')};arch={architecture};seed={SEED};epochs={epochs}".encode()
    )
    return h.hexdigest()


def is_current(
    model_dir: str | Path,
    architecture: str = classifier.DEFAULT_ARCHITECTURE,
    epochs: int = EPOCHS,
) -> bool:
    meta_path = Path(model_dir) / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return bool(meta.get("data_hash") == fingerprint(architecture, epochs))


def train(
    model_dir: str | Path,
    *,
    architecture: str = classifier.DEFAULT_ARCHITECTURE,
    epochs: int = EPOCHS,
    seed: int = SEED,
    embedder: topics.Embedder | None = None,
) -> dict[str, Any]:
    """Train and save atomically into ``model_dir`` (a half-written model is never loaded).
    ``embedder``: the topic model's sentence embedder (default: multilingual-e5-small)."""
    started = time.perf_counter()
    examples = expand(load_data(), seed=seed)
    nlp = classifier.fit(examples, seed=seed, epochs=epochs, architecture=architecture)
    # The triage topic model: every protocol's examples, and the ordinary requests as "none".
    ordinary = sorted({text for text, intent in examples if intent != "symptoms"})
    ordinary += detail_answers()
    topic_data = topics.training_set(all_protocols(), ordinary)
    topic_model = topics.EmbeddingTopics.fit(
        topic_data, embedder or topics.E5Embedder(threads=2), seed=seed
    )
    meta = {
        "data_hash": fingerprint(architecture, epochs),
        "architecture": architecture,
        "epochs": epochs,
        "seed": seed,
        "examples": len(examples),
        "intents": list(INTENTS),
        "topic_examples": len(topic_data.texts),
        "protocols": len(set(topic_data.topics)) - 1,
    }
    target = Path(model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".nlu-train-", dir=target.parent))
    # Move the old model aside rather than deleting it in place, so two trainings racing (parallel
    # `make` targets) each end with a whole model in `target` instead of an error half-way.
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    try:
        IntentClassifier(nlp, meta).to_disk(staging)
        topic_model.save(staging)
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
    finally:
        for leftover in (staging, retired):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    meta["train_s"] = round(time.perf_counter() - started, 2)
    return meta
