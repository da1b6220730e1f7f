"""One caller turn heard: the words, read, and heard again when the turn calls for it.

The first recogniser transcribes; the understander reads the words (triage reads the n-best list
too). When the turn is about the caller's health, or the intent model is unsure of it, and it
raised no emergency (``worth_a_second_listen``), the second recogniser (``stt.second_model``)
hears the same audio again: its words are the ones acted on (it hears better), and triage reads
both hearings. A second listen that fails leaves the first hearing as it was: a symptom turn still
gets its screening question.

Calls use this through ``agent.runtime.turns``; ``medagent understand --audio`` and ``medagent
eval --audio`` use the same class, so what they report is what calls do. The understander runs in
a worker thread: a spaCy pass is milliseconds, but a call's event loop also paces every other
call's outbound audio.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.config import Config
from agent.core.dialog.commands import Expect
from agent.core.understanding import Understanding, other_hypotheses, worth_a_second_listen
from agent.log import get_logger
from agent.runtime.engines import (
    SpacyNlu,
    SpeechResult,
    SpeechToText,
    Understand,
    WhisperStt,
    practice_prompt,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class Hearing:
    understanding: Understanding | None
    """``None``: no words were heard (silence, noise, or speech neither model made out)."""
    first: SpeechResult
    first_s: float
    """Seconds the first recogniser took (queue wait included)."""
    second: SpeechResult | None = None
    """The second listen's result when there was one."""
    second_s: float = 0.0

    @property
    def heard(self) -> str:
        """The words acted on: the second hearing's when it heard any."""
        return self.second.text if self.second is not None and self.second.text else self.first.text

    @property
    def stt_s(self) -> float:
        """Recogniser time of the turn, both listens."""
        return self.first_s + self.second_s


class Ears:
    def __init__(
        self,
        stt: SpeechToText,
        nlu: Understand,
        *,
        second_stt: SpeechToText | None = None,
        min_confidence: float = 0.5,
    ) -> None:
        self.stt = stt
        self.nlu = nlu
        self.second_stt = second_stt
        self.min_confidence = min_confidence
        self.closers: list[Callable[[], Awaitable[None]]] = []

    @classmethod
    def load(cls, cfg: Config, understander: Any) -> Ears:
        """Both recognisers of ``cfg`` and the given understander, for the commands that hear
        audio files as a call would (``EngineError`` when a model cannot be loaded; a call
        goes on without the second one instead). The understander's own reading is kept: no
        yes/no reading is added (``SpacyNlu``)."""
        from agent.engines.stt import AsyncTranscriber, build_second_transcriber, build_transcriber

        prompt = practice_prompt(cfg)
        first = AsyncTranscriber(build_transcriber(cfg.stt))
        second_engine = build_second_transcriber(cfg.stt)
        second = AsyncTranscriber(second_engine) if second_engine is not None else None
        ears = cls(
            WhisperStt(first, prompt),
            SpacyNlu(understander, yes_no=False),
            second_stt=WhisperStt(second, prompt) if second is not None else None,
            min_confidence=cfg.nlu.min_confidence,
        )
        ears.closers.append(first.aclose)
        if second is not None:
            ears.closers.append(second.aclose)
        return ears

    async def aclose(self) -> None:
        for close in self.closers:
            await close()

    async def nothing(self, now: datetime) -> Understanding:
        """What a turn with no words is understood as where a result must be printed or scored
        (a call keeps listening instead)."""
        return await self._understand("", now=now, expect="open", alternatives=())

    async def hear(
        self,
        pcm16_8k: bytes,
        *,
        now: datetime,
        expect: Expect = "open",
        detail: bool = False,
        before_second: Callable[[], Awaitable[None]] | None = None,
        lang: str = "en",
    ) -> Hearing:
        """``pcm16_8k``: one turn of 8 kHz 16-bit audio. ``expect``/``detail``: what the dialog
        asked (only an open question's answer is heard twice; a detail such as a name is not
        about health). ``before_second`` is awaited before a second listen starts (the call's
        speculative pass waits there for the caller to have really finished). ``lang``: the
        call's language; a Spanish call is heard by the multilingual second recogniser alone (the
        first, English-only, would only guess at Spanish words)."""
        if lang != "en" and self.second_stt is not None:
            started = time.perf_counter()
            try:
                heard = await self.second_stt.transcribe(pcm16_8k, short_answer=expect != "open")
            except Exception as exc:
                log.warning("multilingual listen failed", error=type(exc).__name__)
            else:
                took = time.perf_counter() - started
                understanding = None
                if heard.text:
                    understanding = await self._understand(
                        heard.text, now=now, expect=expect, alternatives=heard.alternatives
                    )
                return Hearing(understanding, heard, took)
        started = time.perf_counter()
        first = await self.stt.transcribe(pcm16_8k, short_answer=expect != "open")
        first_s = time.perf_counter() - started
        understanding = None
        if first.text:
            understanding = await self._understand(
                first.text, now=now, expect=expect, alternatives=first.alternatives
            )
        due = (
            self.second_stt is not None
            and expect == "open"
            and not detail
            and worth_a_second_listen(understanding, self.min_confidence, unclear=first.unclear)
        )
        if not due:
            return Hearing(understanding, first, first_s)
        if before_second is not None:
            await before_second()
        return await self._listen_again(pcm16_8k, first, first_s, understanding, now, expect)

    async def _listen_again(
        self,
        pcm16_8k: bytes,
        first: SpeechResult,
        first_s: float,
        understanding: Understanding | None,
        now: datetime,
        expect: Expect,
    ) -> Hearing:
        assert self.second_stt is not None
        started = time.perf_counter()
        try:
            again = await self.second_stt.transcribe(pcm16_8k)
        except Exception as exc:
            log.warning("second listen failed", error=type(exc).__name__)
            return Hearing(understanding, first, first_s)
        second_s = time.perf_counter() - started
        if not again.text:
            return Hearing(understanding, first, first_s, again, second_s)
        merged = await self._understand(
            again.text,
            now=now,
            expect=expect,
            alternatives=other_hypotheses(
                again.text, again.alternatives, (first.text,), first.alternatives
            ),
        )
        if understanding is None or merged.urgency != understanding.urgency:
            log.info(
                "second listen changed what was heard",
                was=understanding.urgency if understanding else "nothing",
                urgency=merged.urgency,
                red_flags=[f.rule_id for f in merged.red_flags],
            )
        return Hearing(merged, first, first_s, again, second_s)

    async def _understand(
        self, text: str, *, now: datetime, expect: Expect, alternatives: tuple[str, ...]
    ) -> Understanding:
        return await asyncio.to_thread(
            self.nlu.understand,
            text,
            now=now,
            expect=expect,
            alternatives=alternatives,
            transcript=text,
        )
