"""Which inbound RTP packets are let in: the token bucket and the SSRC latch. Pure, no loop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.admission import SsrcLatch, TokenBucket
from agent.core.rtp import RtpPacket


def pkt(seq: int, ssrc: int, *, marker: bool = False) -> RtpPacket:
    return RtpPacket(0, seq % 65536, seq * 160 % 2**32, ssrc, b"\xff" * 160, marker)


def test_bucket_passes_a_steady_stream_and_a_burst_then_limits_a_flood() -> None:
    bucket = TokenBucket(rate_per_s=200, burst=50)
    # 50 packets/s for 10 s: all pass.
    assert all(bucket.allow(i * 0.02) for i in range(500))
    # A burst of 50 at once (a stalled network delivering its backlog): all pass.
    assert all(bucket.allow(10.0) for _ in range(50))
    # A flood of 10 000 in one second: about 200 pass.
    passed = sum(bucket.allow(10.0 + i / 10_000) for i in range(10_000))
    assert 190 <= passed <= 210


def test_bucket_ignores_a_clock_that_goes_backwards() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=1)
    assert bucket.allow(100.0)
    assert not bucket.allow(50.0)  # no credit for time travel
    assert not bucket.allow(100.5)
    assert bucket.allow(101.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5)])
def test_bucket_rejects_settings_that_pass_nothing(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate_per_s=rate, burst=burst)


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.floats(0, 0.1, allow_nan=False), min_size=1, max_size=300),
    rate=st.floats(1, 500),
    burst=st.integers(1, 100),
)
def test_bucket_never_passes_more_than_rate_times_time_plus_burst(
    gaps: list[float], rate: float, burst: int
) -> None:
    bucket = TokenBucket(rate_per_s=rate, burst=burst)
    now = 0.0
    passed = 0
    for gap in gaps:
        now += gap
        passed += bucket.allow(now)
    assert passed <= burst + rate * now + 1e-6


def test_latch_takes_the_first_ssrc_and_drops_others() -> None:
    latch = SsrcLatch()
    assert latch.admit(pkt(1, 0xAAAA))
    assert not latch.admit(pkt(77, 0xBBBB))
    assert latch.admit(pkt(2, 0xAAAA))
    assert latch.ssrc == 0xAAAA and latch.changes == 0


def test_latch_follows_asterisks_ssrc_change_marked_by_the_marker_bit() -> None:
    """asterisk-reference: when the source changes, Asterisk takes a new SSRC and marks the first
    packet. The old SSRC's stragglers are dropped after that."""
    latch = SsrcLatch()
    assert latch.admit(pkt(1, 0xAAAA))
    assert latch.admit(pkt(500, 0xBBBB, marker=True))
    assert latch.ssrc == 0xBBBB and latch.changes == 1
    assert not latch.admit(pkt(2, 0xAAAA))
    assert latch.admit(pkt(501, 0xBBBB))


def test_latch_follows_an_unmarked_change_after_consecutive_packets() -> None:
    """The marked packet itself may be lost: three in a row of the new SSRC confirm the change."""
    latch = SsrcLatch(confirm_packets=3)
    assert latch.admit(pkt(1, 0xAAAA))
    assert not latch.admit(pkt(501, 0xBBBB))
    assert not latch.admit(pkt(502, 0xBBBB))
    assert latch.admit(pkt(503, 0xBBBB))
    assert latch.ssrc == 0xBBBB


def test_latch_needs_the_run_unbroken_by_the_current_stream_and_in_sequence() -> None:
    latch = SsrcLatch(confirm_packets=3)
    assert latch.admit(pkt(1, 0xAAAA))
    assert not latch.admit(pkt(501, 0xBBBB))
    assert not latch.admit(pkt(502, 0xBBBB))
    assert latch.admit(pkt(2, 0xAAAA))  # the current stream is alive: the run starts over
    assert not latch.admit(pkt(503, 0xBBBB))
    assert not latch.admit(pkt(504, 0xBBBB))
    assert not latch.admit(pkt(900, 0xBBBB))  # not in sequence
    assert not latch.admit(pkt(7, 0xCCCC))  # another stranger
    assert latch.ssrc == 0xAAAA


def test_latch_reset_forgets_the_stream() -> None:
    latch = SsrcLatch()
    assert latch.admit(pkt(1, 0xAAAA))
    latch.reset()
    assert latch.admit(pkt(1, 0xBBBB))
    assert latch.ssrc == 0xBBBB
