"""Recordings read for the stand-in's ``audio:`` caller steps (``engines.recording.load_audio_file``):
any WAV or raw μ-law becomes 8 kHz μ-law at its own level."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from agent.core.g711 import ulaw_encode
from agent.core.resample import ulaw_to_float
from agent.engines.recording import load_audio_file

RATE = 8000


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
