from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import VadConfig, segmenter_settings
from agent.core.segmenter import (
    BargeIn,
    Segmenter,
    SegmenterEvent,
    SegmenterState,
    SilenceBegan,
    SpeechResumed,
    UtteranceEnded,
    UtteranceStarted,
)

CFG = segmenter_settings(
    VadConfig()
)  # min speech 200, end silence 600 / 350, max 15 s, pre-roll 300, barge-in 250
FRAME_MS = 20


def frame(index: int) -> bytes:
    """A 20 ms PCM16 frame whose bytes say which frame it was (so audio slices can be checked)."""
    return bytes([index % 256]) * (FRAME_MS * 16)


class Feeder:
    """Feeds a script of speech/silence runs and keeps every event."""

    def __init__(self, seg: Segmenter) -> None:
        self.seg = seg
        self.events: list[SegmenterEvent] = []
        self.n = 0

    def run(self, speech: bool, ms: int) -> list[SegmenterEvent]:
        out: list[SegmenterEvent] = []
        for _ in range(ms // FRAME_MS):
            out += self.seg.process(frame(self.n), speech)
            self.n += 1
        self.events += out
        return out

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def test_speech_then_silence_makes_one_utterance_with_preroll_and_trailing_silence() -> None:
    f = Feeder(Segmenter(CFG))
    f.run(False, 1000)
    started = f.run(True, 800)
    assert [type(e) for e in started] == [UtteranceStarted]
    s = started[0]
    assert s.speech_start_ms == 1000
    assert s.start_ms == 700  # 300 ms of pre-roll
    assert s.frame_index == 59  # confirmed after 200 ms of speech (frames 50..59)
    ended = f.run(False, 1000)
    kinds = [type(e) for e in ended]
    assert kinds == [SilenceBegan, UtteranceEnded]
    silence, end = ended
    assert silence.at_ms == 1800
    end_event = end
    assert isinstance(end_event, UtteranceEnded)
    assert end_event.reason == "end"
    assert end_event.end_ms == 1800 + 600
    assert end_event.duration_ms == 1700
    assert len(end_event.audio) == 1700 * 16
    # The audio starts with the first pre-roll frame (index 35) and is in order.
    assert end_event.audio[0] == 35
    assert end_event.audio[-1] == (35 + 1700 // FRAME_MS - 1) % 256
    assert isinstance(silence, SilenceBegan)
    assert len(silence.audio) == (1800 - 700) * 16
    assert f.seg.state is SegmenterState.QUIET


def test_short_answer_mode_ends_after_350_ms() -> None:
    seg = Segmenter(CFG)
    seg.expect_short_answer(True)
    f = Feeder(seg)
    f.run(True, 400)
    out = f.run(False, 340)
    assert not f.of(UtteranceEnded)
    out = f.run(False, 20)
    assert [type(e) for e in out] == [UtteranceEnded]
    assert f.of(UtteranceEnded)[0].end_ms == 400 + 360


def test_backchannel_and_clicks_do_not_start_an_utterance() -> None:
    f = Feeder(Segmenter(CFG))
    for _ in range(5):
        f.run(True, 180)  # "mm-hm": shorter than min speech
        f.run(False, 400)
    for _ in range(20):
        f.run(True, 20)  # a click
        f.run(False, 100)
    assert f.events == []
    assert f.seg.state is SegmenterState.QUIET


def test_vad_flicker_inside_an_onset_is_tolerated_but_a_long_gap_is_a_false_start() -> None:
    f = Feeder(Segmenter(CFG))
    f.run(True, 100)
    f.run(False, 40)  # within start_gap_ms
    f.run(True, 100)
    assert [type(e) for e in f.events] == [UtteranceStarted]

    g = Feeder(Segmenter(CFG))
    g.run(True, 100)
    g.run(False, 60)
    g.run(True, 100)
    assert g.events == []


def test_speech_resuming_in_the_silence_cancels_the_end() -> None:
    f = Feeder(Segmenter(CFG))
    f.run(True, 500)
    f.run(False, 400)
    out = f.run(True, 200)
    assert [type(e) for e in out] == [SpeechResumed]
    assert out[0].at_ms == 900
    f.run(False, 600)
    ends = f.of(UtteranceEnded)
    assert len(ends) == 1 and ends[0].duration_ms == 1700
    assert len(f.of(SilenceBegan)) == 2


def test_a_click_in_the_trailing_silence_neither_resumes_nor_delays_the_end() -> None:
    f = Feeder(Segmenter(CFG))
    f.run(True, 500)
    f.run(False, 300)
    f.run(True, 40)  # a click: shorter than resume_speech_ms
    out = f.run(False, 260)
    assert not f.of(SpeechResumed)
    assert [type(e) for e in out] == [UtteranceEnded]
    assert f.of(UtteranceEnded)[0].end_ms == 500 + 600


def test_the_vad_section_becomes_segmenter_settings() -> None:
    vad = dataclasses.replace(VadConfig(), max_utterance_s=2.5, preroll_ms=100)
    settings = segmenter_settings(vad)
    assert settings.max_utterance_ms == 2500 and settings.preroll_ms == 100
    assert Segmenter(settings).settings == settings


def test_max_utterance_cuts_and_a_new_one_starts_at_once() -> None:
    cfg = dataclasses.replace(CFG, max_utterance_ms=2000.0)
    f = Feeder(Segmenter(cfg))
    f.run(True, 5000)
    ends = f.of(UtteranceEnded)
    starts = f.of(UtteranceStarted)
    assert [e.reason for e in ends] == ["max", "max"]
    assert len(starts) == 3
    assert ends[0].end_ms == starts[1].start_ms == 2000
    assert ends[1].end_ms == starts[2].start_ms == 4000
    f.run(False, 600)
    last = f.of(UtteranceEnded)[-1]
    assert last.reason == "end" and last.start_ms == 4000 and last.end_ms == 5600


def test_lost_frames_count_as_silence_and_are_filled() -> None:
    f = Feeder(Segmenter(CFG))
    f.run(True, 400)
    events: list[SegmenterEvent] = []
    for _ in range(30):
        events += f.seg.lost(20)
    assert [type(e) for e in events] == [SilenceBegan, UtteranceEnded]
    end = events[-1]
    assert isinstance(end, UtteranceEnded)
    assert end.end_ms == 1000
    assert end.audio[-16 * 600 :] == bytes(16 * 600)


def test_ulaw_lost_frames_are_ulaw_silence() -> None:
    seg = Segmenter(CFG, audio_format="ulaw")
    for _ in range(20):
        seg.process(b"\x10" * 160, True)
    seg.lost(20)
    assert seg.audio_so_far()[-160:] == b"\xff" * 160


def test_barge_in_fires_once_after_250_ms_only_while_the_agent_speaks() -> None:
    seg = Segmenter(CFG)
    f = Feeder(seg)
    f.run(True, 1000)
    f.run(False, 600)
    assert not f.of(BargeIn)
    seg.set_agent_speaking(True)
    f.run(True, 240)
    assert not f.of(BargeIn)
    out = f.run(True, 20)
    assert [type(e) for e in out] == [BargeIn]
    assert out[0].at_ms == 1600 + 260
    f.run(True, 1000)
    assert len(f.of(BargeIn)) == 1


def test_backchannel_while_the_agent_speaks_is_not_a_barge_in() -> None:
    seg = Segmenter(CFG)
    seg.set_agent_speaking(True)
    f = Feeder(seg)
    f.run(True, 180)
    f.run(False, 300)
    f.run(True, 20)
    f.run(False, 300)
    assert f.events == []


def test_flush_ends_the_utterance_in_progress() -> None:
    f = Feeder(Segmenter(CFG))
    f.run(True, 300)
    out = f.seg.flush()
    assert [type(e) for e in out] == [UtteranceEnded]
    assert out[0].reason == "flush"
    assert f.seg.flush() == []


def test_process_frame_uses_the_injected_vad() -> None:
    loud = b"\x00\x10" * 160
    seg = Segmenter(CFG, is_speech=lambda pcm: pcm == loud)
    events: list[SegmenterEvent] = []
    for _ in range(10):
        events += seg.process_frame(loud)
    assert [type(e) for e in events] == [UtteranceStarted]
    with pytest.raises(RuntimeError, match="no VAD was given"):
        Segmenter(CFG).process_frame(loud)


def test_bad_frames_raise_specific_errors() -> None:
    seg = Segmenter(CFG)
    with pytest.raises(ValueError, match="frame of 5 bytes is not a whole number of ms"):
        seg.process(b"\x00" * 5, False)
    with pytest.raises(ValueError, match="frame duration must be positive, got 0 ms"):
        seg.process(b"\x00" * 320, False, 0)
    with pytest.raises(ValueError, match="unknown audio format 'alaw'"):
        Segmenter(CFG, audio_format="alaw")  # type: ignore[arg-type]


# Each step: ("frame", is_speech) / ("lost",) / ("agent", on) / ("short", on)
_step = st.one_of(
    st.tuples(st.just("frame"), st.booleans()),
    st.tuples(st.just("lost"), st.just(False)),
    st.tuples(st.just("agent"), st.booleans()),
    st.tuples(st.just("short"), st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.tuples(_step, st.integers(1, 40)), max_size=60),
    max_s=st.sampled_from([0.5, 1.0, 15.0]),
    preroll=st.sampled_from([0, 100, 300]),
)
def test_utterances_never_overlap_are_ordered_and_every_started_one_ends(
    steps: list[tuple[tuple[str, bool], int]], max_s: float, preroll: int
) -> None:
    cfg = dataclasses.replace(CFG, max_utterance_ms=max_s * 1000, preroll_ms=preroll)
    seg = Segmenter(cfg)
    events: list[SegmenterEvent] = []
    for (kind, flag), repeat in steps:
        if kind == "agent":
            seg.set_agent_speaking(flag)
        elif kind == "short":
            seg.expect_short_answer(flag)
        else:
            for _ in range(repeat):
                events += seg.lost(20) if kind == "lost" else seg.process(frame(0), flag)
    events += seg.flush()

    open_id: int | None = None
    open_start = 0
    last_end = 0
    last_id = 0
    for e in events:
        if isinstance(e, UtteranceStarted):
            assert open_id is None, "an utterance started while another was open"
            assert e.utterance_id == last_id + 1
            assert e.start_ms >= last_end, "utterances overlap"
            assert e.speech_start_ms - e.start_ms <= preroll
            open_id, open_start = e.utterance_id, e.start_ms
        elif isinstance(e, UtteranceEnded):
            assert e.utterance_id == open_id
            assert e.start_ms == open_start and e.end_ms > e.start_ms
            assert len(e.audio) == e.duration_ms * 16
            assert e.duration_ms <= max_s * 1000 + 20
            last_end, last_id, open_id = e.end_ms, e.utterance_id, None
        else:
            assert e.utterance_id == open_id, f"{type(e).__name__} outside an utterance"
    assert open_id is None, "a started utterance never ended"
    assert seg.state is SegmenterState.QUIET
