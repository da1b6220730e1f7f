"""Recordings → what the STT engine takes (signed 16-bit 8 kHz mono), for ``medagent understand
--audio`` and the tests; and recordings → 8 kHz μ-law for the stand-in's ``audio:`` caller steps
(``load_audio_file``).

``load_pcm16_8k`` reads here rather than by scipy: every header field is checked before it is used,
so a damaged or hostile file ends in one ValueError naming the field (scipy's reader let through
ZeroDivisionError, UnboundLocalError and struct.error, and odd sample rates made the resampler's
filter, sized by the rates' ratio, take seconds and gigabytes).
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_RECORDING_S = 300.0
"""Longest recording read: a long voicemail. A caller's turn is seconds."""
MAX_RECORDING_BYTES = 64 << 20
MAX_CHANNELS = 8
RAW_ULAW_SUFFIXES = frozenset({".ulaw", ".ul", ".mulaw", ".pcmu"})
"""File suffixes read as raw 8 kHz μ-law (what Asterisk records), with no header."""
RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
"""Sample rates read: the common ones, whose ratio to 8 kHz keeps the resampling filter short."""

_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
_FORMAT_NAMES = {_PCM: "PCM", _FLOAT: "IEEE float", _ALAW: "A-law", _MULAW: "μ-law"}
_SAMPLE_FORMATS = {
    (_PCM, 8),
    (_PCM, 16),
    (_PCM, 24),
    (_PCM, 32),
    (_FLOAT, 32),
    (_FLOAT, 64),
    (_ALAW, 8),
    (_MULAW, 8),
}


def load_pcm16_8k(path: str, *, telephone: bool) -> bytes:
    """A recording → signed 16-bit 8 kHz mono bytes, what the STT engine takes.

    WAV (PCM 8/16/24/32-bit, float, μ-law, A-law; common rates; up to ``MAX_CHANNELS``, averaged)
    or raw 8 kHz μ-law (``.ulaw``: what Asterisk records). Raises ``ValueError`` naming the file
    and what is wrong with it, or ``OSError`` when it cannot be read.
    """
    from agent.core.g711 import ulaw_decode
    from agent.core.resample import float_to_ulaw, to_telephone
    from agent.engines.phone_line import telephone_channel

    p = Path(path)
    raw = _read_recording(p)
    try:
        if p.suffix.lower() in RAW_ULAW_SUFFIXES:
            if not raw:
                raise ValueError("empty μ-law file")
            if len(raw) / 8000 > MAX_RECORDING_S:
                raise ValueError(f"longer than {MAX_RECORDING_S:g} s")
            return ulaw_decode(raw).tobytes()
        samples, rate = read_recording(raw)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None
    if not telephone:
        return to_telephone(samples, rate).tobytes()
    return ulaw_decode(float_to_ulaw(telephone_channel(samples, rate))).tobytes()


def _read_recording(p: Path) -> bytes:
    st = p.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{p}: not a regular file")
    if st.st_size > MAX_RECORDING_BYTES:
        raise ValueError(f"{p}: larger than {MAX_RECORDING_BYTES >> 20} MiB")
    with p.open("rb") as fh:
        return fh.read(MAX_RECORDING_BYTES)


@dataclass(frozen=True)
class WavFormat:
    tag: int
    """``_PCM``, ``_FLOAT``, ``_ALAW`` or ``_MULAW`` (an extensible file's sub-format)."""
    channels: int
    rate: int
    bits: int

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8


