"""The Understander with a scripted classifier and triage: how urgency and language are decided."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.config import Config, NluConfig, Provider
from agent.core.understanding import INTENTS, Entity, RedFlag
from agent.engines.nlu import lang
from agent.engines.nlu.classifier import Prediction
from agent.engines.nlu.pipeline import Understander, combine_urgency
from agent.errors import EngineError

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("America/New_York"))


class ScriptedClassifier:
    def __init__(self, intent: str, confidence: float = 0.9) -> None:
        self.intent = intent
        self.confidence = confidence
        self.seen: list[str] = []

    def predict(self, text: str) -> Prediction:
        self.seen.append(text)
        scores = dict.fromkeys(INTENTS, (1 - self.confidence) / (len(INTENTS) - 1))
        scores[self.intent] = self.confidence
        return Prediction(self.intent, self.confidence, scores)


class PhraseTriage:
    """Raises a flag when its phrase occurs; records the language it was asked in."""

    def __init__(self, rules: dict[str, tuple[str, str]]) -> None:
        self.rules = rules
        self.langs: list[str] = []

    def assess(self, text: str, lang: str = "en") -> list[RedFlag]:
        self.langs.append(lang)
        return [
            RedFlag(rule_id, urgency, rule_id, phrase)  # type: ignore[arg-type]
            for phrase, (rule_id, urgency) in self.rules.items()
            if phrase in text.lower()
        ]


class RecordingExtractor:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, text: str, **kwargs: Any) -> list[Entity]:
        self.calls.append({"text": text, **kwargs})
        return [Entity("medication", "lisinopril", "lisinopril")] if "lisinopril" in text else []


RULES = {
    "chest pain": ("chest_pain", "emergency"),
    "hives": ("medication_reaction", "urgent"),
}


def make(intent: str) -> tuple[Understander, RecordingExtractor, PhraseTriage]:
    extractor = RecordingExtractor()
    triage = PhraseTriage(RULES)
    providers = [Provider(id="patel", name="Doctor Patel")]
    u = Understander(
        ScriptedClassifier(intent), triage, extractor, providers=providers, timezone="US/Central"
    )
    return u, extractor, triage


def test_red_flag_overrides_the_intents_urgency() -> None:
    u, _, _ = make("refill")
    result = u.understand("I need a refill and I have chest pain", now=NOW)
    assert result.intent == "refill"
    assert result.urgency == "emergency"
    assert [f.rule_id for f in result.red_flags] == ["chest_pain"]


def test_emergency_outranks_urgent() -> None:
    u, _, _ = make("symptoms")
    assert u.understand("hives and chest pain", now=NOW).urgency == "emergency"
    assert u.understand("hives everywhere", now=NOW).urgency == "urgent"


def test_symptoms_without_a_red_flag_are_routine() -> None:
    u, _, _ = make("symptoms")
    result = u.understand("I have a runny nose", now=NOW)
    assert (result.intent, result.urgency, result.red_flags) == ("symptoms", "routine", [])


def test_entities_get_the_calls_time_zone_providers_and_language() -> None:
    u, extractor, triage = make("refill")
    result = u.understand("Necesito más lisinopril para mañana", now=NOW)
    assert result.lang == "es" and triage.langs == ["es"]
    (call,) = extractor.calls
    assert call["now"] is NOW and call["tz"] == "US/Central" and call["lang"] == "es"
    assert [p.id for p in call["providers"]] == ["patel"]
    assert result.entity("medication") == Entity("medication", "lisinopril", "lisinopril")


def test_transcript_is_carried_to_the_json() -> None:
    u, _, _ = make("cancel")
    result = u.understand("cancel my appointment", now=NOW, transcript="cancel my appointment")
    out = result.to_json()
    assert list(out)[:2] == ["text", "transcript"]
    assert out["intent"] == "cancel" and out["confidence"] == 0.9


def test_combine_urgency_keeps_the_default_without_flags() -> None:
    assert combine_urgency("routine", []) == "routine"
    assert combine_urgency("urgent", []) == "urgent"


def test_from_config_without_a_model_says_how_to_train(tmp_path: Any) -> None:
    cfg = Config(nlu=NluConfig(model_dir=str(tmp_path / "none")))
    with pytest.raises(EngineError, match="medagent nlu train"):
        Understander.from_config(cfg)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my son can't breathe", "en"),
        ("Mi hijo no puede respirar", "es"),
        ("quiero hacer una cita", "es"),
        ("esta bien gracias", "es"),
        ("¿Abren los domingos?", "es"),
        ("operator", "en"),
        ("no", "en"),
        ("", "en"),
        ("I need a refill of my lisinopril please", "en"),
        ("necesito una receta para la presion", "es"),
    ],
)
def test_language_detection(text: str, expected: str) -> None:
    assert lang.detect(text) == expected


def test_a_stale_model_loads_with_a_warning(tmp_path: Any) -> None:
    from structlog.testing import capture_logs

    from agent.engines.nlu import classifier, train
    from agent.engines.nlu.classifier import IntentClassifier
    from tests.fakes.topics import save_small_topic_model

    small = train.expand(train.load_data())[::10]
    model = IntentClassifier(classifier.fit(small, seed=1, epochs=1), {"data_hash": "old"})
    model.to_disk(tmp_path / "m")
    save_small_topic_model(tmp_path / "m")
    with capture_logs() as logs:
        u = Understander.from_config(Config(nlu=NluConfig(model_dir=str(tmp_path / "m"))))
    assert [e["event"] for e in logs] == ["nlu_model_stale"]
    assert logs[0]["fix"] == "medagent nlu train --if-changed"
    assert u.understand("my son can't breathe", now=NOW).urgency == "emergency"


def test_a_drug_name_missing_from_the_best_hypothesis_is_taken_from_another() -> None:
    u, _, _ = make("refill")
    result = u.understand(
        "a refill of my listen up oral",
        now=NOW,
        alternatives=("a refill of my listen a pill", "a refill of my lisinopril"),
    )
    assert result.entity("medication") == Entity("medication", "lisinopril", "lisinopril")
    assert result.alternatives[1] == "a refill of my lisinopril"
    plain = u.understand("a refill please", now=NOW, alternatives=("a refill pleas",))
    assert plain.entity("medication") is None
