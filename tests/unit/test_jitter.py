"""The inbound reorder/jitter buffer: pure, driven by arrival times, no event loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.frames import ULAW_SILENCE_FRAME
from agent.core.jitter import FrameStatus, JitterBuffer, JitterFrame
from agent.core.rtp import RtpPacket

DATA = Path(__file__).resolve().parent.parent / "data" / "rtp"
SSRC = 0x1234ABCD


def pkt(seq: int, *, ssrc: int = SSRC, ts: int | None = None, marker: bool = False) -> RtpPacket:
    seq %= 1 << 16
    payload = bytes([seq & 0xFF]) * 160  # distinguishable per packet
    return RtpPacket(
        0, seq, (ts if ts is not None else seq * 160) % (1 << 32), ssrc, payload, marker
    )


def feed(
    jb: JitterBuffer, arrivals: list[tuple[float, RtpPacket]], until: float
) -> list[JitterFrame]:
    """Push each packet at its time, popping after every push and on a 5 ms clock until ``until``."""
    out: list[JitterFrame] = []
    arrivals = sorted(arrivals, key=lambda a: a[0])
    t = 0.0
    i = 0
    while t <= until:
        while i < len(arrivals) and arrivals[i][0] <= t:
            jb.push(arrivals[i][1], arrivals[i][0])
            out += jb.pop(arrivals[i][0])
            i += 1
        out += jb.pop(t)
        t = round(t + 0.005, 6)
    return out


def test_in_order_packets_come_out_at_once() -> None:
    jb = JitterBuffer(60)
    jb.push(pkt(100), 0.0)
    assert [f.sequence_number for f in jb.pop(0.0)] == [100]
    jb.push(pkt(101), 0.02)
    frames = jb.pop(0.02)
    assert frames == [JitterFrame(pkt(101).payload, 101, 101 * 160, FrameStatus.RECEIVED)]
    assert not frames[0].lost
    assert jb.stats.received == 2


def test_reordered_packet_waits_for_the_missing_one() -> None:
    jb = JitterBuffer(60)
    jb.push(pkt(1), 0.0)
    jb.pop(0.0)
    jb.push(pkt(3), 0.040)
    assert jb.pop(0.041) == []
    assert jb.next_deadline() == pytest.approx(0.100)
    jb.push(pkt(2), 0.050)
    assert [f.sequence_number for f in jb.pop(0.050)] == [2, 3]
    assert jb.stats.reordered == 1
    assert jb.stats.lost == 0


def test_missing_packet_is_given_up_after_max_delay_and_concealed() -> None:
    jb = JitterBuffer(60)
    jb.push(pkt(1), 0.0)
    jb.pop(0.0)
    jb.push(pkt(4), 0.070)
    assert jb.pop(0.129) == []
    frames = jb.pop(0.130)
    assert [(f.sequence_number, f.status) for f in frames] == [
        (2, FrameStatus.LOST),
        (3, FrameStatus.LOST),
        (4, FrameStatus.RECEIVED),
    ]
    assert frames[0].payload == ULAW_SILENCE_FRAME and frames[0].lost
    assert [f.timestamp for f in frames] == [320, 480, 640]
    assert jb.stats.lost == 2
    # The real packet 2 arriving now is too late: its slot was given up on.
    jb.push(pkt(2), 0.140)
    assert jb.pop(0.140) == []
    assert jb.stats.late == 1
    assert jb.stats.duplicates == 0


def test_duplicates_are_dropped_and_counted_whether_buffered_or_played() -> None:
    jb = JitterBuffer(60)
    jb.push(pkt(10), 0.0)
    jb.push(pkt(10), 0.001)  # already played
    jb.push(pkt(12), 0.02)
    jb.push(pkt(12), 0.021)  # still buffered
    jb.push(pkt(11), 0.03)
    assert [f.sequence_number for f in jb.pop(0.03)] == [10, 11, 12]
    assert jb.stats.duplicates == 2
    assert jb.stats.received == 3


def test_sequence_wraps_around_16_bits() -> None:
    jb = JitterBuffer(60)
    seqs = [65533, 65534, 0, 65535, 1, 2]  # one reorder across the wrap
    arrivals = [(i * 0.02, pkt(s)) for i, s in enumerate(seqs)]
    out = feed(jb, arrivals, 0.2)
    received = [f.sequence_number for f in out if f.status is FrameStatus.RECEIVED]
    assert received == [65533, 65534, 65535, 0, 1, 2]
    assert jb.stats.lost == 0 and jb.stats.late == 0 and jb.stats.reordered == 1


def test_fifty_packet_late_packet_is_dropped_as_late() -> None:
    jb = JitterBuffer(60)
    arrivals = [(i * 0.02, pkt(1000 + i)) for i in range(80) if i != 5]
    arrivals.append((60 * 0.02, pkt(1005)))  # arrives ~55 slots late
    out = feed(jb, arrivals, 2.0)
    statuses = {f.sequence_number: f.status for f in out if f.status is not FrameStatus.FILL}
    assert statuses[1005] is FrameStatus.LOST
    assert jb.stats.late == 1 and jb.stats.lost == 1
    received = [f.sequence_number for f in out if f.status is FrameStatus.RECEIVED]
    assert received == sorted(received)


def test_silent_gap_is_filled_on_the_20ms_clock_and_stream_resumes() -> None:
    jb = JitterBuffer(60)
    # 10 packets, then the sender stops for 1 s, then resumes with the next sequence number.
    arrivals = [(i * 0.02, pkt(i)) for i in range(10)]
    arrivals += [(1.18 + i * 0.02, pkt(10 + i)) for i in range(5)]
    out = feed(jb, arrivals, 1.3)
    fills = [f for f in out if f.status is FrameStatus.FILL]
    # Last packet at 0.18; slots due from 0.20 on are filled once 60 ms overdue, up to 1.18.
    assert 45 <= len(fills) <= 48
    assert all(f.payload == ULAW_SILENCE_FRAME and f.lost for f in fills)
    assert [f.sequence_number for f in out if not f.lost] == list(range(15))
    assert jb.stats.lost == 0 and jb.stats.late == 0
    assert jb.stats.filled == len(fills)


def test_fill_is_counted_against_a_following_sequence_gap() -> None:
    jb = JitterBuffer(60)
    # Packets 0..9, then 20 lost in the network (nothing arrives), then 30 onwards.
    arrivals = [(i * 0.02, pkt(i)) for i in range(10)]
    arrivals += [(0.6 + i * 0.02, pkt(30 + i)) for i in range(5)]
    out = feed(jb, arrivals, 0.7)
    last_received = max(i for i, f in enumerate(out) if not f.lost)
    concealed = [f for f in out[:last_received] if f.lost]
    # 20 slots of time went by with no audio: 20 concealment frames in all, not fill + lost twice.
    assert len(concealed) == 20
    assert jb.stats.lost == 20
    assert [f.sequence_number for f in out if not f.lost] == [*range(10), *range(30, 35)]


def test_ssrc_change_releases_old_stream_and_restarts_sequencing() -> None:
    jb = JitterBuffer(60)
    jb.push(pkt(500), 0.0)
    jb.push(pkt(502), 0.02)  # 501 missing, 502 buffered
    jb.push(pkt(7, ssrc=0xBEEF, marker=True), 0.04)
    frames = jb.pop(0.04)
    assert [(f.sequence_number, f.status) for f in frames] == [
        (500, FrameStatus.RECEIVED),
        (501, FrameStatus.LOST),
        (502, FrameStatus.RECEIVED),
        (7, FrameStatus.RECEIVED),
    ]
    assert jb.stats.resets == 1
    jb.push(pkt(8, ssrc=0xBEEF), 0.06)
    assert [f.sequence_number for f in jb.pop(0.06)] == [8]


def test_confirmed_forward_jump_restarts_instead_of_concealing_minutes() -> None:
    jb = JitterBuffer(60, resync_gap_frames=100)
    jb.push(pkt(0), 0.0)
    jb.push(pkt(5000), 0.02)
    assert [f.sequence_number for f in jb.pop(0.02)] == [0]
    jb.push(pkt(5001), 0.04)
    assert [f.sequence_number for f in jb.pop(0.04)] == [5001]
    assert jb.stats.lost == 0 and jb.stats.resets == 1 and jb.stats.jumps == 1


def test_one_stray_sequence_number_does_not_derail_the_stream() -> None:
    jb = JitterBuffer(60, resync_gap_frames=100)
    jb.push(pkt(0), 0.0)
    jb.push(pkt(30000), 0.01)  # garbage far ahead
    jb.push(pkt(1), 0.02)
    jb.push(pkt(40000), 0.03)  # far behind (wrapped)
    jb.push(pkt(2), 0.04)
    out = jb.pop(0.04)
    assert [f.sequence_number for f in out] == [0, 1, 2]
    assert jb.stats.jumps == 2 and jb.stats.resets == 0 and jb.stats.lost == 0


def test_sequence_restart_backwards_with_same_ssrc_is_followed() -> None:
    jb = JitterBuffer(60)
    for i in range(5):
        jb.push(pkt(20000 + i), i * 0.02)
    jb.push(pkt(100), 0.10)
    jb.push(pkt(101), 0.12)
    jb.push(pkt(102), 0.14)
    received = [f.sequence_number for f in jb.pop(0.14)]
    assert received == [20000, 20001, 20002, 20003, 20004, 101, 102]
    assert jb.stats.resets == 1 and jb.stats.late == 0


def test_drain_releases_everything_buffered() -> None:
    jb = JitterBuffer(60)
    jb.push(pkt(1), 0.0)
    jb.push(pkt(3), 0.02)
    assert [f.sequence_number for f in jb.pop(0.02)] == [1]
    assert [f.sequence_number for f in jb.drain(0.03)] == [2, 3]


def test_negative_delay_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_delay_ms must be >= 0, got -1"):
        JitterBuffer(-1)


def _load_trace() -> list[tuple[float, RtpPacket]]:
    out = []
    for line in (DATA / "asterisk_forwarded.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        t, pt, m, seq, ts, ssrc = line.split()
        packet = RtpPacket(int(pt), int(seq), int(ts), int(ssrc, 16), b"\x7f" * 160, m == "1")
        out.append((float(t), packet))
    return out


def test_replay_of_what_asterisk_forwards() -> None:
    """The recorded simple_bridge output: jitter, reorder, duplicates, SSRC change, silent gaps."""
    trace = _load_trace()
    jb = JitterBuffer(60)
    out = feed(jb, trace, trace[-1][0] + 0.5)
    received = [(f.timestamp, f.sequence_number) for f in out if f.status is FrameStatus.RECEIVED]
    # Per SSRC, what comes out is in sequence order and each number once.
    by_ssrc: dict[int, list[int]] = {}
    ts_to_ssrc = {(p.timestamp, p.sequence_number): p.ssrc for _t, p in trace}
    for key in received:
        by_ssrc.setdefault(ts_to_ssrc[key], []).append(key[1])
    assert list(by_ssrc) == [0x7CEFB888, 0x334AF693]
    for seqs in by_ssrc.values():
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    unique = {(p.ssrc, p.sequence_number) for _t, p in trace}
    assert len(received) == len(unique)
    # The trace repeats 30282 at once and re-sends 30243 fifty slots later.
    assert jb.stats.duplicates == 2
    assert jb.stats.late == 0
    assert jb.stats.reordered == 10
    assert jb.stats.resets == 1
    # Two silent gaps of about 1 s: kept in time with fill/lost frames (~50 each), and the
    # 50 sequence numbers Asterisk never sent (the dropped PT 96 phase) are lost, not waited for.
    assert jb.stats.lost == 1 + 50
    concealed = sum(1 for f in out if f.lost)
    assert 95 <= concealed <= 160


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 65535),
    order=st.permutations(list(range(1, 30))),
    dups=st.lists(st.integers(0, 29), max_size=5),
)
def test_any_local_reordering_within_the_delay_comes_out_complete_and_ordered(
    start: int, order: list[int], dups: list[int]
) -> None:
    jb = JitterBuffer(1000)  # everything arrives within the wait: nothing may be lost
    out: list[JitterFrame] = []
    now = 0.0
    # The first packet defines where the stream starts (as for any receiver); then anything goes.
    for i in [0, *order, *dups]:
        jb.push(pkt(start + i), now)
        out += jb.pop(now)
        now += 0.001
    out += jb.drain(now)
    assert [f.sequence_number for f in out] == [(start + i) % 65536 for i in range(30)]
    assert jb.stats.duplicates == len(dups)
    assert jb.stats.lost == 0 and jb.stats.late == 0


# -- packets that are not 20 ms ----------------------------------------------------------------
# Phones and trunks send 10, 20, 30 or 40 ms packets and a simple_bridge passes them through
# untouched; whatever comes in, the VAD downstream must get exactly 160-byte (20 ms) frames that
# cover the same stretch of time.


def audio(start: int, samples: int) -> bytes:
    """μ-law bytes that name their own sample position and are never silence (0xFF)."""
    return bytes((start + i) % 250 for i in range(samples))


def spkt(
    seq: int, ts: int, samples: int, *, ssrc: int = SSRC, payload: bytes | None = None
) -> RtpPacket:
    return RtpPacket(
        0, seq % (1 << 16), ts % (1 << 32), ssrc, audio(ts, samples) if payload is None else payload
    )


def stream_of(sizes: list[int], *, seq0: int = 1000, ts0: int = 0) -> list[RtpPacket]:
    out, ts = [], ts0
    for i, n in enumerate(sizes):
        out.append(spkt(seq0 + i, ts, n))
        ts += n
    return out


def joined(frames: list[JitterFrame]) -> bytes:
    assert {len(f.payload) for f in frames} <= {160}, "every frame is exactly 20 ms"
    return b"".join(f.payload for f in frames)


@pytest.mark.parametrize(
    "sizes",
    [[80] * 9, [160] * 5, [240] * 7, [320] * 4, [80, 160, 240, 320, 240, 80, 320, 160]],
    ids=["10ms", "20ms", "30ms", "40ms", "mixed"],
)
def test_any_packet_size_comes_out_as_20ms_frames_covering_the_same_audio(sizes: list[int]) -> None:
    jb = JitterBuffer(60)
    packets = stream_of(sizes)
    out: list[JitterFrame] = []
    for i, p in enumerate(packets):
        jb.push(p, i * 0.02)
        out += jb.pop(i * 0.02)
    out += jb.drain(1.0)
    total = sum(sizes)
    whole = joined(out)
    assert whole[:total] == audio(0, total)
    assert whole[total:] == ULAW_SILENCE_FRAME[: len(whole) - total]  # the last frame padded
    assert len(whole) - total < 160
    # Frame timestamps are continuous: frame k starts at sample 160 k of the stream.
    assert [f.timestamp for f in out] == [160 * k for k in range(len(out))]
    assert all(f.status is FrameStatus.RECEIVED for f in out)
    assert jb.stats.received == len(sizes) and jb.stats.lost == 0


def test_a_30ms_packet_does_not_wait_longer_than_it_must() -> None:
    jb = JitterBuffer(60)
    jb.push(spkt(1, 0, 240), 0.0)
    first = jb.pop(0.0)
    assert [f.payload for f in first] == [audio(0, 160)]  # 20 ms out at once, 10 ms held
    jb.push(spkt(2, 240, 240), 0.03)
    second = jb.pop(0.03)
    assert [f.payload for f in second] == [audio(160, 160), audio(320, 160)]
    assert [f.sequence_number for f in second] == [1, 2]  # the packet each frame starts in
    assert [f.timestamp for f in second] == [160, 320]


def test_a_lost_30ms_packet_becomes_30ms_of_concealment_not_20() -> None:
    jb = JitterBuffer(60)
    packets = stream_of([240] * 6)
    arrivals = [(i * 0.03, p) for i, p in enumerate(packets) if i != 2]
    out = feed(jb, arrivals, 0.2)
    whole = joined(out)
    expected = audio(0, 480) + bytes([0xFF]) * 240 + audio(720, 720)
    assert whole == expected  # 6 x 30 ms = 9 frames exactly
    assert [f.status for f in out].count(FrameStatus.LOST) == 1  # 30 ms: one whole frame + part
    assert jb.stats.lost == 1 and jb.stats.filled == 0


def test_lost_packets_are_sized_like_their_neighbours_when_timestamps_say_nothing_sane() -> None:
    jb = JitterBuffer(60)
    # A sender whose timestamps jump by an absurd amount across the loss: trust packet sizes.
    jb.push(spkt(1, 0, 320), 0.0)
    jb.push(spkt(3, 10_000_000, 320, payload=audio(640, 320)), 0.08)
    out = jb.pop(0.2) + jb.drain(0.2)
    whole = joined(out)
    assert whole == audio(0, 320) + bytes([0xFF]) * 320 + audio(640, 320)
    assert [f.status for f in out] == [
        FrameStatus.RECEIVED,
        FrameStatus.RECEIVED,
        FrameStatus.LOST,
        FrameStatus.LOST,
        FrameStatus.RECEIVED,
        FrameStatus.RECEIVED,
    ]


def test_a_frame_part_audio_part_concealment_counts_as_received() -> None:
    jb = JitterBuffer(60)
    packets = stream_of([80] * 6)
    for i, p in enumerate(packets):
        if i != 1:
            jb.push(p, i * 0.01)
    out = jb.pop(1.0) + jb.drain(1.0)
    assert joined(out) == audio(0, 80) + bytes([0xFF]) * 80 + audio(160, 320)
    assert [f.status for f in out] == [FrameStatus.RECEIVED] * 3


def test_silence_after_40ms_packets_is_filled_in_20ms_steps_and_time_is_kept() -> None:
    jb = JitterBuffer(60)
    arrivals = [(i * 0.04, p) for i, p in enumerate(stream_of([320] * 5))]
    # The sender stops for about 1 s, then resumes with the next sequence number.
    arrivals += [
        (1.2 + i * 0.04, p) for i, p in enumerate(stream_of([320] * 5, seq0=1005, ts0=1600))
    ]
    out = feed(jb, arrivals, 1.45)
    out += jb.drain(1.45)
    whole = joined(out)
    # 10 packets of 40 ms = 0.4 s of audio over 1.4 s of wall time: the rest is fill, short of
    # the gap by at most the max_delay grace before the stream resumed.
    seconds = len(whole) / 8000
    assert 1.4 - 0.06 - 0.02 <= seconds <= 1.4 + 0.02
    received = bytes(b for b in whole if b != 0xFF)
    assert received == audio(0, 3200).replace(b"\xff", b"")
    fills = [f for f in out if f.status is FrameStatus.FILL]
    assert len(fills) == jb.stats.filled and jb.stats.lost == 0


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    sizes=st.lists(st.sampled_from([80, 160, 240, 320]), min_size=2, max_size=60),
    seq0=st.integers(0, 65535),
    ts0=st.integers(0, (1 << 32) - 1),
)
def test_any_sizes_with_loss_and_reordering_keep_audio_at_its_time(
    data: st.DataObject, sizes: list[int], seq0: int, ts0: int
) -> None:
    packets = stream_of(sizes, seq0=seq0, ts0=ts0)
    # The first and the last packet arrive (they bound the stream); any others may be lost.
    lost = (
        data.draw(st.sets(st.integers(1, len(sizes) - 2)), label="lost")
        if len(sizes) > 2
        else set()
    )
    jitter_ms = data.draw(
        st.lists(st.integers(0, 30), min_size=len(sizes), max_size=len(sizes)), label="jitter"
    )
    starts = [0]
    for n in sizes:
        starts.append(starts[-1] + n)
    arrivals = [
        (starts[i] / 8000 + (jitter_ms[i] / 1000 if i else 0.0), p)
        for i, p in enumerate(packets)
        if i not in lost
    ]
    arrivals.sort(key=lambda a: a[0])
    jb = JitterBuffer(1000)  # everything arrives within the wait: only the dropped are missing
    out: list[JitterFrame] = []
    for t, p in arrivals:
        jb.push(p, t)
        out += jb.pop(t)
    out += jb.drain(arrivals[-1][0])
    whole = joined(out)
    expected = bytearray([0xFF]) * starts[-1]
    for i, n in enumerate(sizes):
        if i not in lost:
            expected[starts[i] : starts[i] + n] = audio(ts0 + starts[i], n)
    assert whole[: starts[-1]] == bytes(expected)
    assert 0 <= len(whole) - starts[-1] < 160
    assert [f.timestamp for f in out] == [(ts0 + 160 * k) % (1 << 32) for k in range(len(out))]
    assert jb.stats.lost == len(lost) and jb.stats.late == 0
