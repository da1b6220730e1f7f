"""Inbound reorder/jitter buffer for the caller's RTP stream. Pure: time comes in as ``now``.

What Asterisk forwards to an externalMedia peer through a ``simple_bridge`` is the far end's stream
untouched (see ``asterisk-reference/README.md``): its jitter, reordering, duplicates, packets 50
slots late, silent gaps with no packets at all, and the far end's packet size. Phones and trunks
send 10, 20, 30 or 40 ms packets; nothing downstream should have to care. This buffer turns the
stream into an ordered run of exactly 20 ms (160-byte) frames that keeps time, so the VAD
downstream measures silence correctly:

- ``FrameStatus.RECEIVED``: the caller's audio, in sequence order.
- ``FrameStatus.LOST``: μ-law silence standing in for sequence numbers we gave up waiting for
  (waited at most ``max_delay_ms`` after a later packet arrived). The silence is as long as the
  audio that is missing: the RTP timestamp gap up to the next packet we have, or, when that gap is
  not believable, as many samples per missing packet as the last packet carried. A lost 30 ms
  packet is 30 ms of silence, not one 20 ms frame.
- ``FrameStatus.FILL``: μ-law silence for a 20 ms slot in which nothing arrived at all (the far end
  stopped sending; a simple_bridge forwards nothing). The next packet is due one packet's duration
  after the last was played; from then on, each 20 ms without one (and ``max_delay_ms`` grace) is
  filled. Fill consumes no sequence number, so when the stream resumes its next packet is played
  normally; fill already emitted is counted against a later sequence gap so the same stretch of
  time is not concealed twice.

Packets go in and come out per packet (keyed by sequence number); the audio then passes through a
re-framer that cuts it into 160-byte frames and holds a remainder (under 20 ms) until the next
audio completes it. A frame that holds any of the caller's audio is RECEIVED. Each frame carries
the sequence number of the packet its first sample came from and the RTP timestamp of that sample.
``drain`` pads the last partial frame with silence.

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

from agent.core.frames import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, ULAW_SILENCE_FRAME
from agent.core.g711 import ULAW_SILENCE
from agent.core.rtp import SEQ_MOD, TS_MOD, RtpPacket, seq_distance

MAX_PACKET_SAMPLES = 1600
"""The most audio one packet may carry (200 ms). G.711 packets are at most 120 ms in practice (and
must fit a 1500-byte MTU); the media edge drops larger ones, and a timestamp gap wider than this
per missing packet is not believed."""

# How many recently played sequence numbers we remember to tell a duplicate from a late packet.
_PLAYED_MEMORY = 256
# Further behind than this is not a late packet but a sequence restart candidate (RFC 3550 A.1
# uses 100; Asterisk forwards 50-late packets, so keep a margin).
_MAX_MISORDER = 200


class FrameStatus(enum.Enum):
    RECEIVED = "received"
    LOST = "lost"
    FILL = "fill"


# When one frame is cut from pieces of different kinds, the strongest names it: any of the
# caller's audio makes it RECEIVED (the VAD should look at it).
_RANK = {FrameStatus.FILL: 0, FrameStatus.LOST: 1, FrameStatus.RECEIVED: 2}


@dataclass(frozen=True)
class JitterFrame:
    payload: bytes
    """160 μ-law bytes: the caller's audio, or silence (0xFF) for LOST and FILL."""
    sequence_number: int
    """16-bit RTP sequence number of the packet the first sample came from; for FILL, the number
    expected next (not consumed)."""
    timestamp: int
    """RTP timestamp of the first sample; extrapolated for LOST and FILL."""
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
    reframed: int = 0
    """Accepted packets whose payload was not 20 ms (cut into 20 ms frames)."""


@dataclass
class _Stream:
    ssrc: int
    next_ext: int
    """Extended sequence number to play next."""
    highest_ext: int
    next_ts: int
    """RTP timestamp expected for ``next_ext``: where the last packet played ended."""
    due_at: float
    """When the next packet is due: the last one's release time plus its duration, moved on by
    20 ms for each slot filled since."""
    last_samples: int = FRAME_SAMPLES
    """Samples the last packet played carried: the size of a missing packet when the timestamps
    cannot tell."""
    fill_pending: int = 0
    """Samples of FILL emitted since the last RECEIVED packet, to offset against a sequence gap."""
    buffer: dict[int, tuple[RtpPacket, float]] = field(default_factory=dict)
    """Packets waiting for a missing one, by extended sequence number, with their arrival time.
    The head has been missing since the earliest of those arrivals."""
    played: deque[int] = field(default_factory=lambda: deque(maxlen=_PLAYED_MEMORY))