def parse_wav(raw: bytes) -> tuple[WavFormat, bytes]:
    """A RIFF/WAVE file's checked format and its whole frames of sample bytes. ``ValueError``
    names the first field that is wrong; nothing the header says is used before it is checked."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError("not a WAV file (no RIFF/WAVE header) and not a .ulaw file")
    fmt: WavFormat | None = None
    pos = 12
    while pos + 8 <= len(raw):
        chunk_id = raw[pos : pos + 4]
        size = int.from_bytes(raw[pos + 4 : pos + 8], "little")
        start = pos + 8
        available = len(raw) - start
        if chunk_id == b"fmt ":
            if size < 16:
                raise ValueError(f"fmt chunk is {size} bytes, expected at least 16")
            if size > available:
                raise ValueError(
                    f"fmt chunk claims {size} bytes but the file ends {available} later"
                )
            fmt = _parse_fmt(raw[start : start + size])
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError("data chunk before the fmt chunk")
            if size > available:
                raise ValueError(
                    f"the data chunk claims {size} bytes but the file holds {available} after "
                    "its header (a truncated file?)"
                )
            frames = size // fmt.frame_bytes  # a partial frame at the end is dropped
            if frames == 0:
                raise ValueError("no samples")
            if frames / fmt.rate > MAX_RECORDING_S:
                raise ValueError(
                    f"longer than {MAX_RECORDING_S:g} s ({frames / fmt.rate:.0f} s of audio)"
                )
            return fmt, raw[start : start + frames * fmt.frame_bytes]
        pos = start + size + (size & 1)  # chunks are padded to an even length
    raise ValueError("no fmt chunk" if fmt is None else "no data chunk")


def _parse_fmt(body: bytes) -> WavFormat:
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    # _byte_rate is redundant (rate x block_align) and not used: writers get it wrong harmlessly.
    if tag == _EXTENSIBLE:
        if len(body) < 40:
            raise ValueError(f"extensible fmt chunk is {len(body)} bytes, expected 40")
        tag = int.from_bytes(body[24:26], "little")  # the sub-format GUID begins with the tag
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"{channels} channels; expected 1 to {MAX_CHANNELS}")
    if (tag, bits) not in _SAMPLE_FORMATS:
        name = _FORMAT_NAMES.get(tag)
        what = f"{name}, {bits} bits" if name else f"format tag 0x{tag:04X}"
        raise ValueError(
            f"unsupported sample format: {what} (PCM 8/16/24/32-bit, float 32/64-bit, μ-law "
            "and A-law are read)"
        )
    if block_align != channels * bits // 8:
        raise ValueError(
            f"block align {block_align} does not match {channels} channels of {bits} bits"
        )
    if rate not in RATES:
        raise ValueError(
            f"unsupported sample rate {rate} Hz; expected one of {', '.join(map(str, RATES))}"
        )
    return WavFormat(tag, channels, rate, bits)


def read_recording(raw: bytes) -> tuple[npt.NDArray[np.float32], int]:
    """A WAV file's bytes → mono float32 samples in [-1, 1] and their rate (``parse_wav``)."""
    from agent.core.g711 import alaw_decode, ulaw_decode

    fmt, data = parse_wav(raw)
    x: npt.NDArray[Any]
    if fmt.tag == _MULAW:
        x = ulaw_decode(data) / 32768.0
    elif fmt.tag == _ALAW:
        x = alaw_decode(data) / 32768.0
    elif fmt.tag == _FLOAT:
        x = np.frombuffer(data, dtype="<f4" if fmt.bits == 32 else "<f8")
        # NaN and infinities in a damaged file would poison every later filter.
        x = np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
    elif fmt.bits == 8:  # 8-bit PCM is unsigned, centred on 128
        x = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif fmt.bits == 16:
        x = np.frombuffer(data, dtype="<i2") / 32768.0
    elif fmt.bits == 24:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v) / 8388608.0
    else:
        x = np.frombuffer(data, dtype="<i4") / 2147483648.0
    mono = x.reshape(-1, fmt.channels).mean(axis=1) if fmt.channels > 1 else x
    return np.asarray(mono, dtype=np.float32), fmt.rate


# --------------------------------------------------------------------------------------------------
# Recorded audio for the stand-in's ``audio:`` caller steps


def load_audio_file(path: str | os.PathLike[str]) -> bytes:
    """A recording → 8 kHz μ-law, keeping its level.

    Accepts WAV (PCM 8/16/24/32-bit, float, μ-law or A-law; any rate; channels are averaged) and
    raw 8 kHz μ-law (``.ulaw``, ``.ul``: what Asterisk records). Raises ``ValueError`` saying what is
    wrong with the file.
    """
    from agent.core.resample import TELEPHONE_RATE, float_to_ulaw, resample
    from agent.engines.tts import read_wav

    p = Path(path)
    if p.suffix.lower() in RAW_ULAW_SUFFIXES:
        data = p.read_bytes()
        if not data:
            raise ValueError(f"{p}: empty μ-law file")
        return data
    data = p.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{p}: not a WAV file (no RIFF/WAVE header) and not a .ulaw file")
    g711 = _g711_wav(data)
    if g711 is not None:
        samples, rate = g711
    else:
        try:
            samples, rate = read_wav(data)
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
    return float_to_ulaw(resample(samples, rate, TELEPHONE_RATE))


def _g711_wav(data: bytes) -> tuple[npt.NDArray[np.float32], int] | None:
    """Samples of a μ-law or A-law WAV (which scipy does not read); ``None`` for other WAVs."""
    from agent.core.g711 import alaw_decode, ulaw_decode
    from agent.core.resample import pcm16_to_float

    fmt: tuple[int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise ValueError(f"WAV fmt chunk is {len(body)} bytes, expected at least 16")
            tag, channels, rate = struct.unpack_from("<HHI", body)
            if tag not in (_MULAW, _ALAW):
                return None
            fmt = (tag, channels, rate)
        elif chunk_id == b"data" and fmt is not None:
            tag, channels, rate = fmt
            if channels < 1:
                raise ValueError(f"WAV declares {channels} channels")
            decoded = ulaw_decode(body) if tag == _MULAW else alaw_decode(body)
            usable = len(decoded) - len(decoded) % channels
            mono = decoded[:usable].reshape(-1, channels).astype(np.float64).mean(axis=1)
            return pcm16_to_float(np.round(mono).astype(np.int16)), rate
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    if fmt is not None:
        raise ValueError("G.711 WAV has no data chunk")
    return None
