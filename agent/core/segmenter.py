"""Utterance segmenter: turns a stream of 20 ms frames plus a speech yes/no into utterances.

Pure core. It never reads the clock: media time is the sum of the durations of the frames it was
fed, and every decision is stamped with that media time and the frame's index. The VAD is not called
from here; the caller passes its verdict (``process(frame, is_speech)``) or lets ``process_frame``
ask an injected ``is_speech`` callable (Home Assistant ``VoiceCommandSegmenter`` style).

Four-state hysteresis (as in pipecat's ``VADAnalyzer``)::

    QUIET --speech--> STARTING --speech >= min_speech--> SPEAKING --silence--> STOPPING
      ^                  |  silence > start_gap                ^                 |  |
      +------------------+  (false start: click, "mm-hm")      +-speech>=resume--+  |
      +------------------------------- silence >= end_silence (or max reached) -----+

The table ``_TRANSITIONS`` is the whole machine; ``_move`` refuses anything not in it.

Events: ``UtteranceStarted``; ``SilenceBegan`` when trailing silence starts (the audio so far rides
along, so the STT can start its final pass speculatively) and ``SpeechResumed`` if the caller goes on
(cancel that pass); ``UtteranceEnded`` with the audio including pre-roll and the trailing silence
(reason ``end``, ``max`` after ``max_utterance_ms`` — a new utterance starts at once if the caller is
still talking — or ``flush`` when the call ends); ``BargeIn`` once per utterance when the caller has
spoken ``barge_in_ms`` while the agent is talking.

Frames lost by the jitter buffer (``lost``) count as silence time and are filled with silence, so the
utterance audio stays aligned with media time.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agent.errors import IllegalTransition

AudioFormat = Literal["pcm16", "ulaw"]
EndReason = Literal["end", "max", "flush"]

# Bytes per millisecond of 8 kHz audio, and the byte that encodes silence, per format.
_BYTES_PER_MS: dict[str, int] = {"pcm16": 16, "ulaw": 8}
_SILENCE_BYTE: dict[str, int] = {"pcm16": 0x00, "ulaw": 0xFF}


@dataclass(frozen=True)
class SegmenterSettings:
    """The segmenter's thresholds, in milliseconds of media time. Built from the ``[vad]`` section
    by ``agent.config.segmenter_settings``, where each is explained."""

    min_speech_ms: int
    end_silence_ms: int
    short_answer_silence_ms: int
    """End-of-utterance silence when the dialog expects yes/no or a digit."""
    max_utterance_ms: float
    preroll_ms: int
    barge_in_ms: int
    start_gap_ms: int
    resume_speech_ms: int


class SegmenterState(enum.Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    STOPPING = "stopping"


_Q, _ST, _SP, _SO = (
    SegmenterState.QUIET,
    SegmenterState.STARTING,
    SegmenterState.SPEAKING,
    SegmenterState.STOPPING,
)

# (state, cause) -> next state. Causes are speech / silence as seen in that state, plus the
# thresholds crossing. Nothing else may happen.
_TRANSITIONS: dict[tuple[SegmenterState, str], SegmenterState] = {
    (_Q, "speech"): _ST,
    (_ST, "min_speech"): _SP,
    (_ST, "false_start"): _Q,
    (_SP, "silence"): _SO,
    (_SP, "max"): _Q,  # cut; if the caller goes on, the next speech frame starts a new one at once
    (_SO, "speech"): _SP,
    (_SO, "end_silence"): _Q,
    (_SO, "max"): _Q,
    (_ST, "flush"): _Q,
    (_SP, "flush"): _Q,
    (_SO, "flush"): _Q,
    (_Q, "flush"): _Q,
}


@dataclass(frozen=True)
class UtteranceStarted:
    utterance_id: int
    start_ms: int
    """Media time of the first byte of the utterance's audio (pre-roll included)."""
    speech_start_ms: int
    """Media time the speech itself began (the first speech frame of the onset)."""
    frame_index: int
    """Index of the frame that confirmed the start."""


@dataclass(frozen=True)
class SilenceBegan:
    utterance_id: int
    at_ms: int
    frame_index: int
    audio: bytes
    """The utterance's audio up to the start of the silence: enough for a speculative final pass."""


@dataclass(frozen=True)
class SpeechResumed:
    utterance_id: int
    at_ms: int
    frame_index: int


@dataclass(frozen=True)
class UtteranceEnded:
    utterance_id: int
    audio: bytes
    """Pre-roll + speech + trailing silence, in the segmenter's ``audio_format``."""
    start_ms: int
    end_ms: int
    reason: EndReason
    frame_index: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class BargeIn:
    utterance_id: int
    at_ms: int
    frame_index: int


SegmenterEvent = UtteranceStarted | SilenceBegan | SpeechResumed | UtteranceEnded | BargeIn


@dataclass
class _Frame:
    audio: bytes
    start_ms: int
    duration_ms: int


