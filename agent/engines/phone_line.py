"""The phone line: what a telephone channel does to a voice on its way to us.

Resampling to 8 kHz, the 300–3400 Hz voice band, a speaking level, seeded line hiss at a chosen
signal-to-noise ratio and optional mains hum (``telephone_channel``, pure: the same audio and seed
always give the same samples). ``medagent understand --telephone`` sends a clean recording through
it (``engines.recording``) so it sounds like a call; the stand-in's synthetic callers
(``agent.pbxsim.callers``) speak through it. ``tests/data/voices.md`` describes each stage.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, sosfilt

from agent.core.frames import FRAME_SAMPLES
from agent.core.resample import TELEPHONE_RATE, Float, resample

BAND_HZ = (300.0, 3400.0)
"""The telephone voice band (ITU-T G.712)."""

# An 8th-order Butterworth band-pass: flat in the band, about 30 dB down at 200 Hz and 3.6 kHz, like
# the gentle skirts of a real line and handset rather than a brick wall.
_BAND_SOS = butter(8, BAND_HZ, btype="bandpass", fs=TELEPHONE_RATE, output="sos")
_MAINS_HZ = 60.0


def band_limit(samples_8k: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Filter 8 kHz audio to the telephone voice band."""
    return np.asarray(sosfilt(_BAND_SOS, np.asarray(samples_8k, dtype=np.float64)))


def speech_level(samples: npt.ArrayLike) -> float:
    """RMS (linear, full scale = 1) over the 20 ms frames within 35 dB of the loudest one.

    The level of the speech itself: pauses and silent lead-in do not drag it down, so a requested
    SNR means the same thing for a terse and a rambling sentence.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = len(x) // FRAME_SAMPLES
    if n == 0:
        return float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    power = np.mean(x[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES) ** 2, axis=1)
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
