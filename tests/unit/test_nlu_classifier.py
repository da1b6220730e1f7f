"""Text normalisation, clause splitting, training data and the classifier's training/loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.understanding import INTENTS
from agent.engines.nlu import classifier, train
from agent.engines.nlu.classifier import IntentClassifier, first_clause, normalize
from agent.errors import EngineError
from tests.fakes.topics import HashingEmbedder

DEV = Path(__file__).resolve().parents[1] / "data" / "nlu" / "dev.jsonl"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Um, uh... I'd LIKE a refill!", "id like a refill"),
        ("i i i need to, um, cancel", "i need to cancel"),
        ("Can’t breathe", "cant breathe"),
        ("¿Mañana? Sí, la cita", "manana si la cita"),
        ("  ", ""),
        ("Call 555-1234", "call 555 1234"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_is_idempotent() -> None:
    for text in ["Uh, hello?? I'm calling about my bill", "ÁÉÍ óú ñ", "um um um"]:
        assert normalize(normalize(text)) == normalize(text)


def test_first_clause_needs_two_real_clauses() -> None:
    assert (
        first_clause("I need a refill on my metformin and also what are your hours")
        == "I need a refill on my metformin "
    )
    # A greeting is not a clause, so a single request is left whole.
    assert first_clause("Hi, yes, I need a refill") is None
    assert first_clause("cancel my appointment") is None


def test_training_data_covers_every_intent_and_spanish() -> None:
    examples = train.expand(train.load_data())
    counts = {i: sum(1 for _, label in examples if label == i) for i in INTENTS}
    assert min(counts.values()) >= 60, counts
    data = train.load_data()
    assert all(len(data["intents"][i].get("es", [])) >= 5 for i in INTENTS)


def test_expansion_is_deterministic_and_seed_dependent() -> None:
    data = train.load_data()
    assert train.expand(data, seed=7) == train.expand(data, seed=7)
    assert train.expand(data, seed=7) != train.expand(data, seed=8)


def test_dev_set_sentences_are_not_in_the_training_data() -> None:
    # The dev set measures generalisation only if its sentences were not trained on. One- to
    # three-word commands ("operator", "cancel") are allowed to coincide.
    trained = {normalize(text) for text, _ in train.expand(train.load_data())}
    dev = [json.loads(line)["text"] for line in DEV.read_text().splitlines() if line.strip()]
    leaked = [t for t in dev if len(normalize(t).split()) > 3 and normalize(t) in trained]
    assert leaked == []


def test_unknown_template_slot_is_reported() -> None:
    data = train.load_data()
    data["intents"]["cancel"]["templates"] = ["cancel {nonsense}"]
    with pytest.raises(ValueError, match=r"unknown slot\(s\) \['nonsense'\]"):
        train.expand(data)


def test_fit_rejects_unknown_labels() -> None:
    with pytest.raises(ValueError, match="unknown intent label.*: greeting"):
        classifier.fit([("hello", "greeting")], seed=1, epochs=1)


def _small_set() -> list[tuple[str, str]]:
    examples = train.expand(train.load_data())
    return examples[::6]


def test_training_is_deterministic() -> None:
    probes = ["i need a refill", "what are your hours", "my chest hurts", "quiero una cita"]
    runs = []
    for _ in range(2):
        nlp = classifier.fit(_small_set(), seed=3, epochs=3)
        runs.append([p.scores for p in IntentClassifier(nlp).predict_many(probes)])
    assert runs[0] == runs[1]


def test_model_round_trips_through_disk(tmp_path: Path) -> None:
    model = IntentClassifier(classifier.fit(_small_set(), seed=3, epochs=3), {"data_hash": "x"})
    model.to_disk(tmp_path / "m")
    loaded = IntentClassifier.load(tmp_path / "m")
    assert loaded.meta == {"data_hash": "x"}
    text = "can you renew my prescription"
    assert loaded.predict(text) == model.predict(text)
    assert set(loaded.predict(text).scores) == set(INTENTS)


def test_missing_model_names_the_command_that_fixes_it(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="run `medagent nlu train`"):
        IntentClassifier.load(tmp_path / "nowhere")


def test_if_changed_uses_the_hash(tmp_path: Path) -> None:
    target = tmp_path / "model"
    assert not train.is_current(target)
    target.mkdir()
    (target / classifier.META_FILE).write_text(json.dumps({"data_hash": train.fingerprint()}))
    assert train.is_current(target)
    assert not train.is_current(target, epochs=train.EPOCHS + 1)


@given(st.text(max_size=80))
def test_normalize_is_idempotent_and_plain(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert set(once) <= set("abcdefghijklmnopqrstuvwxyz0123456789 ")
    assert not set(once.split()) & classifier.FILLERS


def test_training_twice_into_the_same_folder_replaces_the_model(tmp_path: Path) -> None:
    target = tmp_path / "model"
    first = train.train(target, epochs=1, embedder=HashingEmbedder())
    second = train.train(target, epochs=1, embedder=HashingEmbedder())
    assert first["data_hash"] == second["data_hash"] == train.fingerprint(epochs=1)
    # No staging or retired folders are left beside the model.
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert IntentClassifier.load(target).meta["epochs"] == 1
    assert train.is_current(target, epochs=1)
