"""`medagent understand`, `medagent eval` and `medagent nlu` from the command line, on a small model
trained into a temporary folder (the real model's quality is tested in tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from agent.cli import main
from agent.engines.nlu import classifier, train
from agent.engines.nlu.classifier import IntentClassifier
from tests.fakes.topics import save_small_topic_model

NOW = "2026-03-02T10:00:00-05:00"


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nlu")
    examples = train.expand(train.load_data())[::4]
    IntentClassifier(classifier.fit(examples, seed=1, epochs=4), {"data_hash": "small"}).to_disk(
        root / "model"
    )
    save_small_topic_model(root / "model")
    cfg = root / "medagent.toml"
    cfg.write_text(f'[nlu]\nmodel_dir = "{root / "model"}"\n')
    return cfg


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The commands configure structlog onto the captured stderr; later tests must not inherit it.
    yield
    structlog.reset_defaults()


# The shape scripts rely on; ``protocol`` came last (nurse-line protocols).
KEYS = ["text", "lang", "intent", "confidence", "urgency", "red_flags", "entities", "protocol"]


def test_understand_text_prints_one_json_object_per_input(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["-c", str(config_file), "understand", "--now", NOW,
         "--text", "my son can't breathe", "--text", "Quiero cancelar mi cita"]
    )  # fmt: skip
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [list(o) for o in lines] == [KEYS, KEYS]
    first, second = lines
    assert first["urgency"] == "emergency"
    assert first["red_flags"][0]["rule_id"] == "shortness_of_breath"
    assert first["red_flags"][0]["subject"] == "other"
    assert second["lang"] == "es"
    assert 0.0 <= first["confidence"] <= 1.0
    for entity in first["entities"] + second["entities"]:
        assert set(entity) == {"label", "text", "value"}


def test_understand_jsonl_and_its_errors(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "in.jsonl"
    good.write_text('{"text": "what are your hours"}\n\n{"text": "I need a refill"}\n')
    assert main(["-c", str(config_file), "understand", "--now", NOW, "--jsonl", str(good)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"words": "hi"}\n')
    assert main(["-c", str(config_file), "understand", "--jsonl", str(bad)]) == 2
    assert f"{bad}:1: expected" in capsys.readouterr().err


def test_understand_without_a_model_says_how_to_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "medagent.toml"
    cfg.write_text(f'[nlu]\nmodel_dir = "{tmp_path / "missing"}"\n')
    assert main(["-c", str(cfg), "understand", "--text", "hello"]) == 2
    assert "medagent nlu train" in capsys.readouterr().err


def test_eval_json_has_the_figures_and_strict_follows_the_targets(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["-c", str(config_file), "eval", "--json", "--strict", "--limit", "40"])
    out = json.loads(capsys.readouterr().out)
    text = out["text"]
    assert text["n"] == 40
    for key in ("intent_accuracy", "emergency_recall", "urgent_recall", "routine_over_triage",
                "red_flag_recall", "accuracy_by_lang", "confusion", "ms_per_utterance"):  # fmt: skip
        assert key in text
    assert sum(sum(row.values()) for row in text["confusion"].values()) == 40
    assert rc == (1 if out["failures"] else 0)


def test_eval_text_report_prints_a_confusion_matrix(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(config_file), "eval", "--limit", "10"]) == 0
    out = capsys.readouterr().out
    assert "intent_accuracy" in out and "confusion (rows: labelled" in out


def test_nlu_train_if_changed_skips_a_current_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / classifier.META_FILE).write_text(json.dumps({"data_hash": train.fingerprint()}))
    assert main(["nlu", "train", "--if-changed", "--model-dir", str(model)]) == 0
    assert "up to date" in capsys.readouterr().out


def _tone_wav(path: Path, rate: int, seconds: float) -> None:
    import numpy as np
    from scipy.io import wavfile

    t = np.arange(int(rate * seconds)) / rate
    wavfile.write(path, rate, (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))


@pytest.mark.parametrize("telephone", [False, True])
def test_audio_files_become_8khz_pcm16(tmp_path: Path, telephone: bool) -> None:
    from agent.engines.recording import load_pcm16_8k

    wav = tmp_path / "tone.wav"
    _tone_wav(wav, 22050, 0.5)
    pcm = load_pcm16_8k(str(wav), telephone=telephone)
    assert len(pcm) == 2 * 4000  # half a second of 8 kHz 16-bit samples


def test_raw_ulaw_recordings_are_read_as_phone_audio(tmp_path: Path) -> None:
    from agent.engines.recording import load_pcm16_8k

    raw = tmp_path / "call.ulaw"
    raw.write_bytes(bytes([0xFF]) * 800)  # 100 ms of μ-law silence, as Asterisk records it
    assert load_pcm16_8k(str(raw), telephone=False) == b"\x00\x00" * 800


def test_a_now_that_is_not_a_time_is_a_clear_error(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", str(config_file), "understand", "--now", "garbage", "--text", "hi"]) == 2
    assert "--now 'garbage' is not an ISO 8601 time" in capsys.readouterr().err
