"""Inbound reorder/jitter buffer for the caller's RTP stream. Pure: time comes in as ``now``.

What Asterisk forwards to an externalMedia peer through a ``simple_bridge`` is the far end's stream
untouched (see ``asterisk-reference/README.md``): its jitter, reordering, duplicates, packets 50
slots late, and silent gaps with no packets at all. This buffer turns that into an ordered run of
20 ms frames that keeps time, so the VAD downstream measures silence correctly:

- ``FrameStatus.RECEIVED``: a packet's payload, in sequence order.
- ``FrameStatus.LOST``: μ-law silence standing in for a sequence number we gave up waiting for
  (waited at most ``max_delay_ms`` after a later packet arrived). One frame per missing number.
- ``FrameStatus.FILL``: μ-law silence for a 20 ms slot in which nothing arrived at all (the far end
  stopped sending; a simple_bridge forwards nothing). Fill frames consume no sequence number, so
  when the stream resumes its next packet is played normally; any fill already emitted is counted
  against a later sequence gap so the same stretch of time is not concealed twice.

Sequence numbers are extended past the 16-bit wrap (RFC 3550 appendix A.1) relative to the highest
number seen. A new SSRC (Asterisk also sets the marker on that first packet) is a new stream: what
is buffered of the old one is released in order and sequencing starts afresh. A packet far
outside the window (more than ``resync_gap_frames`` ahead, or more than ``_MAX_MISORDER`` behind)
is dropped, but if the next packet follows on from it the sender has restarted its sequence and we
restart with it (the probation rule of RFC 3550 appendix A.1): one stray number cannot derail the
stream, and a real restart costs one packet instead of minutes of "loss" or of "late" drops.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

from agent.core.g711 import ULAW_SILENCE
from agent.core.rtp import SEQ_MOD, TS_MOD, RtpPacket, seq_distance

FRAME_SAMPLES = 160
"""Samples (= μ-law bytes) in one 20 ms frame at 8 kHz."""
FRAME_S = 0.020
SILENCE_FRAME = bytes([ULAW_SILENCE]) * FRAME_SAMPLES

# How many recently played sequence numbers we remember to tell a duplicate from a late packet.
_PLAYED_MEMORY = 256
# Further behind than this is not a late packet but a sequence restart candidate (RFC 3550 A.1
# uses 100; Asterisk forwards 50-late packets, so keep a margin).
_MAX_MISORDER = 200


class FrameStatus(enum.Enum):
    RECEIVED = "received"
    LOST = "lost"
    FILL = "fill"


@dataclass(frozen=True)
class JitterFrame:
    payload: bytes
    """μ-law bytes: the packet's payload, or 160 bytes of silence (0xFF) for LOST and FILL."""
    sequence_number: int
    """16-bit RTP sequence number; for FILL, the number expected next (not consumed)."""
    timestamp: int
    """RTP timestamp; extrapolated (+160 per frame) for LOST and FILL."""
    status: FrameStatus = FrameStatus.RECEIVED

    @property
    def lost(self) -> bool:
        """True when this frame is concealment silence, not caller audio."""
        return self.status is not FrameStatus.RECEIVED


@dataclass
class JitterStats:
    received: int = 0
    """Packets accepted into the buffer (not counting duplicates and late ones)."""
    duplicates: int = 0
    late: int = 0
    """Packets dropped because their slot was already played out or given up on."""
    lost: int = 0
    """Sequence numbers given up on."""
    reordered: int = 0
    """Accepted packets that arrived after a higher-numbered one."""
    filled: int = 0
    """20 ms slots filled with silence because nothing arrived."""
    resets: int = 0
    """Sequencing restarts: SSRC changes and sequence jumps confirmed by the next packet."""
    jumps: int = 0
    """Packets dropped because their number was far outside the window (restart candidates)."""


@dataclass
class _Stream:
    ssrc: int
    next_ext: int
    """Extended sequence number to play next."""
    highest_ext: int
    next_ts: int
    """RTP timestamp expected for ``next_ext`` (for concealment frames)."""
    anchor_time: float
    """Arrival time of the last RECEIVED frame released, or of the last slot filled."""
    fills_pending: int = 0
    """FILL frames emitted since the last RECEIVED one, to offset against a sequence gap."""
    buffer: dict[int, tuple[RtpPacket, float]] = field(default_factory=dict)
    """Packets waiting for a missing one, by extended sequence number, with their arrival time.
    The head has been missing since the earliest of those arrivals."""
    played: deque[int] = field(default_factory=lambda: deque(maxlen=_PLAYED_MEMORY))


