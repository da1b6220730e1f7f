"""Scoring of the labelled set (pure), the dev set's own consistency, and WER."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from agent.core.understanding import INTENTS, RedFlag, Understanding
from agent.engines.nlu.evaluate import (
    DEV_SET,
    DevItem,
    load_set,
    parse_item,
    score,
    spread,
    word_error_rate,
)

BASE_FLAGS = {
    "chest_pain", "shortness_of_breath", "stroke", "suicidal", "severe_bleeding", "anaphylaxis",
    "unconscious", "seizure", "infant_fever", "severe_abdominal_pain", "overdose",
    "pregnancy_bleeding", "fever_with_rash", "worsening_infection", "medication_reaction",
}  # fmt: skip


def item(
    intent: str, urgency: str = "routine", flags: tuple[str, ...] = (), **kw: object
) -> DevItem:
    return DevItem(
        "t", intent, urgency, flags, str(kw.get("lang", "en")), tuple(kw.get("notes", ()))
    )  # type: ignore[arg-type]


def result(intent: str, urgency: str = "routine", flags: tuple[str, ...] = ()) -> Understanding:
    red = [RedFlag(f, "emergency", f, f) for f in flags]
    return Understanding("t", "en", intent, 0.5, urgency, red)  # type: ignore[arg-type]


def test_score_counts_accuracy_recall_and_over_triage() -> None:
    items = [
        item("refill"),
        item("billing"),
        item("symptoms", notes=("negation",)),
        item("symptoms", "emergency", ("chest_pain",)),
        item("symptoms", "urgent", ("medication_reaction",), lang="es"),
    ]
    results = [
        result("refill"),
        result("office_info"),
        result("symptoms", "urgent"),  # over-triage of a routine item
        result("symptoms", "emergency", ("chest_pain",)),
        result("symptoms", "emergency"),  # urgent rated emergency: recalled, flag missed
    ]
    r = score(items, results)
    assert r.intent_accuracy == pytest.approx(4 / 5)
    assert r.confusion["billing"]["office_info"] == 1
    assert r.urgency_recall == {"routine": pytest.approx(2 / 3), "emergency": 1.0, "urgent": 1.0}
    assert r.routine_over_triage == pytest.approx(1 / 3)
    assert r.red_flag_recall == pytest.approx(1 / 2)
    assert r.accuracy_by_lang == {"en": 0.75, "es": 1.0}
    assert r.accuracy_by_note == {"negation": 1.0}
    assert len(r.misses) == 2
    failures = r.failures()
    assert any(f.startswith("intent_accuracy 0.800") for f in failures)
    assert any(f.startswith("routine_over_triage 0.333") for f in failures)


def test_an_emergency_rated_urgent_is_a_miss() -> None:
    r = score([item("symptoms", "emergency", ("stroke",))], [result("symptoms", "urgent")])
    assert r.urgency_recall["emergency"] == 0.0
    assert "emergency_recall 0.000 (target >= 1.0)" in r.failures()


def test_safety_net_counts_emergencies_the_dialog_cannot_file_as_routine() -> None:
    def heard(intent: str, urgency: str, confidence: float) -> Understanding:
        return Understanding("t", "en", intent, confidence, urgency, [])  # type: ignore[arg-type]

    emergency = item("symptoms", "emergency", ("unconscious",))
    results = [
        heard("symptoms", "emergency", 0.9),  # flagged: 911
        heard("symptoms", "urgent", 0.9),  # a clinician at once
        heard("symptoms", "routine", 0.9),  # the screening question comes first
        heard("billing", "routine", 0.3),  # too unsure: asked again
        heard("refill", "routine", 0.8),  # filed as a refill: the net failed
    ]
    r = score([emergency] * 5, results, min_confidence=0.5)
    assert r.urgency_recall["emergency"] == pytest.approx(1 / 5)
    assert r.emergency_safety_net == pytest.approx(4 / 5)
    assert r.to_json()["emergency_safety_net"] == 0.8
    assert score([item("refill")], [result("refill")]).emergency_safety_net == 1.0


def test_score_needs_one_result_per_item() -> None:
    with pytest.raises(ValueError, match="2 items but 1 results"):
        score([item("refill"), item("cancel")], [result("refill")])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{", "x:1: not JSON"),
        ("[]", "x:1: expected an object"),
        ('{"text": "a"}', "x:1: missing field"),
        ('{"text":"a","intent":"greet","urgency":"routine","red_flags":[],"lang":"en"}', "unknown intent 'greet'"),
        ('{"text":"a","intent":"cancel","urgency":"soon","red_flags":[],"lang":"en"}', "unknown urgency 'soon'"),
        ('{"text":"a","intent":"cancel","urgency":"routine","red_flags":[],"lang":"fr"}', "unknown lang 'fr'"),
        ('{"text":"a","intent":"cancel","urgency":"routine","red_flags":["stroke"],"lang":"en"}', "red flags"),
    ],
)  # fmt: skip
def test_parse_item_errors(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_item(line, where="x:1")


def test_word_error_rate_ignores_case_punctuation_and_fillers() -> None:
    assert word_error_rate("I need a refill.", "um, i need a refill") == (0, 4)
    assert word_error_rate("I have chest pain", "I have kept pain") == (1, 4)
    assert word_error_rate("cancel it", "") == (2, 2)


def test_dev_set_meets_its_brief() -> None:
    items = load_set(DEV_SET)
    assert len(items) >= 500
    assert len({i.text for i in items}) == len(items)
    assert set(Counter(i.intent for i in items)) == set(INTENTS)
    assert sum(i.lang == "es" for i in items) >= 40
    flags = {f for i in items for f in i.red_flags}
    assert flags == BASE_FLAGS
    notes = Counter(n for i in items for n in i.notes)
    for tag in ("negation", "third_person", "disfluent", "asr", "mixed", "elderly", "spanish"):
        assert notes[tag] >= 10, tag
    # Negated symptoms are labelled routine and carry no flag.
    assert all(i.urgency == "routine" for i in items if "negation" in i.notes)


def test_dev_set_flag_ids_exist_in_the_triage_packs() -> None:
    triage_dir = Path(__file__).resolve().parents[2] / "agent" / "data" / "triage"
    if not triage_dir.is_dir():
        pytest.skip("triage packs not present")
    ids = set()
    for pack in triage_dir.glob("*.toml"):
        for line in pack.read_text().splitlines():
            if line.startswith("id = "):
                ids.add(json.loads(line.removeprefix("id = ")))
    assert BASE_FLAGS <= ids


def test_spread_takes_evenly_spaced_items() -> None:
    items = [item(INTENTS[i % len(INTENTS)]) for i in range(100)]
    picked = spread(items, 10)
    assert len(picked) == 10 and picked[0] is items[0] and picked[1] is items[10]
    assert spread(items, 500) == items


def test_audio_is_cut_as_a_call_cuts_it() -> None:
    from agent.config import VadConfig
    from agent.core.g711 import ulaw_decode
    from agent.engines.nlu.evaluate import as_a_call_cuts_it

    clip = Path(__file__).resolve().parents[1] / "data" / "audio" / "piper_refill.ulaw"
    pcm = ulaw_decode(clip.read_bytes()).astype("<i2").tobytes()
    cfg = VadConfig()
    cut = as_a_call_cuts_it(pcm, cfg, seed=1)
    # The voice's lead-in goes; the speech, the pre-roll and the trailing silence stay.
    assert 0 < len(cut) < len(pcm) + 16000
    assert len(cut) >= 2 * (cfg.preroll_ms + cfg.end_silence_ms) * 8
    assert as_a_call_cuts_it(pcm, cfg, seed=1) == cut
    silence = bytes(16000)
    assert as_a_call_cuts_it(silence, cfg) == b""
