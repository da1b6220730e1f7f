"""The outbound pacer: pure, driven by ``now``; no event loop, no sleep."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.frames import ULAW_FRAME_BYTES, ULAW_SILENCE_FRAME
from agent.core.pacer import Pacer, PromptDone, split_frames


def make(
    start: float = 100.0, *, seq: int = 65534, ts: int = 2**32 - 320, catchup: int = 5
) -> Pacer:
    return Pacer(
        ssrc=0xCAFE,
        initial_sequence_number=seq,
        initial_timestamp=ts,
        start=start,
        max_catchup=catchup,
    )


def frames(n: int, fill: int) -> list[bytes]:
    return [bytes([fill]) * ULAW_FRAME_BYTES] * n


def test_split_frames_pads_the_last_frame_with_ulaw_silence() -> None:
    out = split_frames(b"\x01" * 400)
    assert [len(f) for f in out] == [160, 160, 160]
    assert out[2] == b"\x01" * 80 + b"\xff" * 80
    assert split_frames(b"") == []
    assert split_frames(b"\x02" * 320) == [b"\x02" * 160] * 2


def test_one_packet_per_slot_on_absolute_deadlines() -> None:
    p = make(start=100.0)
    assert p.due(99.999) == []
    first = p.due(100.0)
    assert len(first) == 1
    assert p.next_deadline() == pytest.approx(100.020)
    assert p.due(100.0199) == []
    # Called late (100.0351) the next slot goes; the one after is still due at 100.040, not 100.0551.
    assert len(p.due(100.0351)) == 1
    assert p.next_deadline() == pytest.approx(100.040)


def test_comfort_silence_when_nothing_is_queued_and_headers_continue_across_prompts() -> None:
    p = make(start=0.0, seq=65534, ts=2**32 - 320)
    sent = p.due(0.0)
    p.enqueue(frames(2, 0x11), "hello")
    sent += p.due(0.020) + p.due(0.040) + p.due(0.060)
    assert [x.payload for x in sent] == [
        ULAW_SILENCE_FRAME,
        frames(1, 0x11)[0],
        frames(1, 0x11)[0],
        ULAW_SILENCE_FRAME,
    ]
    assert [x.sequence_number for x in sent] == [65534, 65535, 0, 1]
    assert [x.timestamp for x in sent] == [2**32 - 320, 2**32 - 160, 0, 160]
    assert {x.ssrc for x in sent} == {0xCAFE}
    assert not any(x.marker for x in sent)
    assert all(x.payload_type == 0 for x in sent)
    assert p.pop_done() == [PromptDone("hello", True)]
    assert p.stats.audio == 2 and p.stats.silence == 2 and p.stats.sent == 4


def test_stall_catches_up_at_most_max_catchup_and_drops_the_rest() -> None:
    p = make(start=0.0, seq=10, ts=1000, catchup=5)
    p.enqueue(frames(30, 0x22), "long")
    assert len(p.due(0.0)) == 1
    # The loop stalls for 300 ms: slots 1..15 are overdue.
    burst = p.due(0.300)
    assert len(burst) == 5
    assert p.stats.dropped_slots == 10
    # Sequence numbers continue (no packet was lost); timestamps jump over the dropped slots.
    assert [x.sequence_number for x in burst] == [11, 12, 13, 14, 15]
    assert [x.timestamp for x in burst] == [1000 + 160 * n for n in range(11, 16)]
    # No prompt audio was dropped: 6 of 30 frames are out.
    assert p.queued_frames == 24
    # Back on the absolute schedule.
    assert p.next_deadline() == pytest.approx(0.320)
    assert len(p.due(0.320)) == 1


def test_flush_interrupts_queued_prompts_at_once() -> None:
    p = make(start=0.0)
    p.enqueue(frames(3, 0x01), "a")
    p.enqueue(frames(3, 0x02), "b")
    p.due(0.0)
    assert p.flush() == ["a", "b"]
    assert p.pop_done() == [PromptDone("a", False), PromptDone("b", False)]
    assert p.stats.flushed_frames == 5
    assert p.due(0.020)[0].payload == ULAW_SILENCE_FRAME
    assert p.flush() == []


def test_prompt_already_played_is_not_reported_interrupted() -> None:
    p = make(start=0.0)
    p.enqueue(frames(1, 0x01), "a")
    p.enqueue(frames(2, 0x02), "b")
    p.due(0.0)
    assert p.flush() == ["b"]
    assert p.pop_done() == [PromptDone("a", True), PromptDone("b", False)]


def test_drain_sends_everything_queued_then_stops() -> None:
    p = make(start=0.0)
    p.enqueue(frames(3, 0x05), "goodbye")
    p.drain()
    assert not p.drained
    with pytest.raises(ValueError, match="cannot enqueue after drain"):
        p.enqueue(frames(1, 0x01), "late")
    sent = p.due(0.0) + p.due(0.020) + p.due(0.040)
    assert [x.payload[0] for x in sent] == [0x05] * 3
    assert p.drained
    assert p.due(1.0) == []
    assert p.pop_done() == [PromptDone("goodbye", True)]


def test_drain_with_nothing_queued_is_immediate() -> None:
    p = make(start=0.0)
    p.drain()
    assert p.drained and p.due(0.0) == []


def test_empty_prompt_completes_as_played() -> None:
    p = make(start=0.0)
    p.enqueue([], "nothing")
    assert p.pop_done() == [PromptDone("nothing", True)]


def test_bad_frames_and_settings_are_rejected() -> None:
    p = make()
    with pytest.raises(ValueError, match="pacer frames must be 160 bytes, got 159"):
        p.enqueue([b"\x00" * 159], "x")
    with pytest.raises(ValueError, match="max_catchup must be at least 1 frame, got 0"):
        make(catchup=0)


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.floats(0.0, 0.2), min_size=1, max_size=60))
def test_never_ahead_of_schedule_never_bursts_and_headers_are_continuous(
    steps: list[float],
) -> None:
    p = make(start=0.0, seq=65500, ts=5, catchup=5)
    now = 0.0
    sent = []
    for step in steps:
        now += step
        batch = p.due(now)
        assert len(batch) <= 5
        sent += batch
        # Every slot up to now was sent or dropped; none in the future was sent.
        assert p.next_deadline() > now
        assert p.next_deadline() - 0.020 <= now + 1e-9
    seqs = [x.sequence_number for x in sent]
    assert seqs == [(65500 + i) % 65536 for i in range(len(sent))]
    slots = [((x.timestamp - 5) % 2**32) // 160 for x in sent]
    assert slots == sorted(set(slots))
    assert len(sent) + p.stats.dropped_slots == round(p.next_deadline() / 0.020)
