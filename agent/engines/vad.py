"""Voice activity detection for 20 ms frames of 8 kHz telephone audio.

``Vad`` is the interface the segmenter's caller uses (``is_speech(frame) -> bool``). ``WebRtcVad`` is
Google's GMM detector (webrtcvad-wheels, 2 µs a frame). On its own it calls steady line hiss and
pure tones speech surprisingly often, so ``GatedVad`` puts two cheap checks in front of it:

* an energy floor: a frame whose level in the 300-3400 Hz band is below ``energy_floor_dbfs`` is
  not speech, whatever the model says (hiss, a far-away TV);
* a tone check: a frame whose energy sits almost entirely in a few FFT bins is a tone (DTMF sent
  in-band, dial tone, fax) rather than a voice, and one whose energy is nearly all below 250 Hz is
  mains hum or rumble (the telephone band starts at 300 Hz).

Clicks and pops are single frames; they are rejected by the segmenter's minimum speech time, not
here. Measured effect on synthetic noise: ``tests/unit/test_vad.py`` and ``bench/stt.py`` (vad).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from agent.config import VadConfig
from agent.core.frames import PCM16_FRAME_BYTES, SAMPLE_RATE
from agent.core.resample import rms_dbfs
from agent.errors import EngineError

# Telephone-band speech seen through a 20 ms Hann window is itself quite "peaky" (a steady vowel
# puts 99 % of its energy in 10 of the 129 bins of a 256-point FFT), so the tone check must be
# strict: tones and DTMF reach >= 99.6 %, the most tonal speech frame of our clips 99.0 %. Mains hum
# (50/60 Hz and odd harmonics) is caught instead by where its energy is: >= 95 % below 250 Hz,
# where band-limited telephone speech has at most 70 %. Measured on tests/data/audio and the
# synthetic noises of tests/unit/test_vad.py.
_TONE_BINS = 10
_TONE_SHARE = 0.993
_LOW_BINS = 9  # bins 0..8 of 256 at 8 kHz: up to 250 Hz
_LOW_SHARE = 0.85
_NFFT = 256
_BAND = slice(10, 110)  # 312-3406 Hz at 31.25 Hz a bin
_WINDOW = np.hanning(PCM16_FRAME_BYTES // 2)


class Vad(Protocol):
    def is_speech(self, frame_pcm16_8k: bytes) -> bool:
        """``frame_pcm16_8k``: 20 ms (320 bytes) of signed 16-bit little-endian 8 kHz audio."""
        ...


def _check_frame(frame: bytes) -> None:
    if len(frame) != PCM16_FRAME_BYTES:
        raise ValueError(
            f"VAD frame must be {PCM16_FRAME_BYTES} bytes (20 ms of 8 kHz PCM16), got {len(frame)}"
        )


class WebRtcVad:
    def __init__(self, aggressiveness: int = 2) -> None:
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"webrtcvad aggressiveness must be 0..3, got {aggressiveness}")
        try:
            import webrtcvad
        except ImportError as exc:  # pragma: no cover - a main dependency
            raise EngineError(f"webrtcvad is not installed: {exc}") from exc
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame_pcm16_8k: bytes) -> bool:
        _check_frame(frame_pcm16_8k)
        return bool(self._vad.is_speech(frame_pcm16_8k, SAMPLE_RATE))


def _power_spectrum(frame_pcm16_8k: bytes) -> npt.NDArray[np.float64]:
    x = np.frombuffer(frame_pcm16_8k, dtype="<i2").astype(np.float64)
    return np.asarray(np.abs(np.fft.rfft(x * _WINDOW, _NFFT)) ** 2, dtype=np.float64)


def _share(power: npt.NDArray[np.float64], part: float) -> float:
    total = float(power.sum())
    return part / total if total > 0.0 else 0.0


def _tonal(power: npt.NDArray[np.float64]) -> bool:
    return _share(power, float(np.sort(power)[-_TONE_BINS:].sum())) >= _TONE_SHARE


def _hum(power: npt.NDArray[np.float64]) -> bool:
    return _share(power, float(power[:_LOW_BINS].sum())) >= _LOW_SHARE


def _band_level(frame_pcm16_8k: bytes, power: npt.NDArray[np.float64]) -> float:
    share = _share(power, float(power[_BAND].sum()))
    if share <= 0.0:
        return -120.0
    level = rms_dbfs(np.frombuffer(frame_pcm16_8k, dtype="<i2"))
    return max(-120.0, level + 10.0 * float(np.log10(share)))


def is_tonal(frame_pcm16_8k: bytes) -> bool:
    """True when nearly all the frame's energy is in a handful of bins (DTMF, dial tone, fax)."""
    return _tonal(_power_spectrum(frame_pcm16_8k))


def is_hum(frame_pcm16_8k: bytes) -> bool:
    """True when the frame's energy is mostly below 250 Hz (mains hum, rumble): not phone speech."""
    return _hum(_power_spectrum(frame_pcm16_8k))


def band_level_dbfs(frame_pcm16_8k: bytes) -> float:
    """RMS level of the 300-3400 Hz telephone band, dBFS: what a voice fills and hum or the low
    end of pink hiss does not."""
    return _band_level(frame_pcm16_8k, _power_spectrum(frame_pcm16_8k))


class GatedVad:
    """An in-band energy floor and tone/hum checks in front of another VAD."""

    def __init__(self, inner: Vad, *, energy_floor_dbfs: float, reject_tones: bool = True) -> None:
        self.inner = inner
        self.energy_floor_dbfs = energy_floor_dbfs
        self.reject_tones = reject_tones

    def is_speech(self, frame_pcm16_8k: bytes) -> bool:
        _check_frame(frame_pcm16_8k)
        power = _power_spectrum(frame_pcm16_8k)
        if _band_level(frame_pcm16_8k, power) < self.energy_floor_dbfs:
            return False
        if self.reject_tones and (_tonal(power) or _hum(power)):
            return False
        return self.inner.is_speech(frame_pcm16_8k)


def build_vad(cfg: VadConfig) -> Vad:
    """The VAD the settings ask for: webrtcvad behind the noise gate (floor ``-120`` disables it)."""
    inner = WebRtcVad(cfg.aggressiveness)
    if cfg.energy_floor_dbfs <= -120:
        return inner
    return GatedVad(inner, energy_floor_dbfs=cfg.energy_floor_dbfs)
