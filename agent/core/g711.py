"""ITU-T G.711 μ-law and A-law, vectorised with numpy lookup tables.

Linear samples are signed 16-bit (``numpy.int16``); codes are bytes. The tables are computed once
from the segment rules of the recommendation (the same arithmetic as the classic Sun reference
implementation ``g711.c``), so decode is a 256-entry lookup and encode a 65536-entry lookup.

μ-law has two codes for zero (0xFF = +0, 0x7F = -0); both decode to 0, which encodes to 0xFF, so
encode∘decode is the identity on every code but 0x7F. A-law has no such pair.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

Pcm = npt.NDArray[np.int16]


def _segment(values: npt.NDArray[np.int64], ends: list[int]) -> npt.NDArray[np.int64]:
    """Index of the first segment end >= value (8 when above all ends)."""
    return np.searchsorted(np.asarray(ends), values, side="left").astype(np.int64)


def _build_ulaw_decode() -> Pcm:
    u = (~np.arange(256, dtype=np.int64)) & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    out = np.where(u & 0x80, 0x84 - t, t - 0x84)
    return out.astype(np.int16)


def _build_alaw_decode() -> Pcm:
    a = np.arange(256, dtype=np.int64) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    out = np.where(a & 0x80, t, -t)
    return out.astype(np.int16)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int64) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    pcm = np.minimum(np.abs(pcm), 8159) + 0x21
    seg = _segment(pcm, [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    uval = (seg << 4) | ((pcm >> (seg + 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, uval) ^ mask
    return code.astype(np.uint8)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int64) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    pcm = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(pcm, [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    low = np.where(seg < 2, (pcm >> 1) & 0x0F, (pcm >> np.maximum(seg, 1)) & 0x0F)
    aval = (seg << 4) | low
    code = np.where(seg >= 8, 0x7F, aval) ^ mask
    return code.astype(np.uint8)


ULAW_DECODE: Pcm = _build_ulaw_decode()
ALAW_DECODE: Pcm = _build_alaw_decode()
_ULAW_ENCODE = _build_ulaw_encode()
_ALAW_ENCODE = _build_alaw_encode()


def _as_pcm(samples: npt.ArrayLike) -> npt.NDArray[np.int64]:
    arr = np.asarray(samples)
    if arr.dtype != np.int16:
        arr = np.clip(arr, -32768, 32767).astype(np.int16)
    return arr.astype(np.int64) + 32768


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    """16-bit linear samples → μ-law bytes."""
    return _ULAW_ENCODE[_as_pcm(samples)].tobytes()


def ulaw_decode(codes: bytes | bytearray | memoryview) -> Pcm:
    """μ-law bytes → 16-bit linear samples."""
    return ULAW_DECODE[np.frombuffer(codes, dtype=np.uint8)]


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """16-bit linear samples → A-law bytes."""
    return _ALAW_ENCODE[_as_pcm(samples)].tobytes()


def alaw_decode(codes: bytes | bytearray | memoryview) -> Pcm:
    """A-law bytes → 16-bit linear samples."""
    return ALAW_DECODE[np.frombuffer(codes, dtype=np.uint8)]


def alaw_to_ulaw(codes: bytes) -> bytes:
    """Transcode A-law to μ-law (what Asterisk does with PT 8 sent to a ulaw externalMedia port)."""
    return ulaw_encode(alaw_decode(codes))
