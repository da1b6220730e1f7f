"""G.711 against an independent scalar reference written from the recommendation's segment rules."""

from __future__ import annotations

import time

import numpy as np
import pytest

from agent.core import g711


def ref_ulaw(code: int) -> int:
    """ITU-T G.711 μ-law (Table 2a): bits are inverted on the wire; sign, 3-bit segment, 4-bit step.

    Magnitude in 14-bit units is ((2*step + 33) << segment) - 33; the 16-bit value is 4 times that.
    """
    u = ~code & 0xFF
    sign = u & 0x80
    segment = (u >> 4) & 0x07
    step = u & 0x0F
    magnitude = (((2 * step + 33) << segment) - 33) * 4
    return -magnitude if sign else magnitude


def ref_alaw(code: int) -> int:
    """ITU-T G.711 A-law (Table 1a): even bits inverted (xor 0x55); sign bit 1 is positive.

    Segment 0 is linear: magnitude = 2*step + 1; segment s >= 1: (2*step + 33) << (s - 1), in
    13-bit units; the 16-bit value is 8 times that.
    """
    a = code ^ 0x55
    positive = a & 0x80
    segment = (a >> 4) & 0x07
    step = a & 0x0F
    magnitude = 2 * step + 1 if segment == 0 else (2 * step + 33) << (segment - 1)
    magnitude *= 8
    return magnitude if positive else -magnitude


CODES = bytes(range(256))


def test_every_ulaw_code_decodes_to_the_standard_value() -> None:
    assert g711.ulaw_decode(CODES).tolist() == [ref_ulaw(c) for c in range(256)]


def test_every_alaw_code_decodes_to_the_standard_value() -> None:
    assert g711.alaw_decode(CODES).tolist() == [ref_alaw(c) for c in range(256)]


@pytest.mark.parametrize(
    ("code", "value"), [(0x00, -32124), (0x80, 32124), (0xFF, 0), (0x7F, 0), (0x7E, -8), (0xFE, 8)]
)
def test_ulaw_spot_values(code: int, value: int) -> None:
    assert int(g711.ulaw_decode(bytes([code]))[0]) == value


@pytest.mark.parametrize(("code", "value"), [(0xD5, 8), (0x55, -8), (0x2A, -32256), (0xAA, 32256)])
def test_alaw_spot_values(code: int, value: int) -> None:
    assert int(g711.alaw_decode(bytes([code]))[0]) == value


def test_ulaw_encode_decode_is_identity_except_negative_zero() -> None:
    round_trip = g711.ulaw_encode(g711.ulaw_decode(CODES))
    expected = bytearray(CODES)
    expected[0x7F] = 0xFF  # -0 and +0 both decode to 0, which encodes as +0
    assert round_trip == bytes(expected)


def test_alaw_encode_decode_is_identity() -> None:
    assert g711.alaw_encode(g711.alaw_decode(CODES)) == CODES


def test_silence_constants_decode_to_zero_and_near_zero() -> None:
    assert int(g711.ulaw_decode(bytes([g711.ULAW_SILENCE]))[0]) == 0
    assert abs(int(g711.alaw_decode(bytes([g711.ALAW_SILENCE]))[0])) == 8


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_encoding_is_monotonic_and_decodes_close_to_the_input(encode, decode) -> None:  # type: ignore[no-untyped-def]
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    decoded = decode(encode(pcm)).astype(np.int64)
    assert np.all(np.diff(decoded) >= 0)
    # Quantisation error stays within half a step of the segment (at most 1/32 of the value + 16*8).
    error = np.abs(decoded - pcm.astype(np.int64))
    assert np.all(error <= np.abs(pcm.astype(np.int64)) // 16 + 136)


def test_decode_tables_are_monotonic_over_the_magnitude_order() -> None:
    # Positive μ-law codes 0xFF down to 0x80 increase in value; same shape for negatives.
    positive = g711.ulaw_decode(bytes(range(0xFF, 0x7F, -1))).astype(np.int64)
    assert np.all(np.diff(positive) > 0)
    negative = g711.ulaw_decode(bytes(range(0x7F, -1, -1))).astype(np.int64)
    assert np.all(np.diff(negative) < 0)


def test_alaw_to_ulaw_transcodes_like_decode_then_encode() -> None:
    assert g711.alaw_to_ulaw(CODES) == g711.ulaw_encode(g711.alaw_decode(CODES))


def test_out_of_range_floats_are_clipped() -> None:
    assert g711.ulaw_encode(np.array([1e9, -1e9])) == g711.ulaw_encode(
        np.array([32767, -32768], dtype=np.int16)
    )


def test_vectorised_speed_one_minute_of_audio_well_under_real_time() -> None:
    pcm = (np.sin(np.arange(8000 * 60) * 0.3) * 12000).astype(np.int16)
    started = time.perf_counter()
    for _ in range(5):
        g711.ulaw_decode(g711.ulaw_encode(pcm))
    per_minute = (time.perf_counter() - started) / 5
    # A minute of telephone audio round trips in milliseconds; 0.5 s leaves room for a busy box.
    assert per_minute < 0.5
