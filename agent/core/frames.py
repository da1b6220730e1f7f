"""The one definition of the audio frame every part of the agent exchanges.

A call's audio is 8 kHz mono telephone audio cut into 20 ms frames: what G.711 RTP carries in a
packet, what the VAD classifies and what the pacer sends. μ-law has one byte per sample; the
linear form the engines read is 16-bit PCM, two bytes per sample.
"""

from __future__ import annotations

from agent.core.g711 import ULAW_SILENCE

SAMPLE_RATE = 8000
"""Samples per second of telephone audio (G.711)."""
FRAME_MS = 20
FRAME_S = FRAME_MS / 1000
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
"""160 samples in one frame."""
ULAW_FRAME_BYTES = FRAME_SAMPLES
"""160 μ-law bytes in one frame (one byte per sample)."""
PCM16_FRAME_BYTES = FRAME_SAMPLES * 2
"""320 bytes of 16-bit linear PCM in one frame."""
ULAW_SILENCE_FRAME = bytes([ULAW_SILENCE]) * ULAW_FRAME_BYTES