class JitterBuffer:
    """Push packets as they arrive, pop ordered frames; both take the current time in seconds."""

    def __init__(
        self, max_delay_ms: int, *, resync_gap_frames: int = 500, fill_gaps: bool = True
    ) -> None:
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0, got {max_delay_ms}")
        self.max_delay_s = max_delay_ms / 1000.0
        self.resync_gap_frames = resync_gap_frames
        self.fill_gaps = fill_gaps
        self.stats = JitterStats()
        self._stream: _Stream | None = None
        self._probation_seq: int | None = None
        """After a far-out packet: the sequence number that would confirm a restart."""
        self._ready: list[JitterFrame] = []

    # -- input ---------------------------------------------------------------------------------

    def push(self, packet: RtpPacket, now: float) -> None:
        """Accept one parsed packet that arrived at ``now``; frames come out of ``pop``."""
        stream = self._stream
        if stream is not None and packet.ssrc != stream.ssrc:
            self._restart(now)
            stream = None
        if stream is None:
            self._stream = self._new_stream(packet, now)
            return
        ext = stream.highest_ext + seq_distance(
            stream.highest_ext % SEQ_MOD, packet.sequence_number
        )
        distance = ext - stream.next_ext
        if distance > self.resync_gap_frames or distance < -_MAX_MISORDER:
            if packet.sequence_number == self._probation_seq:
                self._restart(now)
                self._stream = self._new_stream(packet, now)
            else:
                self._probation_seq = (packet.sequence_number + 1) % SEQ_MOD
                self.stats.jumps += 1
            return
        self._probation_seq = None
        if ext < stream.next_ext:
            if ext in stream.played:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            return
        if ext in stream.buffer:
            self.stats.duplicates += 1
            return
        if ext < stream.highest_ext:
            self.stats.reordered += 1
        stream.highest_ext = max(stream.highest_ext, ext)
        stream.buffer[ext] = (packet, now)
        self.stats.received += 1
        self._release_in_order(stream, now)

    def _new_stream(self, packet: RtpPacket, now: float) -> _Stream:
        ext = packet.sequence_number
        stream = _Stream(
            ssrc=packet.ssrc,
            next_ext=ext,
            highest_ext=ext,
            next_ts=packet.timestamp,
            anchor_time=now,
        )
        stream.buffer[ext] = (packet, now)
        self.stats.received += 1
        self._release_in_order(stream, now)
        return stream

    def _restart(self, now: float) -> None:
        """Release what is buffered of the current stream in order, then forget it."""
        stream = self._stream
        if stream is None:
            return
        while stream.buffer:
            self._skip_missing(stream, min(stream.buffer) - stream.next_ext)
            self._release_in_order(stream, now)
        self._stream = None
        self._probation_seq = None
        self.stats.resets += 1

    # -- output --------------------------------------------------------------------------------

    def pop(self, now: float) -> list[JitterFrame]:
        """Frames ready at ``now``: in-order packets, plus concealment for gaps given up on."""
        stream = self._stream
        if stream is not None:
            if stream.buffer:
                while stream.buffer and now >= self._gap_deadline(stream):
                    self._skip_missing(stream, min(stream.buffer) - stream.next_ext)
                    self._release_in_order(stream, now)
            elif self.fill_gaps:
                # Slot k (1-based) after the anchor is due at anchor + k*20 ms; give the packet
                # max_delay to arrive before filling it.
                slots = math.floor((now - self.max_delay_s - stream.anchor_time) / FRAME_S + 1e-9)
                for _ in range(max(0, slots)):
                    self._ready.append(
                        JitterFrame(
                            SILENCE_FRAME,
                            stream.next_ext % SEQ_MOD,
                            (stream.next_ts + stream.fills_pending * FRAME_SAMPLES) % TS_MOD,
                            FrameStatus.FILL,
                        )
                    )
                    stream.fills_pending += 1
                    stream.anchor_time += FRAME_S
                    self.stats.filled += 1
        ready, self._ready = self._ready, []
        return ready

    def next_deadline(self) -> float | None:
        """The earliest time at which ``pop`` may return something new without a new packet."""
        stream = self._stream
        if stream is None:
            return None
        if stream.buffer:
            return self._gap_deadline(stream)
        if self.fill_gaps:
            return stream.anchor_time + FRAME_S + self.max_delay_s
        return None

    def drain(self, now: float) -> list[JitterFrame]:
        """Everything still buffered, in order, without waiting (the call is ending)."""
        self._restart(now)
        ready, self._ready = self._ready, []
        return ready

    # -- internals -----------------------------------------------------------------------------

    def _gap_deadline(self, stream: _Stream) -> float:
        return min(arrival for _packet, arrival in stream.buffer.values()) + self.max_delay_s

    def _release_in_order(self, stream: _Stream, now: float) -> None:
        while stream.next_ext in stream.buffer:
            packet, _arrival = stream.buffer.pop(stream.next_ext)
            self._ready.append(
                JitterFrame(packet.payload, packet.sequence_number, packet.timestamp)
            )
            stream.played.append(stream.next_ext)
            stream.next_ext += 1
            stream.next_ts = (packet.timestamp + FRAME_SAMPLES) % TS_MOD
            stream.anchor_time = now
            stream.fills_pending = 0

    def _skip_missing(self, stream: _Stream, count: int) -> None:
        """Give up on ``count`` sequence numbers at the head; conceal those not already filled."""
        already_filled = min(count, stream.fills_pending)
        stream.fills_pending = 0
        for i in range(count):
            if i >= already_filled:
                self._ready.append(
                    JitterFrame(
                        SILENCE_FRAME,
                        stream.next_ext % SEQ_MOD,
                        stream.next_ts,
                        FrameStatus.LOST,
                    )
                )
            stream.next_ext += 1
            stream.next_ts = (stream.next_ts + FRAME_SAMPLES) % TS_MOD
        self.stats.lost += count
