"""Media behaviour of the stand-in, as a pure core: no sockets, no clock reads.

What Asterisk did in ``shared/asterisk-reference/rtp`` and how it is modelled here:

* A :class:`Frame` is 20 ms of μ-law plus the RTP identity it arrived with, so a two-party
  (``simple_bridge``) bridge can forward it untouched: same order, same timestamps, no re-timing.
* :class:`RtpSender` turns frames into the packets Asterisk sends to an externalMedia peer: its
  own SSRC, a constant sequence offset per incoming stream, the incoming timestamp; a new incoming
  SSRC gives a new outgoing SSRC with the marker bit; a resumption after a hole (a channel
  playback) keeps the SSRC, continues the sequence and sets the marker.
* :class:`RtpReceiver` is strict RTP: the first source address is learned and others dropped;
  PT 0 passes, PT 8 is transcoded to μ-law, other payload types and garbage are dropped.
* :func:`mix` is softmix: every participant hears the clipped sum of the others.
* :class:`Timeline` records what a simulated phone hears on a continuous 8 kHz timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent.core.frames import FRAME_SAMPLES, SAMPLE_RATE
from agent.core.g711 import ULAW_SILENCE, alaw_to_ulaw, ulaw_decode, ulaw_encode
from agent.core.pacer import split_frames
from agent.core.rtp import PT_PCMA, PT_PCMU, SEQ_MOD, TS_MOD, RtpPacket


@dataclass(frozen=True)
class Frame:
    payload: bytes
    """μ-law; 160 bytes for 20 ms (a forwarded packet may carry another size)."""
    source: int
    """SSRC of the stream the frame came from (a mixer or player uses its own)."""
    seq: int
    ts: int
    marker: bool = False
    local: bool = False
    """Made by Asterisk itself (softmix, a playback): sent on Asterisk's own timing."""


@dataclass
class FrameSource:
    """Numbers the frames of one locally generated stream (a simulated phone, a player, a mixer)."""

    ssrc: int
    seq: int
    ts: int
    local: bool = False
    """A mixer or player inside Asterisk (not a phone's RTP stream)."""

    def next(self, payload: bytes, marker: bool = False) -> Frame:
        frame = Frame(payload, self.ssrc, self.seq, self.ts, marker, self.local)
        self.seq = (self.seq + 1) % SEQ_MOD
        self.ts = (self.ts + len(payload)) % TS_MOD
        return frame


@dataclass
class RtpSender:
    """Asterisk's outgoing RTP toward one externalMedia peer."""

    ssrc: int
    next_seq: int
    """Sequence number of the next packet when a stream (re)starts."""
    ts_base: int
    new_ssrc: list[int] = field(default_factory=list)
    """SSRCs to use, in order, when the incoming stream changes (drawn by the adapter)."""
    _source: int | None = None
    _seq_offset: int = 0
    _ts_offset: int = 0
    _last_ts: int | None = None
    _resync: bool = False

    def resync(self) -> None:
        """The stream was interrupted (e.g. a channel playback); mark the next packet."""
        self._resync = True

    def packet(self, frame: Frame) -> RtpPacket:
        if frame.local:
            # softmix / playback audio: Asterisk's own continuous timing, same SSRC (the
            # lifecycle recording shows no SSRC change while a bridge playback was mixed in).
            seq = self.next_seq
            ts = self.ts_base if self._last_ts is None else (self._last_ts + FRAME_SAMPLES) % TS_MOD
            self.next_seq = (seq + 1) % SEQ_MOD
            self._last_ts = ts
            self._resync = True  # the remote stream, when it comes back, is re-anchored
            return RtpPacket(PT_PCMU, seq, ts, self.ssrc, frame.payload)
        marker = frame.marker
        if frame.source != self._source:
            if self._source is not None:
                # A different incoming SSRC: Asterisk switched its own SSRC and set the marker.
                self.ssrc = (
                    self.new_ssrc.pop(0) if self.new_ssrc else (self.ssrc * 69069 + 1) % TS_MOD
                )
                marker = True
            self._source = frame.source
            self._seq_offset = (self.next_seq - frame.seq) % SEQ_MOD
            last = self._last_ts if self._last_ts is not None else self.ts_base - FRAME_SAMPLES
            self._ts_offset = (last + FRAME_SAMPLES - frame.ts) % TS_MOD
            self._resync = False
        elif self._resync:
            self._seq_offset = (self.next_seq - frame.seq) % SEQ_MOD
            if (
                self._last_ts is not None
                and (frame.ts + self._ts_offset - self._last_ts) % TS_MOD > TS_MOD // 2
            ):
                # Mixed audio ran ahead of the remote stream's clock: never step back in time.
                self._ts_offset = (self._last_ts + FRAME_SAMPLES - frame.ts) % TS_MOD
            marker = True
            self._resync = False
        seq = (frame.seq + self._seq_offset) % SEQ_MOD
        ts = (frame.ts + self._ts_offset) % TS_MOD
        self.next_seq = (seq + 1) % SEQ_MOD
        self._last_ts = ts
        return RtpPacket(PT_PCMU, seq, ts, self.ssrc, frame.payload, marker=marker)


