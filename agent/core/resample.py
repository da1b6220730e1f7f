"""Sample-rate conversion and sample-format helpers for the speech path.

Telephone audio arrives as 8 kHz μ-law; Whisper wants 16 kHz float32. Files (espeak-ng, Piper at
22.05 kHz) go the other way, to 8 kHz. Both directions use a polyphase FIR (``resample_poly``)
whose Kaiser-windowed low-pass sits below the lower Nyquist frequency, so content above 4 kHz is
removed before decimation instead of folding back into the telephone band as aliases.

Pure: arrays in, arrays out. μ-law coding itself lives in ``agent.core.g711``; this module only
adds the float conversions Whisper and the DSP code want.
"""

from __future__ import annotations

from math import gcd

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from agent.core.g711 import ulaw_decode, ulaw_encode

Float = npt.NDArray[np.float32]
Pcm = npt.NDArray[np.int16]

TELEPHONE_RATE = 8000
WHISPER_RATE = 16000
_FULL_SCALE = 32768.0


def pcm16_to_float(pcm: bytes | bytearray | memoryview | Pcm) -> Float:
    """Signed 16-bit little-endian samples → float32 in [-1, 1)."""
    arr = np.frombuffer(pcm, dtype="<i2") if not isinstance(pcm, np.ndarray) else pcm
    return (arr.astype(np.float32) / _FULL_SCALE).astype(np.float32)


def float_to_pcm16(samples: npt.ArrayLike) -> Pcm:
    """Float samples (nominally [-1, 1]) → int16, clipped rather than wrapped on overload."""
    arr = np.asarray(samples, dtype=np.float64) * _FULL_SCALE
    return np.clip(np.round(arr), -32768, 32767).astype(np.int16)


def ulaw_to_float(codes: bytes | bytearray | memoryview) -> Float:
    """μ-law bytes → float32 in [-1, 1)."""
    return pcm16_to_float(ulaw_decode(codes))


def float_to_ulaw(samples: npt.ArrayLike) -> bytes:
    """Float samples → μ-law bytes."""
    return ulaw_encode(float_to_pcm16(samples))


def resample(samples: npt.ArrayLike, rate_in: int, rate_out: int) -> Float:
    """Any rate → any rate with an anti-aliasing polyphase filter; returns float32.

    Integer PCM is scaled to [-1, 1) first so callers can hand over either representation.
    """
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {arr.shape}")
    x = pcm16_to_float(arr) if arr.dtype == np.int16 else arr.astype(np.float32)
    if rate_in == rate_out:
        return x
    g = gcd(rate_in, rate_out)
    # resample_poly's default Kaiser window (beta 5) puts the cut-off at the lower Nyquist.
    y = resample_poly(x, rate_out // g, rate_in // g)
    return np.asarray(y, dtype=np.float32)


def telephone_to_whisper(pcm16_8k: bytes | bytearray | memoryview) -> Float:
    """8 kHz signed 16-bit PCM → 16 kHz float32, what Whisper's feature extractor expects."""
    return resample(pcm16_to_float(pcm16_8k), TELEPHONE_RATE, WHISPER_RATE)


def to_telephone(samples: npt.ArrayLike, rate: int) -> Pcm:
    """Audio at ``rate`` (a file, a TTS voice) → 8 kHz int16."""
    return float_to_pcm16(resample(samples, rate, TELEPHONE_RATE))


def rms_dbfs(samples: npt.ArrayLike) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is -3 dBFS); -120 for silence."""
    arr = np.asarray(samples)
    x = pcm16_to_float(arr) if arr.dtype == np.int16 else arr.astype(np.float64)
    if x.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return max(-120.0, 20.0 * float(np.log10(rms))) if rms > 0 else -120.0
