from __future__ import annotations

import numpy as np
import pytest

from agent.core.g711 import ulaw_encode
from agent.core.resample import (
    float_to_pcm16,
    float_to_ulaw,
    pcm16_to_float,
    resample,
    rms_dbfs,
    telephone_to_whisper,
    to_telephone,
    ulaw_to_float,
)


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def middle(x: np.ndarray) -> np.ndarray:
    """Drop the filter's start-up and tail transients."""
    n = len(x) // 10
    return x[n:-n]


def test_3500hz_tone_keeps_its_level_from_8k_to_16k() -> None:
    x = tone(3500, 8000)
    y = resample(x, 8000, 16000)
    assert len(y) == 2 * len(x)
    assert abs(rms_dbfs(middle(y)) - rms_dbfs(middle(x))) < 1.0


def test_5khz_tone_is_not_aliased_into_the_telephone_band() -> None:
    # Naive decimation would fold 5 kHz onto 3 kHz at full level.
    x = tone(5000, 16000)
    y = resample(x, 16000, 8000)
    assert rms_dbfs(middle(y)) < rms_dbfs(x) - 40


def test_1khz_tone_from_22050_to_8k_keeps_level_and_frequency() -> None:
    x = tone(1000, 22050, seconds=1.0)
    y = to_telephone(x, 22050)
    assert y.dtype == np.int16
    assert len(y) == 8000
    spectrum = np.abs(np.fft.rfft(middle(y.astype(np.float64))))
    peak_hz = np.argmax(spectrum) * 8000 / len(middle(y))
    assert abs(peak_hz - 1000) < 5
    assert abs(rms_dbfs(middle(y)) - rms_dbfs(x)) < 0.5


def test_telephone_to_whisper_takes_pcm_bytes() -> None:
    pcm = float_to_pcm16(tone(440, 8000)).tobytes()
    y = telephone_to_whisper(pcm)
    assert y.dtype == np.float32
    assert len(y) == 8000


def test_pcm_float_round_trip_and_clipping() -> None:
    pcm = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    assert np.array_equal(float_to_pcm16(pcm16_to_float(pcm.tobytes())), pcm)
    assert float_to_pcm16([2.0, -2.0]).tolist() == [32767, -32768]


def test_ulaw_float_round_trip_is_within_quantisation() -> None:
    x = tone(300, 8000, seconds=0.1, amp=0.3)
    y = ulaw_to_float(float_to_ulaw(x))
    # μ-law's step at this level is < 1 % of full scale.
    assert np.max(np.abs(y - x)) < 0.01
    assert ulaw_to_float(ulaw_encode(np.zeros(4, dtype=np.int16))).tolist() == [0.0] * 4


def test_bad_arguments_raise_specific_errors() -> None:
    with pytest.raises(ValueError, match="sample rates must be positive"):
        resample(np.zeros(4), 0, 8000)
    with pytest.raises(ValueError, match=r"expected mono samples \(1-D\)"):
        resample(np.zeros((2, 4)), 8000, 16000)


def test_rms_dbfs_reference_points() -> None:
    assert rms_dbfs(np.zeros(10)) == -120.0
    assert abs(rms_dbfs(tone(1000, 8000, amp=1.0)) + 3.01) < 0.05
