"""The asyncio side of speech to text: one loaded engine, its passes run in worker threads.

Partial and speculative passes are ordinary calls. The recipe for the call's runtime: at the
segmenter's ``SilenceBegan`` start ``AsyncTranscriber.transcribe(event.audio)`` as a task; at
``SpeechResumed`` cancel it; at ``UtteranceEnded`` (reason ``end``) with no ``SpeechResumed`` since,
await that task instead of starting a new pass: the final audio only adds the trailing silence,
and the slow tests check that both passes hear the same words. That takes the recogniser's time
out of the end-of-turn silence. ``Segmenter.audio_so_far()`` feeds partial passes the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from agent.engines.stt.transcript import Transcriber, Transcript
from agent.errors import EngineError


class AsyncTranscriber:
    """Runs one synchronous engine in ``workers`` threads, off the event loop.

    ``await transcribe(...)`` may be cancelled by the caller (a speculative pass at
    ``SpeechResumed``, a hangup): a pass still queued never runs; one already running finishes in
    its thread and its result is dropped (CTranslate2 cannot be interrupted mid-pass).
    """

    def __init__(self, engine: Transcriber, *, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.engine = engine
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="stt"
        )
        self._closed = False

    async def transcribe(
        self, pcm16_8k: bytes, *, prompt: str | None = None, short_answer: bool = False
    ) -> Transcript:
        if self._closed:
            raise EngineError("the transcriber is closed")
        future = self._executor.submit(
            self.engine.transcribe, pcm16_8k, prompt=prompt, short_answer=short_answer
        )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    async def aclose(self) -> None:
        """Drop queued passes, wait for running ones (in a thread, so the loop keeps going)."""
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
