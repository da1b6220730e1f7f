"""Sounds for ``sound:`` playbacks, without Asterisk's sound packages.

``agent/pbxsim/sounds/`` ships a few 8 kHz μ-law files (``*.ulaw``, raw) named like Asterisk's
(``beep``, ``hello-world``, ``vm-intro``); more directories can be configured, holding raw
``.ulaw`` or 8 kHz mono ``.wav`` (16-bit PCM or μ-law). ``make_sounds`` regenerates the shipped
files from numpy so they are reproducible.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agent.core.g711 import ulaw_encode

SHIPPED_DIR = Path(__file__).with_name("sounds")


def load_wav_as_ulaw(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != 8000 or w.getnchannels() != 1:
            raise ValueError(
                f"{path}: expected 8 kHz mono, got {w.getframerate()} Hz x {w.getnchannels()}"
            )
        comp = w.getcomptype()
        data = w.readframes(w.getnframes())
        if comp == "NONE" and w.getsampwidth() == 2:
            return ulaw_encode(np.frombuffer(data, dtype="<i2"))
        raise ValueError(f"{path}: expected 16-bit PCM WAV, got {comp} width {w.getsampwidth()}")


class SoundLibrary:
    """Finds ``sound:NAME`` in the configured directories, then the shipped ones."""

    def __init__(self, dirs: Sequence[str | Path] = ()) -> None:
        self.dirs = [Path(d) for d in dirs] + [SHIPPED_DIR]
        self._cache: dict[str, bytes] = {}

    def find(self, name: str) -> bytes | None:
        if "/.." in f"/{name}" or name.startswith("/"):
            return None
        if name in self._cache:
            return self._cache[name]
        for d in self.dirs:
            raw = d / f"{name}.ulaw"
            if raw.is_file():
                self._cache[name] = raw.read_bytes()
                return self._cache[name]
            wav = d / f"{name}.wav"
            if wav.is_file():
                self._cache[name] = load_wav_as_ulaw(wav)
                return self._cache[name]
        return None


def tone(freqs: Sequence[float], seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    sig = sum(np.sin(2 * np.pi * f * t) for f in freqs) / max(1, len(freqs))
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    return np.asarray(sig * ramp * level * 32767, dtype=np.int16)


def music_on_hold(seconds: float) -> bytes:
    """A soft two-note loop, distinguishable from silence and from speech-band prompts."""
    notes = [tone([392.0], 0.5, 0.1), tone([523.25], 0.5, 0.1)]
    loop = np.concatenate(notes)
    reps = int(np.ceil(seconds / 1.0))
    return ulaw_encode(np.tile(loop, reps)[: int(seconds * 8000)])


def make_sounds(out: Path = SHIPPED_DIR) -> None:
    """Write the shipped sounds (lengths match Asterisk's: beep 0.44 s, hello-world 1.42 s)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "beep.ulaw").write_bytes(ulaw_encode(tone([1000.0], 0.44)))
    syllables = [tone([300.0 + 80 * i, 900.0 + 120 * i], 0.2) for i in range(6)]
    gaps = [np.zeros(400, np.int16)] * 6
    speech = np.concatenate([x for pair in zip(syllables, gaps, strict=True) for x in pair])
    (out / "hello-world.ulaw").write_bytes(ulaw_encode(speech[: int(1.42 * 8000)]))
    (out / "vm-intro.ulaw").write_bytes(
        ulaw_encode(np.concatenate([tone([440.0, 660.0], 0.4), tone([1000.0], 0.1)]))
    )
    (out / "tone-440.ulaw").write_bytes(ulaw_encode(tone([440.0], 1.0)))


if __name__ == "__main__":  # pragma: no cover
    make_sounds()