class Segmenter:
    """Feed it frames in order; it returns the events each frame causes."""

    def __init__(
        self,
        settings: SegmenterSettings,
        *,
        audio_format: AudioFormat = "pcm16",
        is_speech: Callable[[bytes], bool] | None = None,
    ) -> None:
        if audio_format not in _BYTES_PER_MS:
            raise ValueError(f"unknown audio format {audio_format!r}; expected pcm16 or ulaw")
        self.settings = settings
        self.audio_format: AudioFormat = audio_format
        self._is_speech = is_speech
        self.state = SegmenterState.QUIET
        self.agent_speaking = False
        self.short_answer = False
        self.now_ms = 0
        """Media time at the end of the last frame fed."""
        self.frame_index = -1
        self._next_id = 1
        self._utterance_id = 0
        self._history: deque[_Frame] = deque()  # pre-roll (QUIET) plus the onset (STARTING)
        self._audio: list[bytes] = []  # the current utterance's audio
        self._utterance_start_ms = 0
        self._onset_ms = 0
        self._onset_speech_ms = 0
        self._onset_gap_ms = 0
        self._silence_ms = 0
        self._silence_start_ms = 0
        self._resume_ms = 0  # speech heard while STOPPING, not yet enough to resume
        self._continuation = False  # a max cut happened mid-speech: the next speech frame starts
        self._resume_start_ms = 0
        self._barge_speech_ms = 0
        self._barged = False

    # ---------------------------------------------------------------------------------------------
    # Settings the dialog changes during the call

    def set_agent_speaking(self, speaking: bool) -> None:
        """The agent started or stopped playing a prompt; barge-in is only detected while it plays."""
        if speaking and not self.agent_speaking:
            self._barge_speech_ms = 0
            self._barged = False
        self.agent_speaking = speaking

    def expect_short_answer(self, short: bool) -> None:
        """The dialog expects yes/no or a digit: end the turn after a shorter silence."""
        self.short_answer = short

    @property
    def end_silence_ms(self) -> int:
        return (
            self.settings.short_answer_silence_ms
            if self.short_answer
            else self.settings.end_silence_ms
        )

    @property
    def in_utterance(self) -> bool:
        return self.state in (SegmenterState.SPEAKING, SegmenterState.STOPPING)

    def audio_so_far(self) -> bytes:
        """The current utterance's audio (empty between utterances); for partial STT passes."""
        return b"".join(self._audio)

    # ---------------------------------------------------------------------------------------------
    # Input

    def process_frame(self, frame: bytes, duration_ms: int | None = None) -> list[SegmenterEvent]:
        """Classify ``frame`` with the injected VAD, then ``process`` it."""
        if self._is_speech is None:
            raise RuntimeError("no VAD was given to this Segmenter; call process(frame, is_speech)")
        return self.process(frame, self._is_speech(frame), duration_ms)

    def lost(self, duration_ms: int) -> list[SegmenterEvent]:
        """A frame the jitter buffer gave up on: silence time, filled with silence."""
        fill = bytes([_SILENCE_BYTE[self.audio_format]]) * self._bytes_for(duration_ms)
        return self.process(fill, False, duration_ms)

    def process(
        self, frame: bytes, is_speech: bool, duration_ms: int | None = None
    ) -> list[SegmenterEvent]:
        if duration_ms is None:
            per_ms = _BYTES_PER_MS[self.audio_format]
            if len(frame) == 0 or len(frame) % per_ms:
                raise ValueError(
                    f"frame of {len(frame)} bytes is not a whole number of ms of 8 kHz {self.audio_format}"
                )
            duration_ms = len(frame) // per_ms
        if duration_ms <= 0:
            raise ValueError(f"frame duration must be positive, got {duration_ms} ms")
        self.frame_index += 1
        start = self.now_ms
        self.now_ms += duration_ms
        f = _Frame(bytes(frame), start, duration_ms)
        events: list[SegmenterEvent] = []
        state = self.state
        if state is SegmenterState.QUIET:
            self._trim_preroll()
            self._history.append(f)
            if not is_speech:
                self._continuation = False
            if is_speech:
                self._move("speech")
                self._onset_ms = start
                self._onset_speech_ms = duration_ms
                self._onset_gap_ms = 0
                self._barge_speech_ms = duration_ms if self.agent_speaking else 0
                self._check_onset(events)
                self._continuation = False
        elif state is SegmenterState.STARTING:
            self._history.append(f)
            if is_speech:
                self._onset_speech_ms += duration_ms
                self._onset_gap_ms = 0
                if self.agent_speaking:
                    self._barge_speech_ms += duration_ms
                self._check_onset(events)
            else:
                self._onset_gap_ms += duration_ms
                if self._onset_gap_ms > self.settings.start_gap_ms:
                    self._move("false_start")
                    self._trim_preroll()
        elif state is SegmenterState.SPEAKING:
            self._audio.append(f.audio)
            if is_speech:
                if self.agent_speaking:
                    self._barge_speech_ms += duration_ms
                self._check_barge_in(events)
                self._check_max(events, still_speaking=True)
            else:
                self._move("silence")
                self._silence_ms = duration_ms
                self._silence_start_ms = start
                self._resume_ms = 0
                events.append(
                    SilenceBegan(
                        self._utterance_id,
                        start,
                        self.frame_index,
                        b"".join(self._audio[:-1]),
                    )
                )
                self._check_stopping(events)
        else:  # STOPPING
            self._audio.append(f.audio)
            # A blip of speech shorter than resume_speech_ms (a click, a breath) counts as part
            # of the silence, so it neither delays the end nor cancels the speculative pass.
            self._silence_ms += duration_ms
            if is_speech:
                if not self._resume_ms:
                    self._resume_start_ms = start
                self._resume_ms += duration_ms
            else:
                self._resume_ms = 0
            if self._resume_ms >= self.settings.resume_speech_ms:
                self._move("speech")
                events.append(
                    SpeechResumed(self._utterance_id, self._resume_start_ms, self.frame_index)
                )
                if self.agent_speaking:
                    self._barge_speech_ms += self._resume_ms
                self._resume_ms = 0
                self._check_barge_in(events)
                self._check_max(events, still_speaking=True)
            else:
                self._check_stopping(events)
        return events

    def flush(self) -> list[SegmenterEvent]:
        """End of the call: an utterance in progress ends now (reason ``flush``)."""
        events: list[SegmenterEvent] = []
        if self.in_utterance:
            self._end("flush", events)
        else:
            self._move("flush")
        self._history.clear()
        return events

    # ---------------------------------------------------------------------------------------------
    # Internals

    def _move(self, cause: str) -> None:
        try:
            self.state = _TRANSITIONS[(self.state, cause)]
        except KeyError:
            # A bug: the segmenter was asked to move along an edge its table does not have.
            raise IllegalTransition(self.state.value, cause) from None

    def _bytes_for(self, ms: int) -> int:
        return ms * _BYTES_PER_MS[self.audio_format]

    def _trim_preroll(self) -> None:
        """Keep at most the last ``preroll_ms`` of audio (whole frames) as pre-roll."""
        total = sum(f.duration_ms for f in self._history)
        while self._history and total > self.settings.preroll_ms:
            total -= self._history.popleft().duration_ms

    def _check_onset(self, events: list[SegmenterEvent]) -> None:
        # Right after a max cut the caller is mid-sentence: no minimum speech, no pre-roll (the
        # audio before belongs to the utterance that was cut).
        if self._onset_speech_ms < self.settings.min_speech_ms and not self._continuation:
            return
        self._move("min_speech")
        # The history holds at most preroll_ms before the onset (trimmed in QUIET) plus the onset.
        kept = list(self._history)
        self._history.clear()
        self._begin(kept[0].start_ms, self._onset_ms, [f.audio for f in kept], events)
        self._check_barge_in(events)

    def _begin(
        self, start_ms: int, speech_start_ms: int, audio: list[bytes], events: list[SegmenterEvent]
    ) -> None:
        self._utterance_id = self._next_id
        self._next_id += 1
        self._utterance_start_ms = start_ms
        self._audio = audio
        self._barged = False
        events.append(
            UtteranceStarted(self._utterance_id, start_ms, speech_start_ms, self.frame_index)
        )

    def _check_barge_in(self, events: list[SegmenterEvent]) -> None:
        if (
            self.agent_speaking
            and not self._barged
            and self.in_utterance
            and self._barge_speech_ms >= self.settings.barge_in_ms
        ):
            self._barged = True
            events.append(BargeIn(self._utterance_id, self.now_ms, self.frame_index))

    def _check_stopping(self, events: list[SegmenterEvent]) -> None:
        if self._silence_ms >= self.end_silence_ms:
            self._move("end_silence")
            self._finish("end", events)
        else:
            self._check_max(events, still_speaking=False)

    def _check_max(self, events: list[SegmenterEvent], *, still_speaking: bool) -> None:
        if self.now_ms - self._utterance_start_ms < self.settings.max_utterance_ms:
            return
        self._move("max")
        self._finish("max", events)
        # The caller is mid-sentence: the next speech frame starts a new utterance at once, right
        # where this one was cut. Not before it, so that no utterance is ever empty.
        self._continuation = still_speaking

    def _end(self, reason: EndReason, events: list[SegmenterEvent]) -> None:
        self._move("flush")
        self._finish(reason, events)

    def _finish(self, reason: EndReason, events: list[SegmenterEvent]) -> None:
        events.append(
            UtteranceEnded(
                self._utterance_id,
                b"".join(self._audio),
                self._utterance_start_ms,
                self.now_ms,
                reason,
                self.frame_index,
            )
        )
        self._audio = []
        self._history.clear()
        self._silence_ms = 0
        self._barge_speech_ms = 0
