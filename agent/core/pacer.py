"""Outbound RTP pacer. Pure: the adapter asks ``due(now)`` at each deadline and sends what it gets.

Slot ``n`` is due at ``start + n * 20 ms``: deadlines are absolute, so sleep overshoot never
accumulates into drift. Each slot carries the next queued μ-law frame, or comfort silence (0xFF)
when nothing is queued, because Asterisk's simple_bridge forwards nothing on gaps and the caller's
phone would otherwise see the stream stop between prompts.

After a stall (the event loop was busy), at most ``max_catchup`` overdue slots are sent at once and
the older ones are dropped: their RTP timestamps are skipped (time went by) but no sequence number
is used (no packet was sent), and no queued audio is lost, it is only heard later. Sending the
whole backlog at once would overflow the far end's jitter buffer.

RTP header choices: our own SSRC, random initial sequence number and timestamp chosen by the
caller; sequence +1 per packet sent and timestamp +160 per slot, continuing across prompts and
silence. The marker bit is never set: the stream never pauses (silence is sent), so there is no
talkspurt start to mark (RFC 3551 §4.1), and Asterisk only looks at it to resync its own jitter
buffer, which a simple_bridge does not have.

Prompts are queued with a tag. Each tag completes exactly once: ``played`` when its last frame was
sent, ``interrupted`` when ``flush`` dropped it (barge-in) before that. ``drain`` is the goodbye:
what is queued is still sent, then the pacer is ``drained`` and sends nothing more.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from agent.core.frames import FRAME_S, ULAW_FRAME_BYTES, ULAW_SILENCE_FRAME
from agent.core.g711 import ULAW_SILENCE
from agent.core.rtp import PT_PCMU, SEQ_MOD, TS_MOD, RtpPacket


def split_frames(ulaw: bytes) -> list[bytes]:
    """Cut μ-law bytes into 160-byte frames, padding the last one with μ-law silence (0xFF)."""
    frames = [ulaw[i : i + ULAW_FRAME_BYTES] for i in range(0, len(ulaw), ULAW_FRAME_BYTES)]
    if frames and len(frames[-1]) < ULAW_FRAME_BYTES:
        frames[-1] = frames[-1] + bytes([ULAW_SILENCE]) * (ULAW_FRAME_BYTES - len(frames[-1]))
    return frames


@dataclass(frozen=True)
class PromptDone:
    """A queued prompt completed: ``played`` fully, or interrupted by ``flush``."""

    tag: str
    played: bool


@dataclass
class PacerStats:
    sent: int = 0
    """Packets returned by ``due``."""
    audio: int = 0
    """Of those, frames from queued prompts."""
    silence: int = 0
    """Of those, comfort-silence frames."""
    late: int = 0
    """Packets sent after their slot's deadline had passed by a whole slot (catch-up)."""
    dropped_slots: int = 0
    """Slots skipped after a stall (nothing sent for them)."""
    flushed_frames: int = 0
    """Queued prompt frames dropped by ``flush``."""


class Pacer:
    def __init__(
        self,
        *,
        ssrc: int,
        initial_sequence_number: int,
        initial_timestamp: int,
        start: float,
        max_catchup: int,
        payload_type: int = PT_PCMU,
        frame_s: float = FRAME_S,
    ) -> None:
        if max_catchup < 1:
            raise ValueError(f"max_catchup must be at least 1 frame, got {max_catchup}")
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.start = start
        self.frame_s = frame_s
        self.max_catchup = max_catchup
        self.stats = PacerStats()
        self._seq = initial_sequence_number % SEQ_MOD
        self._ts0 = initial_timestamp % TS_MOD
        self._slot = 0
        """Index of the next slot to send; its deadline is ``start + _slot * frame_s``."""
        self._queue: deque[tuple[bytes, str, bool]] = deque()
        """(frame, tag, last frame of its prompt)."""
        self._queued_tags: list[str] = []
        """Tags with frames still queued, in order."""
        self._done: list[PromptDone] = []
        self._draining = False
        self._drained = False

    # -- commands ------------------------------------------------------------------------------

    def enqueue(self, frames: Iterable[bytes], tag: str) -> None:
        """Queue one prompt's 160-byte μ-law frames behind what is already queued."""
        if self._draining:
            raise ValueError("cannot enqueue after drain()")
        items = list(frames)
        for frame in items:
            if len(frame) != ULAW_FRAME_BYTES:
                raise ValueError(f"pacer frames must be {ULAW_FRAME_BYTES} bytes, got {len(frame)}")
        if not items:
            # Nothing to send: it is played fully as soon as it is queued.
            self._done.append(PromptDone(tag, True))
            return
        for i, frame in enumerate(items):
            self._queue.append((frame, tag, i == len(items) - 1))
        self._queued_tags.append(tag)

    def flush(self) -> list[str]:
        """Drop all queued audio now (barge-in); returns the tags interrupted, in queue order."""
        interrupted = self._queued_tags
        self.stats.flushed_frames += len(self._queue)
        self._queue.clear()
        self._queued_tags = []
        self._done.extend(PromptDone(tag, False) for tag in interrupted)
        self._check_drained()
        return interrupted

    def drain(self) -> None:
        """Send what is queued, then stop (the goodbye): ``drained`` turns true after the last frame."""
        self._draining = True
        self._check_drained()

    # -- queries -------------------------------------------------------------------------------

    @property
    def initial_timestamp(self) -> int:
        """RTP timestamp of slot 0."""
        return self._ts0

    @property
    def drained(self) -> bool:
        return self._drained

    @property
    def queued_frames(self) -> int:
        return len(self._queue)

    def next_deadline(self) -> float:
        """When the next slot is due."""
        return self.start + self._slot * self.frame_s

    def pop_done(self) -> list[PromptDone]:
        """Completion events since the last call."""
        done, self._done = self._done, []
        return done

    def due(self, now: float) -> list[RtpPacket]:
        """The packets to send at ``now``: one per slot whose deadline has passed, within catch-up."""
        if self._drained:
            return []
        overdue = math.floor((now - self.start) / self.frame_s + 1e-9) + 1 - self._slot
        if overdue <= 0:
            return []
        if overdue > self.max_catchup:
            skipped = overdue - self.max_catchup
            self._slot += skipped
            self.stats.dropped_slots += skipped
            overdue = self.max_catchup
        packets = []
        for i in range(overdue):
            if self._drained:
                break
            packets.append(self._next_packet())
            if i < overdue - 1:
                self.stats.late += 1
        return packets

    # -- internals -----------------------------------------------------------------------------

    def _next_packet(self) -> RtpPacket:
        if self._queue:
            payload, tag, last = self._queue.popleft()
            self.stats.audio += 1
            if last:
                self._queued_tags.remove(tag)
                self._done.append(PromptDone(tag, True))
        else:
            payload = ULAW_SILENCE_FRAME
            self.stats.silence += 1
        packet = RtpPacket(
            payload_type=self.payload_type,
            sequence_number=self._seq,
            timestamp=(self._ts0 + self._slot * ULAW_FRAME_BYTES) % TS_MOD,
            ssrc=self.ssrc,
            payload=payload,
        )
        self._seq = (self._seq + 1) % SEQ_MOD
        self._slot += 1
        self.stats.sent += 1
        self._check_drained()
        return packet

    def _check_drained(self) -> None:
        if self._draining and not self._queue:
            self._drained = True
