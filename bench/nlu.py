"""Intent model costs: training time, model load time, inference per utterance (classifier alone
and the whole Understander with triage and entities), over the development set's sentences."""

from __future__ import annotations

import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.config import Config, NluConfig
from agent.engines.nlu import classifier, train
from agent.engines.nlu.classifier import IntentClassifier
from agent.engines.nlu.evaluate import load_set
from agent.engines.nlu.pipeline import Understander

NOW = datetime.fromisoformat("2026-03-02T10:00:00-05:00")


def run(quick: bool = False) -> dict[str, Any]:
    texts = [item.text for item in load_set()]
    if quick:
        texts = texts[:50]
    with tempfile.TemporaryDirectory(prefix="bench-nlu-") as tmp:
        model_dir = Path(tmp) / "model"
        started = time.perf_counter()
        if quick:
            # A smoke run: a quarter of the data for three epochs proves the path, not the figure.
            examples = train.expand(train.load_data())[::4]
            nlp = classifier.fit(examples, seed=train.SEED, epochs=3)
            IntentClassifier(nlp, {"data_hash": "bench-quick"}).to_disk(model_dir)
            meta: dict[str, Any] = {"examples": len(examples), "epochs": 3}
        else:
            meta = train.train(model_dir)
        train_s = time.perf_counter() - started

        started = time.perf_counter()
        model = IntentClassifier.load(model_dir)
        load_s = time.perf_counter() - started

        model.predict("warm up")
        started = time.perf_counter()
        for text in texts:
            model.predict(text)
        classify_ms = 1000 * (time.perf_counter() - started) / len(texts)

        understander = Understander.from_config(Config(nlu=NluConfig(model_dir=str(model_dir))))
        understander.understand("warm up", now=NOW)
        started = time.perf_counter()
        for text in texts:
            understander.understand(text, now=NOW)
        understand_ms = 1000 * (time.perf_counter() - started) / len(texts)
    return {
        "train_s": round(train_s, 2),
        "train_examples": meta["examples"],
        "train_epochs": meta["epochs"],
        "load_s": round(load_s, 3),
        "classify_ms_per_utterance": round(classify_ms, 3),
        "understand_ms_per_utterance": round(understand_ms, 3),
        "utterances": len(texts),
    }
