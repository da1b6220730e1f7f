"""The phone-line model (``engines.phone_line``): pure signal checks, no synthesizer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from agent.core.g711 import ulaw_encode
from agent.core.resample import ulaw_to_float
from agent.engines.phone_line import speech_level, telephone_channel

RATE = 8000


def band_power_db(x: np.ndarray, lo: float, hi: float, rate: int = RATE) -> float:
    freqs, psd = welch(x, fs=rate, nperseg=1024)
    sel = (freqs >= lo) & (freqs <= hi)
    return float(10 * np.log10(np.mean(psd[sel]) + 1e-30))


def speechlike(rate: int = 22050, seconds: float = 2.0, seed: int = 7) -> np.ndarray:
    """Bursts of band-rich noise with pauses: active and silent stretches like a sentence."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(rate * seconds)) * 0.3
    envelope = np.zeros_like(x)
    for start in (0.1, 0.6, 1.2):
        envelope[int(start * rate) : int((start + 0.35) * rate)] = 1.0
    return (x * envelope).astype(np.float32)


def test_channel_keeps_the_voice_band_and_cuts_below_300_and_above_3400() -> None:
    noise = np.random.default_rng(1).standard_normal(RATE * 4).astype(np.float32) * 0.2
    out = telephone_channel(noise, RATE, level_dbfs=-20.0)
    passband = band_power_db(out, 500, 3000)
    assert band_power_db(out, 20, 180) < passband - 30
    assert band_power_db(out, 3650, 3990) < passband - 30
    # The band edges themselves are only gently rolled off, as on a real line.
    assert band_power_db(out, 400, 600) > passband - 3


def test_channel_from_22khz_removes_what_would_alias() -> None:
    # A 6 kHz tone would fold to 2.05 kHz if the decimation were not low-passed first.
    t = np.arange(22050) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    speech = speechlike()
    out_clean = telephone_channel(speech, 22050)
    out_mixed = telephone_channel(speech + np.pad(tone, (0, len(speech) - len(tone))), 22050)
    assert abs(band_power_db(out_mixed, 1950, 2150) - band_power_db(out_clean, 1950, 2150)) < 1.0


def test_channel_is_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    x = speechlike()
    a = telephone_channel(x, 22050, snr_db=15, hum_db=30, seed=3)
    b = telephone_channel(x, 22050, snr_db=15, hum_db=30, seed=3)
    c = telephone_channel(x, 22050, snr_db=15, hum_db=30, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("snr_db", [5.0, 15.0, 25.0])
def test_hiss_is_at_the_requested_snr_after_mulaw(snr_db: float) -> None:
    x = speechlike()
    clean = ulaw_to_float(ulaw_encode(telephone_channel(x, 22050) * 32768))
    noisy = ulaw_to_float(ulaw_encode(telephone_channel(x, 22050, snr_db=snr_db, seed=9) * 32768))
    hiss = noisy.astype(np.float64) - clean
    measured = 20 * np.log10(speech_level(clean) / np.sqrt(np.mean(hiss**2)))
    assert measured == pytest.approx(snr_db, abs=1.0)


def test_speech_is_set_to_the_requested_level() -> None:
    out = telephone_channel(speechlike(), 22050, level_dbfs=-26.0)
    assert 20 * np.log10(speech_level(out)) == pytest.approx(-26.0, abs=0.01)


def test_hum_sits_on_the_mains_harmonics_inside_the_band() -> None:
    x = speechlike()
    out = telephone_channel(x, 22050, hum_db=10.0, seed=1) - telephone_channel(x, 22050)
    assert band_power_db(out, 170, 190) > band_power_db(out, 230, 270) + 20
    assert 20 * np.log10(speech_level(telephone_channel(x, 22050)) / np.std(out)) == pytest.approx(
        10.0, abs=0.5
    )


def test_silent_audio_is_refused() -> None:
    with pytest.raises(ValueError, match="silent"):
        telephone_channel(np.zeros(8000, dtype=np.float32), 8000)
