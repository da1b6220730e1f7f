"""The telephone-channel model and recording loader: pure signal checks, no synthesizer."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import welch

from agent.core.g711 import ulaw_encode
from agent.core.resample import ulaw_to_float
from agent.engines.telephone import (
    VOICES,
    caller_voice,
    load_audio_file,
    speech_level,
    synthesize_caller,
    telephone_channel,
)

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


def test_unknown_voice_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown voice 'robot'; expected one of: joe, joe-high, "):
        synthesize_caller("hello", "robot")
    assert {v.language for v in VOICES.values()} == {"en", "es"}


def test_voices_by_alias_and_by_espeak_name() -> None:
    assert caller_voice("piper") is VOICES["joe"]
    adhoc = caller_voice("espeak:fr+f2")
    assert (adhoc.backend, adhoc.espeak_voice, adhoc.language) == ("espeak", "fr+f2", "fr")
    with pytest.raises(ValueError, match="unknown voice 'espeak:'"):
        caller_voice("espeak:")


def test_hiss_level_is_in_dbfs_and_cannot_be_mistaken_for_an_snr() -> None:
    with pytest.raises(ValueError, match="noise_db is the hiss level in dBFS and must be <= 0"):
        synthesize_caller("hello", "us-male", noise_db=20)
    with pytest.raises(ValueError, match="not both"):
        synthesize_caller("hello", "us-male", noise_db=-40, snr_db=20)


# --------------------------------------------------------------------------------------------------
# load_audio_file


def tone(freq: float, rate: int, seconds: float, amp: float = 0.25) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def dominant_hz(ulaw: bytes) -> float:
    x = ulaw_to_float(ulaw)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[np.argmax(spectrum)])


def test_stereo_44k_16bit_wav_becomes_8k_mulaw_at_its_own_level(tmp_path: Path) -> None:
    mono = tone(1000, 44100, 1.5)
    stereo = np.stack([mono, mono], axis=1)
    path = tmp_path / "caller.wav"
    wavfile.write(path, 44100, (stereo * 32767).astype(np.int16))
    ulaw = load_audio_file(path)
    assert len(ulaw) == 12000
    assert dominant_hz(ulaw) == pytest.approx(1000, abs=10)
    rms_db = 20 * np.log10(np.std(ulaw_to_float(ulaw)[800:-800]))
    assert rms_db == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)), abs=0.3)


@pytest.mark.parametrize("dtype", ["uint8", "float32", "int32"])
def test_other_pcm_sample_types_load(tmp_path: Path, dtype: str) -> None:
    x = tone(700, 16000, 0.5)
    data = {
        "uint8": np.round(x * 127 + 128).astype(np.uint8),
        "float32": x.astype(np.float32),
        "int32": (x * 2**31).astype(np.int32),
    }[dtype]
    path = tmp_path / f"{dtype}.wav"
    wavfile.write(path, 16000, data)
    ulaw = load_audio_file(path)
    assert len(ulaw) == 4000
    assert dominant_hz(ulaw) == pytest.approx(700, abs=10)


def g711_wav(path: Path, tag: int, payload: bytes, rate: int = 8000) -> None:
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate, 1, 8) + b"\x00\x00"
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"fact" + struct.pack("<II", 4, len(payload))
    body += b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_mulaw_wav_as_asterisk_records_it_loads_unchanged(tmp_path: Path) -> None:
    payload = ulaw_encode(tone(440, 8000, 0.5) * 32767)
    path = tmp_path / "recording.wav"
    g711_wav(path, 7, payload)
    assert load_audio_file(path) == payload


def test_raw_ulaw_file_passes_through(tmp_path: Path) -> None:
    payload = ulaw_encode(tone(440, 8000, 0.2) * 32767)
    path = tmp_path / "utterance.ulaw"
    path.write_bytes(payload)
    assert load_audio_file(path) == payload


def test_not_a_wav_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_bytes(b"ID3\x03not audio at all")
    with pytest.raises(ValueError, match="not a WAV file"):
        load_audio_file(path)


def test_wav_written_by_the_wave_module_loads(tmp_path: Path) -> None:
    path = tmp_path / "w.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes((tone(300, 22050, 1.0) * 32767).astype("<i2").tobytes())
    assert len(load_audio_file(path)) == 8000
