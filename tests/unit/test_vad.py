"""The VAD against synthetic line noise and the synthesized speech clips in tests/data/audio.

Noise levels are RMS dBFS at the 8 kHz PCM16 point: -45 dBFS hiss is a noisy analogue line (a clean
digital line is below -60); hum at -30 dBFS is a badly grounded handset; DTMF at -12 dBFS is in-band
signalling at its usual level.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agent.config import VadConfig, segmenter_settings
from agent.core.frames import PCM16_FRAME_BYTES
from agent.core.g711 import ulaw_decode
from agent.core.resample import float_to_pcm16, rms_dbfs
from agent.core.segmenter import Segmenter, UtteranceEnded, UtteranceStarted
from agent.engines.vad import (
    GatedVad,
    Vad,
    WebRtcVad,
    band_level_dbfs,
    build_vad,
    is_hum,
    is_tonal,
)

AUDIO = Path(__file__).resolve().parents[1] / "data" / "audio"
RATE = 8000
SECONDS = 3


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20)


def white(dbfs: float) -> np.ndarray:
    return at_level(_rng().standard_normal(RATE * SECONDS), dbfs)


def pink(dbfs: float) -> np.ndarray:
    n = RATE * SECONDS
    spectrum = np.fft.rfft(_rng().standard_normal(n))
    f = np.arange(len(spectrum), dtype=float)
    f[0] = 1.0
    return at_level(np.fft.irfft(spectrum / np.sqrt(f), n), dbfs)


def hum(hz: float, dbfs: float = -30) -> np.ndarray:
    t = np.arange(RATE * SECONDS) / RATE
    return at_level(sum(np.sin(2 * np.pi * hz * k * t) / k for k in (1, 3, 5, 7)), dbfs)


def dtmf(dbfs: float = -12) -> np.ndarray:
    t = np.arange(RATE // 2) / RATE
    pairs = [(697, 1209), (770, 1336), (852, 1477), (941, 1633), (697, 1477), (941, 1336)]
    tones = [np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t) for lo, hi in pairs]
    return at_level(np.concatenate(tones), dbfs)


def dial_tone(dbfs: float = -15) -> np.ndarray:
    t = np.arange(RATE * SECONDS) / RATE
    return at_level(np.sin(2 * np.pi * 350 * t) + np.sin(2 * np.pi * 440 * t), dbfs)


def clicks() -> np.ndarray:
    """Pops every 250 ms on a quiet line: a loose connector or a handset being handled."""
    rng = _rng()
    x = at_level(rng.standard_normal(RATE * SECONDS), -60)
    for i in range(0, len(x), RATE // 4):
        x[i : i + 8] += 0.9 * np.hanning(8) * rng.choice([-1, 1])
    return x


def frames(samples: np.ndarray) -> list[bytes]:
    pcm = float_to_pcm16(samples).astype("<i2").tobytes()
    return [
        pcm[i : i + PCM16_FRAME_BYTES]
        for i in range(0, len(pcm) - PCM16_FRAME_BYTES + 1, PCM16_FRAME_BYTES)
    ]


def speech_rate(vad: Vad, samples: np.ndarray) -> float:
    fs = frames(samples)
    return sum(vad.is_speech(f) for f in fs) / len(fs)


def clip_frames(name: str) -> list[bytes]:
    pcm = ulaw_decode((AUDIO / name).read_bytes()).astype("<i2").tobytes()
    return [
        pcm[i : i + PCM16_FRAME_BYTES]
        for i in range(0, len(pcm) - PCM16_FRAME_BYTES + 1, PCM16_FRAME_BYTES)
    ]


CLIPS = [c["file"] for c in json.loads((AUDIO / "clips.json").read_text())]

NOISES: dict[str, Callable[[], np.ndarray]] = {
    "white hiss -45 dBFS": lambda: white(-45),
    "pink hiss -45 dBFS": lambda: pink(-45),
    "white hiss -55 dBFS": lambda: white(-55),
    "50 Hz hum": lambda: hum(50),
    "60 Hz hum": lambda: hum(60),
    "DTMF": dtmf,
    "dial tone": dial_tone,
    "clicks": clicks,
}


@pytest.fixture(scope="module")
def gated() -> Vad:
    return build_vad(VadConfig())


@pytest.mark.parametrize("noise", NOISES)
def test_gated_vad_rarely_calls_line_noise_speech(gated: Vad, noise: str) -> None:
    # Clicks reach 8 %: single frames, which the segmenter's minimum speech time rejects (below).
    assert speech_rate(gated, NOISES[noise]()) <= 0.1


@pytest.mark.parametrize("noise", NOISES)
def test_line_noise_never_starts_an_utterance(gated: Vad, noise: str) -> None:
    seg = Segmenter(segmenter_settings(VadConfig()), is_speech=gated.is_speech)
    events = [e for f in frames(NOISES[noise]()) for e in seg.process_frame(f)]
    assert events == []


@pytest.mark.parametrize(
    ("noise", "gated_max"), [("60 Hz hum", 0.0), ("DTMF", 0.0), ("dial tone", 0.0), ("clicks", 0.1)]
)
def test_the_gate_is_what_rejects_the_noise(noise: str, gated_max: float) -> None:
    """A fresh webrtcvad (mode 2) takes a third or more of these frames for speech."""
    x = NOISES[noise]()
    assert speech_rate(WebRtcVad(2), x) >= 0.3
    assert speech_rate(GatedVad(WebRtcVad(2), energy_floor_dbfs=-45.0), x) <= gated_max


@pytest.mark.parametrize("clip", CLIPS)
def test_speech_clips_are_heard_and_make_exactly_one_utterance(gated: Vad, clip: str) -> None:
    speech = clip_frames(clip)
    loud = [f for f in speech if rms_dbfs(np.frombuffer(f, dtype="<i2")) > -35]
    assert sum(gated.is_speech(f) for f in loud) / len(loud) >= 0.95

    # The clip on a hissy line, with a second of line noise either side.
    line = frames(white(-50))
    noisy_speech = [
        (np.frombuffer(s, "<i2").astype(np.int32) + np.frombuffer(n, "<i2")).clip(-32768, 32767)
        for s, n in zip(speech, line * 10, strict=False)
    ]
    stream = line[:50] + [x.astype("<i2").tobytes() for x in noisy_speech] + line[:50]
    seg = Segmenter(segmenter_settings(VadConfig()), is_speech=gated.is_speech)
    events = [e for f in stream for e in seg.process_frame(f)] + seg.flush()
    kinds = [type(e) for e in events if isinstance(e, UtteranceStarted | UtteranceEnded)]
    assert kinds == [UtteranceStarted, UtteranceEnded]
    end = events[-1]
    assert isinstance(end, UtteranceEnded) and end.reason == "end"


def test_tone_and_hum_checks_separate_tones_from_speech() -> None:
    assert all(is_tonal(f) for f in frames(dial_tone()))
    assert all(is_hum(f) for f in frames(hum(60)))
    speech = [f for c in CLIPS for f in clip_frames(c)]
    voiced = [f for f in speech if band_level_dbfs(f) > -35]
    assert len(voiced) > 500
    assert not any(is_tonal(f) or is_hum(f) for f in voiced)


def test_wrong_frame_size_and_mode_raise_specific_errors() -> None:
    with pytest.raises(
        ValueError, match=r"VAD frame must be 320 bytes \(20 ms of 8 kHz PCM16\), got 160"
    ):
        WebRtcVad(2).is_speech(b"\x00" * 160)
    with pytest.raises(ValueError, match="webrtcvad aggressiveness must be 0..3, got 4"):
        WebRtcVad(4)


def test_floor_of_minus_120_disables_the_gate() -> None:
    assert isinstance(build_vad(VadConfig(energy_floor_dbfs=-120.0)), WebRtcVad)
    assert isinstance(build_vad(VadConfig()), GatedVad)
