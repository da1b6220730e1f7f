"""The trained intent model with the real triage and entity rules meets the release bar on the
development set (tests/data/nlu/dev.jsonl, written separately from the training data)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime
from pathlib import Path

import pytest

from agent.config import Config, NluConfig
from agent.engines.nlu import train
from agent.engines.nlu.evaluate import TARGETS, Report, format_report, load_set, score
from agent.engines.nlu.pipeline import Understander

pytestmark = pytest.mark.slow
NOW = datetime.fromisoformat("2026-03-02T10:00:00-05:00")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The cached model when it was trained from the current data and code, else a fresh one."""
    cached = NluConfig().model_dir
    if train.is_current(cached):
        return cached
    # Its time is reported by bench/nlu.py and bench/protocols.py, not asserted here.
    target = tmp_path_factory.mktemp("nlu") / "model"
    train.train(target)
    return str(target)


@pytest.fixture(scope="module")
def report(model_dir: str) -> Report:
    cfg = dataclasses.replace(Config(), nlu=NluConfig(model_dir=model_dir))
    understander = Understander.from_config(cfg)
    items = load_set()
    return score(items, [understander.understand(i.text, now=NOW) for i in items])


def test_intent_accuracy(report: Report) -> None:
    assert report.intent_accuracy >= TARGETS["intent_accuracy"][1], format_report(report)


def test_every_emergency_is_recalled(report: Report) -> None:
    missed = [m["text"] for m in report.misses if m["urgency"][0] == "emergency"]
    assert report.urgency_recall["emergency"] == 1.0, missed


def test_urgent_recall(report: Report) -> None:
    assert report.urgency_recall["urgent"] >= TARGETS["urgent_recall"][1], report.misses


def test_routine_over_triage(report: Report) -> None:
    assert report.routine_over_triage <= TARGETS["routine_over_triage"][1], report.misses


def test_both_languages_are_understood(report: Report) -> None:
    assert report.accuracy_by_lang["es"] >= 0.85
    assert report.accuracy_by_lang["en"] >= 0.9


def test_cached_model_loads_and_answers_fast(model_dir: str) -> None:
    from agent.engines.nlu.classifier import IntentClassifier

    model = IntentClassifier.load(Path(model_dir))
    started = time.perf_counter()
    for _ in range(50):
        model.predict("um hi I was wondering if I could get my lisinopril refilled")
    assert (time.perf_counter() - started) / 50 < 0.05


def test_a_synthetic_phone_call_is_understood(model_dir: str, tmp_path: Path) -> None:
    # Piper's natural voice through the line model, transcribed by the real STT engine.
    import json
    import subprocess
    import sys

    from agent.pbxsim import callers

    if "joe" not in callers.available_voices():
        pytest.skip("the Piper voice is not installed")
    ulaw = callers.synthesize_caller("I need to cancel my appointment on Friday", "joe", seed=1)
    recording = tmp_path / "call.ulaw"
    recording.write_bytes(ulaw)
    cfg = tmp_path / "medagent.toml"
    cfg.write_text(f'[nlu]\nmodel_dir = "{model_dir}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "agent", "-c", str(cfg), "understand", "--audio", str(recording)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (line,) = done.stdout.splitlines()
    result = json.loads(line)
    assert result["intent"] == "cancel"
    assert "cancel" in result["transcript"].lower()


def test_emergencies_spoken_over_the_phone_line_are_caught(model_dir: str) -> None:
    """The whole chain on audio, as a call hears it: a spread of the dev set's English
    emergencies, each spoken by one of the natural voices over the modelled line, cut by the
    call's segmenter, transcribed by the real Whisper with the call's prompt and windows, heard
    again by the second model when the turn is about health and no emergency was heard, and
    understood with every hypothesis.

    Recognition still loses a few ("I can't get enough air" heard "... enough fear" by both
    models in the slow voice), so the per-utterance recall has a floor here and its exact figure
    is in the README; what must hold for every one is the call's safety net: flagged, or a
    symptom call (screening question first), or asked again - never filed as routine business."""
    from agent.core.g711 import ulaw_decode
    from agent.engines.nlu.evaluate import as_a_call_cuts_it, spread
    from agent.pbxsim import callers
    from agent.runtime.hearing import Ears

    natural = [
        v for v in ("joe", "joe-high", "joe-slow", "joe-fast") if v in callers.available_voices()
    ]
    if not natural:
        pytest.skip("the Piper voice is not installed")
    cfg = dataclasses.replace(Config(), nlu=NluConfig(model_dir=model_dir))
    ears = Ears.load(cfg, Understander.from_config(cfg))
    emergencies = spread([i for i in load_set() if i.lang == "en" and i.urgency == "emergency"], 16)
    results = []
    for n, item in enumerate(emergencies):
        voice = natural[n % len(natural)]
        ulaw = callers.synthesize_caller(item.text, voice, noise_db=-45, seed=n)
        pcm = as_a_call_cuts_it(ulaw_decode(ulaw).tobytes(), cfg.vad, seed=n)
        hearing = asyncio.run(ears.hear(pcm, now=NOW))
        results.append(hearing.understanding or asyncio.run(ears.nothing(NOW)))
    report = score(emergencies, results, min_confidence=cfg.nlu.min_confidence)
    assert report.emergency_safety_net == 1.0, report.misses
    assert report.urgency_recall["emergency"] >= 0.9, report.misses
