"""Which inbound RTP packets are let in. Pure: time comes in as ``now``.

The media edge (``adapters/media.py``) applies these in order, cheapest first, and counts every drop
by its :class:`DropReason`:

1. ``no_remote``: nothing is accepted before ARI told us where Asterisk sends from.
2. ``wrong_source``: only Asterisk's address and port (strict RTP, as Asterisk itself does).
3. ``rate``: a :class:`TokenBucket` per call, so a flood from that address (spoofed, or a runaway)
   costs the call a bounded amount of work and cannot grow the frame queue.
4. ``malformed`` / ``payload_type``: what ``RtpPacket.parse`` refuses, or not G.711.
5. ``wrong_ssrc``: an :class:`SsrcLatch`: the stream we play is the one Asterisk sends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.core.rtp import SEQ_MOD, RtpPacket


class DropReason(enum.StrEnum):
    """Why an inbound datagram was dropped; the value is the ``reason`` label in ``/metrics``."""

    NO_REMOTE = "no_remote"
    WRONG_SOURCE = "wrong_source"
    RATE = "rate"
    MALFORMED = "malformed"
    PAYLOAD_TYPE = "payload_type"
    WRONG_SSRC = "wrong_ssrc"


class TokenBucket:
    """At most ``rate_per_s`` on average, with bursts of up to ``burst`` at once.

    Asterisk sends 50 packets a second at 20 ms (100 at 10 ms) and, through a simple_bridge, passes
    on the far end's jitter: a network stall is followed by its backlog in one burst. The caller of
    this class sizes both with that margin; the bucket starts full.
    """

    def __init__(self, *, rate_per_s: float, burst: float) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"token bucket rate must be > 0 per second, got {rate_per_s}")
        if not burst >= 1:
            raise ValueError(f"token bucket burst must be >= 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        """Take one token if there is one. A clock that goes backwards earns nothing."""
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
        if self._last is None or now > self._last:
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass
class SsrcLatch:
    """The SSRC of the stream we accept: the first one seen, then only the changes Asterisk makes.

    What a real Asterisk does (``asterisk-reference/README.md``, the RTP experiment): one SSRC per
    channel; when the source of what it forwards changes (the far end's SSRC changed, a
    masquerade, a bridge change: ``AST_CONTROL_SRCCHANGE``) it draws a new SSRC and sets the marker
    bit on the first packet with it. A resumption after a pause (``SRCUPDATE``, a channel playback)
    keeps the SSRC and sets the marker. So a new SSRC is accepted

    - at once when its packet carries the marker bit (Asterisk's own signal), or
    - after ``confirm_packets`` packets of it in a row, in sequence, with nothing of the current
      SSRC in between (the marked packet itself may have been lost; the probation rule of
      RFC 3550 appendix A.1).

    Anything else with another SSRC is dropped: stragglers of the previous stream, a stray stream
    sent to the wrong port. Source addresses are checked before this (the edge accepts only
    Asterisk's), so this guards against stale and misdirected streams, not against a sender that
    forges Asterisk's address: only a firewall on the RTP port range does that.
    """

    confirm_packets: int = 3
    ssrc: int | None = None
    changes: int = 0
    """How many times a new SSRC was accepted after the first."""
    _candidate: int | None = None
    _candidate_next_seq: int = 0
    _candidate_run: int = 0

    def admit(self, packet: RtpPacket) -> bool:
        if self.ssrc is None or packet.ssrc == self.ssrc:
            self.ssrc = packet.ssrc
            self._candidate = None
            return True
        if packet.marker:
            return self._switch(packet.ssrc)
        if packet.ssrc == self._candidate and packet.sequence_number == self._candidate_next_seq:
            self._candidate_run += 1
        else:
            self._candidate = packet.ssrc
            self._candidate_run = 1
        self._candidate_next_seq = (packet.sequence_number + 1) % SEQ_MOD
        if self._candidate_run >= self.confirm_packets:
            return self._switch(packet.ssrc)
        return False

    def reset(self) -> None:
        """Forget the stream (the remote address changed)."""
        self.ssrc = None
        self._candidate = None

    def _switch(self, ssrc: int) -> bool:
        self.ssrc = ssrc
        self._candidate = None
        self.changes += 1
        return True
