"""The engines a call uses, behind the small interfaces the call session needs.

One instance of each model serves every call (loaded once at start-up). Tests and
``medagent simulate --fake-engines`` swap in the fakes from ``tests/fakes`` or ``agent.runtime.fakes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from agent.config import Config
from agent.core.dialog.commands import Expect
from agent.core.understanding import Understanding
from agent.engines.vad import Vad
from agent.errors import EngineError
from agent.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SpeechResult:
    text: str
    """Words heard in the audio; ``""`` when there were none (noise, silence)."""
    alternatives: tuple[str, ...] = ()
    """The recogniser's other hypotheses (for red-flag triage)."""
    unclear: bool = False
    """No words, yet there was speech the recogniser could not make out (``stt.unclear``)."""


class SpeechToText(Protocol):
    async def transcribe(self, pcm16_8k: bytes, *, short_answer: bool = False) -> SpeechResult: ...


class Understand(Protocol):
    def understand(
        self,
        text: str,
        *,
        now: datetime,
        expect: Expect = "open",
        alternatives: tuple[str, ...] = (),
        transcript: str | None = None,
    ) -> Understanding:
        """``transcript``: the recogniser's words when the text came from audio."""
        ...


class Prompts(Protocol):
    def get(self, key: str) -> list[bytes]:
        """Pre-rendered frames of a static prompt (KeyError when unknown)."""
        ...

    async def render(self, text: str) -> list[bytes]: ...


@dataclass
class Engines:
    prompts: Prompts
    stt: SpeechToText
    nlu: Understand
    make_vad: Callable[[], Vad]
    second_stt: SpeechToText | None = None
    """The larger recogniser that hears a symptom turn again (``stt.second_model``); ``None``: off."""
    closers: list[Callable[[], Any]] = field(default_factory=list)
    """Called on shutdown (executors, models)."""
    prompts_es: Prompts | None = None
    """The Spanish voice and its pre-rendered prompts (``None``: Spanish calls hear ``prompts``)."""

    def voice(self, lang: str) -> Prompts:
        """The prompts (and voice) of ``lang``."""
        if lang == "es" and self.prompts_es is not None:
            return self.prompts_es
        return self.prompts

    async def aclose(self) -> None:
        for close in self.closers:
            result = close()
            if asyncio.iscoroutine(result):
                await result


# ---------------------------------------------------------------------------------------------
# The real engines


class WhisperStt:
    """faster-whisper (or openai-whisper) off the event loop, with the domain vocabulary prompt."""

    def __init__(self, transcriber: Any, prompt: str | None) -> None:
        self._t = transcriber
        self._prompt = prompt

    async def transcribe(self, pcm16_8k: bytes, *, short_answer: bool = False) -> SpeechResult:
        result = await self._t.transcribe(pcm16_8k, prompt=self._prompt, short_answer=short_answer)
        from agent.engines.stt import unclear

        return SpeechResult(result.text.strip(), tuple(result.alternatives), unclear(result))


class SpacyNlu:
    """The trained intent model + rule-based entities + triage; adds the yes/no reading when the
    dialog asked a yes/no question."""

    def __init__(self, understander: Any, *, yes_no: bool = True) -> None:
        self._u = understander
        self._yes_no = yes_no

    def understand(
        self,
        text: str,
        *,
        now: datetime,
        expect: Expect = "open",
        alternatives: tuple[str, ...] = (),
        transcript: str | None = None,
    ) -> Understanding:
        from agent.engines.nlu.entities import parse_yes_no

        result: Understanding = self._u.understand(
            text, now=now, transcript=transcript, alternatives=alternatives
        )
        # The dialog decides what a yes/no means in context ("no, that's all" ends a call; "no chest
        # pain" in a long sentence does not), so the reading is attached whatever was asked.
        # ``medagent understand`` prints the model's own reading (``yes_no=False``).
        if self._yes_no and result.entity("yes_no") is None:
            answer = parse_yes_no(text)
            if answer is not None:
                from dataclasses import replace

                from agent.core.understanding import Entity

                result = replace(
                    result, entities=[*result.entities, Entity("yes_no", text, answer)]
                )
        return result


def practice_prompt(cfg: Config) -> str:
    """Whisper's initial prompt for this practice: its name, its providers, its vocabulary."""
    from agent.engines.stt import stt_prompt

    return stt_prompt(
        cfg.practice.name, [p.name for p in cfg.practice.providers], cfg.stt.vocabulary
    )


async def load_engines(cfg: Config) -> Engines:
    """Load every model once (in worker threads, so the loop stays responsive) and pre-render the
    static prompts."""
    from agent.engines.nlu.pipeline import Understander
    from agent.engines.stt import (
        AsyncTranscriber,
        build_second_transcriber,
        build_transcriber,
    )
    from agent.engines.tts import build_tts
    from agent.engines.vad import build_vad
    from agent.runtime.prompt_cache import PromptCache, static_prompts, static_prompts_es

    tts = await asyncio.to_thread(build_tts, cfg.tts)
    prompts = PromptCache(tts, static_prompts(cfg.practice), cfg.tts)
    report = await prompts.start()
    log.info(
        "prompts ready",
        rendered=report.rendered,
        loaded=report.loaded,
        seconds=round(report.seconds, 2),
    )

    prompts_es: PromptCache | None = None
    try:
        tts_es = await asyncio.to_thread(build_tts, cfg.tts, lang="es")
    except (EngineError, OSError, ValueError) as exc:
        # English calls are unaffected; a Spanish caller hears the English voice reading Spanish.
        log.error("spanish voice off: it did not load", error=type(exc).__name__)
    else:
        prompts_es = PromptCache(tts_es, static_prompts_es(cfg.practice), cfg.tts)
        await prompts_es.start()

    transcriber = await asyncio.to_thread(build_transcriber, cfg.stt)
    async_stt = AsyncTranscriber(transcriber, workers=cfg.stt.workers)
    closers: list[Callable[[], Any]] = [prompts.aclose, async_stt.aclose]
    if prompts_es is not None:
        closers.append(prompts_es.aclose)
    second: WhisperStt | None = None
    try:
        second_transcriber = await asyncio.to_thread(build_second_transcriber, cfg.stt)
    except (EngineError, OSError) as exc:
        # The call works without it (a symptom turn still gets the screening question); the
        # administrator is told, and `medagent check` says how to fix it.
        log.error("second listen off: its model did not load", error=type(exc).__name__)
        second_transcriber = None
    understander = await asyncio.to_thread(Understander.from_config, cfg)
    prompt = practice_prompt(cfg)
    if second_transcriber is not None:
        # Its own single worker: a second listen never queues behind (or holds up) first passes.
        async_second = AsyncTranscriber(second_transcriber, workers=1)
        closers.append(async_second.aclose)
        second = WhisperStt(async_second, prompt)
    return Engines(
        prompts=prompts,
        prompts_es=prompts_es,
        stt=WhisperStt(async_stt, prompt),
        nlu=SpacyNlu(understander),
        make_vad=lambda: build_vad(cfg.vad),
        second_stt=second,
        closers=closers,
    )
