"""Turn taking: the caller's audio in, one understood turn (or a key, or silence) out.

    RTP frames ──▶ VAD ──▶ segmenter ──┬─ SilenceBegan ──▶ speculative hearing (early pass)
                                       ├─ SpeechResumed ─▶ early pass cancelled
                                       ├─ UtteranceEnded ▶ inbox ──▶ listen() ──▶ Heard
                                       └─ BargeIn ───────▶ the prompt playing is cut
    DTMF (from the call's ARI events) ───────────────────▶ inbox ──▶ listen() ──▶ DtmfReceived

The media pump (``pump``) runs as one of the call's tasks for the whole call. When the caller
falls silent the words so far are heard at once, while the end-of-turn silence runs (the early
pass): most turns are understood by the time the segmenter is sure the caller has finished. If
the caller goes on speaking the pass is cancelled, and a pass for a different utterance is never
used. ``listen`` waits for what the dialog asked for, within its timeout, and never cuts a caller
off mid-sentence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.adapters.media import RtpSession
from agent.core import g711
from agent.core.dialog.commands import DtmfReceived, Heard, Listen, NothingHeard
from agent.core.dialog.commands import Event as DialogEvent
from agent.core.frames import FRAME_MS, FRAME_S
from agent.core.jitter import JitterFrame
from agent.core.segmenter import BargeIn, Segmenter, SilenceBegan, SpeechResumed, UtteranceEnded
from agent.engines.vad import Vad
from agent.log import get_logger
from agent.runtime.hearing import Ears, Hearing
from agent.runtime.hooks import CallObserver
from agent.runtime.taskset import TaskSet

log = get_logger(__name__)

STREAM_GAP_S = 0.2
"""No inbound frame for this long: the stream paused; count the gap as silence."""


@dataclass(frozen=True)
class _Dtmf:
    digit: str


@dataclass(frozen=True)
class _Utterance:
    pcm16: bytes
    duration_ms: int
    ended_at: float
    """Loop time the segmenter saw the end of the utterance."""
    early: asyncio.Task[Hearing] | None = None
    """The speculative hearing started when the caller fell silent (same words, less the
    trailing silence), when it was still valid at the end of the utterance."""


class TurnTaker:
    def __init__(
        self,
        *,
        call_id: str,
        task_prefix: str,
        ears: Ears,
        segmenter: Segmenter,
        vad: Vad,
        observer: CallObserver,
        clock: Callable[[], datetime],
        tasks: TaskSet,
        stop: asyncio.Event,
        check: Callable[[], None],
        end_silence_ms: int,
    ) -> None:
        self.call_id = call_id
        self._task_prefix = task_prefix
        self.ears = ears
        self.observer = observer
        self.clock = clock
        self.reply_due_since: float | None = None
        """Loop time the caller's last understood turn ended: the reply's latency runs from it."""
        self._segmenter = segmenter
        self._vad = vad
        self._tasks = tasks
        self._stop = stop
        self._check = check
        self._settle_s = end_silence_ms / 2000
        self._inbox: asyncio.Queue[_Dtmf | _Utterance] = asyncio.Queue()
        self._interruptible = True
        self._spoken_over = False
        self._early: tuple[int, asyncio.Task[Hearing]] | None = None
        self._listening = Listen()
        """What the dialog last asked to listen for (the speculative pass hears with it)."""

    # ------------------------------------------------------------------------------------------
    # What the call tells us

    def key_pressed(self, digit: str) -> None:
        self._inbox.put_nowait(_Dtmf(digit))

    def agent_speaking(self, speaking: bool, *, interruptible: bool = True) -> None:
        """While the agent speaks the segmenter listens for barge-in; a prompt that must be
        heard whole (``interruptible=False``) is not cut by it."""
        self._segmenter.set_agent_speaking(speaking)
        self._interruptible = interruptible if speaking else True

    def spoken_over(self) -> bool:
        """The caller spoke over a prompt that could not be cut (the greeting's emergency line)
        since the agent last listened: the prompts after it that could be cut are not said; the
        caller has begun their turn already."""
        return self._spoken_over

    # ------------------------------------------------------------------------------------------
    # Listening for the dialog

    async def listen(self, cmd: Listen) -> DialogEvent:
        """The caller's answer to what the dialog asked: ``Heard``, ``DtmfReceived`` or, once the
        timeout has passed with the caller silent, ``NothingHeard``."""
        self._listening = cmd
        self._spoken_over = False
        self._segmenter.expect_short_answer(cmd.expect != "open")
        self.observer.listening(self.call_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cmd.timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 and not self._segmenter.in_utterance:
                return NothingHeard(self.clock())
            try:
                item = await self._next_input(max(remaining, 0.5))
            except TimeoutError:
                if self._segmenter.in_utterance:
                    continue  # the caller is mid-sentence: let them finish
                return NothingHeard(self.clock())
            if isinstance(item, _Dtmf):
                return DtmfReceived(self.clock(), item.digit)
            stt_started = loop.time()
            hearing = await self._hearing_of(item, cmd)
            self.observer.stt_time(self.call_id, loop.time() - stt_started)
            self.reply_due_since = item.ended_at
            if hearing.understanding is None:
                continue  # noise, a cough: no words; keep listening within the same timeout
            return Heard(self.clock(), hearing.understanding)

    async def _hearing_of(self, item: _Utterance, cmd: Listen) -> Hearing:
        if item.early is not None:
            try:
                return await item.early
            except Exception as exc:  # the speculative pass failed: do the normal one
                log.warning("speculative transcription failed", error=type(exc).__name__)
        return await self._hear(item.pcm16, cmd)

    async def _hear(
        self, pcm16: bytes, cmd: Listen, *, silent_since: float | None = None
    ) -> Hearing:
        """Run as the speculative pass when the caller falls silent (``silent_since``: that loop
        time), a second listen waits for half of the end-of-turn silence first: the first pass
        is cheap, but a second one spent on a pause mid-sentence costs a larger model's time on
        a 2-core box."""

        async def settle() -> None:
            if silent_since is not None:
                loop = asyncio.get_running_loop()
                await asyncio.sleep(max(0.0, silent_since + self._settle_s - loop.time()))

        hearing = await self.ears.hear(
            pcm16,
            now=self.clock(),
            expect=cmd.expect,
            detail=cmd.detail,
            before_second=settle,
            lang=cmd.lang,
        )
        if hearing.second is not None:
            self.observer.second_listen(self.call_id, hearing.second_s)
        return hearing

    async def _next_input(self, timeout_s: float) -> _Dtmf | _Utterance:
        getter = asyncio.ensure_future(self._inbox.get())
        gone = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, gone}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done:
            return getter.result()
        if gone in done:
            self._check()
        raise TimeoutError

    # ------------------------------------------------------------------------------------------
    # The media pump

    async def pump(self, media: RtpSession) -> None:
        """Frames to utterances for the whole call; returns when the media session closes."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            frame = await media.next_frame(STREAM_GAP_S)
            if frame is None and media.ended:
                return
            now = loop.time()
            if frame is None:
                # The caller's side stopped sending RTP (some phones and bridges send nothing during
                # silence): media time still passes, so an utterance in progress can end.
                missing = int((now - last) / FRAME_S)
                events: list[Any] = []
                for _ in range(missing):
                    events += self._segmenter.lost(FRAME_MS)
                last += missing * FRAME_S
            else:
                last = now
                events = self._segment(frame)
            for ev in events:
                self._on_segment_event(ev, media, loop.time())

    def _on_segment_event(self, ev: Any, media: RtpSession, now: float) -> None:
        if isinstance(ev, SilenceBegan):
            self._start_early_pass(ev, now)
        elif isinstance(ev, SpeechResumed):
            self._cancel_early_pass()
        elif isinstance(ev, UtteranceEnded):
            early = self._take_early_pass(ev.utterance_id) if ev.reason == "end" else None
            if early is None:
                self._cancel_early_pass()
            self._inbox.put_nowait(_Utterance(ev.audio, ev.duration_ms, now, early))
        elif isinstance(ev, BargeIn) and self._interruptible:
            cut = media.flush()
            if cut:
                log.info("barge-in: prompt cut", prompts=len(cut))
        elif isinstance(ev, BargeIn):
            self._spoken_over = True

    def _segment(self, frame: JitterFrame) -> list[Any]:
        if frame.lost:
            return self._segmenter.lost(FRAME_MS)
        pcm = g711.ulaw_decode(frame.payload).tobytes()
        return self._segmenter.process(pcm, self._vad.is_speech(pcm), FRAME_MS)

    # ------------------------------------------------------------------------------------------
    # The early pass

    def _start_early_pass(self, ev: SilenceBegan, now: float) -> None:
        """The caller went quiet: hear what they said so far now, while the end-of-utterance
        silence runs. Cancelled if they go on speaking."""
        self._cancel_early_pass()
        task = self._tasks.start(
            self._hear(ev.audio, self._listening, silent_since=now),
            name=f"{self._task_prefix}:early-stt",
        )
        self._early = (ev.utterance_id, task)

    def _cancel_early_pass(self) -> None:
        if self._early is not None:
            self._early[1].cancel()
            self._early = None

    def _take_early_pass(self, utterance_id: int) -> asyncio.Task[Hearing] | None:
        early, self._early = self._early, None
        if early is None:
            return None
        if early[0] != utterance_id:
            early[1].cancel()
            return None
        return early[1]