class _Framer:
    """Cuts audio of any length into 160-byte frames; holds the remainder for the next piece."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._seq = 0
        self._ts = 0
        self._status = FrameStatus.FILL

    def add(
        self, payload: bytes, seq: int, ts: int, status: FrameStatus, out: list[JitterFrame]
    ) -> None:
        if not self._buf and len(payload) == FRAME_SAMPLES:
            out.append(JitterFrame(payload, seq, ts, status))  # the common case: no copy
            return
        pos = 0
        while pos < len(payload):
            if not self._buf:
                self._seq, self._ts, self._status = seq, (ts + pos) % TS_MOD, status
            elif _RANK[status] > _RANK[self._status]:
                self._status = status
            take = min(FRAME_SAMPLES - len(self._buf), len(payload) - pos)
            self._buf += payload[pos : pos + take]
            pos += take
            if len(self._buf) == FRAME_SAMPLES:
                out.append(JitterFrame(bytes(self._buf), self._seq, self._ts, self._status))
                self._buf.clear()

    def flush(self, out: list[JitterFrame]) -> None:
        """Pad what is held with silence into a last frame."""
        if self._buf:
            self._buf += ULAW_SILENCE_FRAME[len(self._buf) :]
            out.append(JitterFrame(bytes(self._buf), self._seq, self._ts, self._status))
            self._buf.clear()


class JitterBuffer:
    """Push packets as they arrive, pop ordered 20 ms frames; both take the current time in seconds."""

    def __init__(
        self, max_delay_ms: int, *, resync_gap_frames: int = 500, fill_gaps: bool = True
    ) -> None:
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0, got {max_delay_ms}")
        self.max_delay_s = max_delay_ms / 1000.0
        self.resync_gap_frames = resync_gap_frames
        """How far ahead (in packets) a sequence number may jump before it is a restart candidate."""
        self.fill_gaps = fill_gaps
        self.stats = JitterStats()
        self._stream: _Stream | None = None
        self._probation_seq: int | None = None
        """After a far-out packet: the sequence number that would confirm a restart."""
        self._framer = _Framer()
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
        self._accept(stream, ext, packet, now)
        self._release_in_order(stream, now)

    def _accept(self, stream: _Stream, ext: int, packet: RtpPacket, now: float) -> None:
        stream.buffer[ext] = (packet, now)
        self.stats.received += 1
        if len(packet.payload) != FRAME_SAMPLES:
            self.stats.reframed += 1

    def _new_stream(self, packet: RtpPacket, now: float) -> _Stream:
        ext = packet.sequence_number
        stream = _Stream(
            ssrc=packet.ssrc,
            next_ext=ext,
            highest_ext=ext,
            next_ts=packet.timestamp,
            due_at=now,
        )
        self._accept(stream, ext, packet, now)
        self._release_in_order(stream, now)
        return stream

    def _restart(self, now: float) -> None:
        """Release what is buffered of the current stream in order, then forget it.

        The re-framer keeps any partial frame: the new stream's audio follows on from it."""
        stream = self._stream
        if stream is None:
            return
        while stream.buffer:
            self._skip_missing(stream)
            self._release_in_order(stream, now)
        self._stream = None
        self._probation_seq = None
        self.stats.resets += 1

    # -- output --------------------------------------------------------------------------------

    def pop(self, now: float) -> list[JitterFrame]:
        """Frames ready at ``now``: in-order audio, plus concealment for gaps given up on."""
        stream = self._stream
        if stream is not None:
            if stream.buffer:
                while stream.buffer and now >= self._gap_deadline(stream):
                    self._skip_missing(stream)
                    self._release_in_order(stream, now)
            elif self.fill_gaps:
                # The next packet was due at ``due_at``; give it max_delay to arrive, then fill
                # each 20 ms slot that passes without one.
                slots = math.floor((now - self.max_delay_s - stream.due_at) / FRAME_S + 1 + 1e-9)
                for _ in range(max(0, slots)):
                    self._emit(
                        ULAW_SILENCE_FRAME,
                        stream.next_ext % SEQ_MOD,
                        (stream.next_ts + stream.fill_pending) % TS_MOD,
                        FrameStatus.FILL,
                    )
                    stream.fill_pending += FRAME_SAMPLES
                    stream.due_at += FRAME_S
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
            return stream.due_at + self.max_delay_s
        return None

    def drain(self, now: float) -> list[JitterFrame]:
        """Everything still buffered, in order, without waiting (the call is ending); the last
        partial frame is padded with silence."""
        self._restart(now)
        self._framer.flush(self._ready)
        ready, self._ready = self._ready, []
        return ready

    # -- internals -----------------------------------------------------------------------------

    def _emit(self, payload: bytes, seq: int, ts: int, status: FrameStatus) -> None:
        self._framer.add(payload, seq, ts, status, self._ready)

    def _gap_deadline(self, stream: _Stream) -> float:
        return min(arrival for _packet, arrival in stream.buffer.values()) + self.max_delay_s

    def _release_in_order(self, stream: _Stream, now: float) -> None:
        while stream.next_ext in stream.buffer:
            packet, _arrival = stream.buffer.pop(stream.next_ext)
            samples = len(packet.payload)
            self._emit(
                packet.payload, packet.sequence_number, packet.timestamp, FrameStatus.RECEIVED
            )
            stream.played.append(stream.next_ext)
            stream.next_ext += 1
            stream.next_ts = (packet.timestamp + samples) % TS_MOD
            if samples:
                stream.last_samples = min(samples, MAX_PACKET_SAMPLES)
            stream.due_at = now + samples / SAMPLE_RATE
            stream.fill_pending = 0

    def _skip_missing(self, stream: _Stream) -> None:
        """Give up on the sequence numbers before the first buffered packet; conceal as much audio
        as they held, less what fill already covered."""
        head = min(stream.buffer)
        count = head - stream.next_ext
        if count <= 0:
            return
        gap = (stream.buffer[head][0].timestamp - stream.next_ts) % TS_MOD
        if not 0 < gap <= count * MAX_PACKET_SAMPLES:
            # A timestamp jump (the sender re-anchored its clock) or a stall: trust packet sizes.
            gap = count * stream.last_samples
        share, extra = divmod(gap, count)
        filled = stream.fill_pending
        stream.fill_pending = 0
        for i in range(count):
            samples = share + (extra if i == count - 1 else 0)
            covered = min(samples, filled)
            filled -= covered
            if samples > covered:
                self._emit(
                    bytes([ULAW_SILENCE]) * (samples - covered),
                    stream.next_ext % SEQ_MOD,
                    (stream.next_ts + covered) % TS_MOD,
                    FrameStatus.LOST,
                )
            stream.next_ext += 1
            stream.next_ts = (stream.next_ts + samples) % TS_MOD
        self.stats.lost += count