@dataclass
class RtpReceiver:
    """Strict RTP on an externalMedia port: learn the first source, accept PCMU and PCMA."""

    learned: tuple[str, int] | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def _drop(self, why: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1

    def receive(self, data: bytes, addr: tuple[str, int]) -> Frame | None:
        if self.learned is not None and addr != self.learned:
            self._drop("foreign source")
            return None
        try:
            pkt = RtpPacket.parse(data)
        except ValueError:
            self._drop("malformed")
            return None
        if pkt.payload_type == PT_PCMU:
            payload = pkt.payload
        elif pkt.payload_type == PT_PCMA:
            payload = alaw_to_ulaw(pkt.payload)
        else:
            self._drop(f"payload type {pkt.payload_type}")
            return None
        if not payload:
            self._drop("empty payload")
            return None
        if self.learned is None:
            self.learned = addr
        return Frame(payload, pkt.ssrc, pkt.sequence_number, pkt.timestamp, pkt.marker)


def mix(inputs: dict[str, bytes | None]) -> dict[str, bytes]:
    """Softmix one 20 ms tick: each participant gets the sum of the others, clipped to 16 bits.

    ``inputs`` maps a participant to its μ-law frame for this tick (``None``: it sent nothing).
    """
    decoded = {
        k: np.zeros(FRAME_SAMPLES, np.int32) if v is None else _fit(ulaw_decode(v).astype(np.int32))
        for k, v in inputs.items()
    }
    total = np.zeros(FRAME_SAMPLES, np.int32)
    for pcm in decoded.values():
        total += pcm
    return {k: ulaw_encode(np.clip(total - pcm, -32768, 32767)) for k, pcm in decoded.items()}


def _fit(pcm: np.ndarray) -> np.ndarray:
    if len(pcm) == FRAME_SAMPLES:
        return pcm
    out = np.zeros(FRAME_SAMPLES, np.int32)
    n = min(FRAME_SAMPLES, len(pcm))
    out[:n] = pcm[:n]
    return out


def frames_of(ulaw: bytes) -> list[bytes]:
    """Split μ-law audio into 20 ms frames, padding the last with silence (the pacer's splitter)."""
    return split_frames(ulaw)


@dataclass
class Timeline:
    """What one party heard, on a continuous 8 kHz timeline starting at ``start_s`` (loop time).

    A frame is placed at its arrival time, or right after the previous frame when it arrives a
    little early (jitter must not overwrite audio); a gap longer than a frame becomes silence.
    """

    start_s: float
    audio: bytearray = field(default_factory=bytearray)
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    """(arrival time, sample offset) of every non-silent frame."""

    def add(self, now_s: float, payload: bytes) -> None:
        at = int(round((now_s - self.start_s) * SAMPLE_RATE))
        if at > len(self.audio) + FRAME_SAMPLES:
            self.audio.extend(bytes([ULAW_SILENCE]) * (at - len(self.audio)))
        if any(b not in (0xFF, 0x7F) for b in payload):
            self.arrivals.append((now_s, len(self.audio)))
        self.audio.extend(payload)

    def first_audio_after(self, t_s: float) -> float | None:
        """Loop time at which the first non-silent frame arrived after ``t_s``."""
        for at, _ in self.arrivals:
            if at >= t_s:
                return at
        return None
