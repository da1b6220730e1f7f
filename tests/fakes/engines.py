"""Fake engines for call-flow tests: scripted speech recognition, keyword understanding.

The caller's audio is real synthesized speech (so VAD and segmentation are exercised for real);
only the words are scripted: the fake recogniser returns the next line of its script for each
utterance, in order. Understanding is a small keyword table — enough to drive the dialog.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime

import numpy as np

from agent.config import Config
from agent.core.dialog.commands import Expect
from agent.core.understanding import Entity, RedFlag, Understanding
from agent.engines.nlu.protocol_files import current_book
from agent.engines.tts import EspeakTts
from agent.engines.vad import build_vad
from agent.runtime.engines import Engines, SpeechResult
from agent.runtime.prompt_cache import PromptCache, static_prompts

UNCLEAR = "<unclear>"
"""A script line for speech the recogniser could not make out (no words, ``unclear``)."""


class ScriptedStt:
    """Returns the next script line for each new utterance (``UNCLEAR``: speech it could not
    make out). The call session may transcribe an
    utterance twice (a speculative pass when the caller falls silent, then the final one): both
    passes start with the same audio, so the line is keyed by the first 200 ms of its speech."""

    def __init__(self, lines: list[str] | None = None) -> None:
        self.lines: deque[str] = deque(lines or [])
        self.heard_audio: list[bytes] = []
        self._by_start: dict[bytes, str] = {}

    async def transcribe(self, pcm16_8k: bytes, *, short_answer: bool = False) -> SpeechResult:
        self.heard_audio.append(pcm16_8k)
        samples = np.frombuffer(pcm16_8k, dtype=np.int16)
        voiced = np.flatnonzero(np.abs(samples.astype(np.int32)) > 1000)
        start = int(voiced[0]) if len(voiced) else 0
        key = samples[start : start + 1600].tobytes()
        if key not in self._by_start:
            self._by_start[key] = self.lines.popleft() if self.lines else ""
        line = self._by_start[key]
        if line == UNCLEAR:
            return SpeechResult("", unclear=True)
        return SpeechResult(line)


KEYWORDS = [
    ("chest pain", "symptoms", "emergency", "chest_pain"),
    ("rash", "symptoms", "urgent", "fever_with_rash"),
    ("refill", "refill", "routine", None),
    ("appointment", "schedule", "routine", None),
    ("hours", "office_info", "routine", None),
    ("person", "speak_to_staff", "routine", None),
    ("message", "message", "routine", None),
    ("fainted", "symptoms", "emergency", "fainting"),
    ("dizzy", "symptoms", "routine", None),
]


class KeywordNlu:
    def understand(
        self,
        text: str,
        *,
        now: datetime,
        expect: Expect = "open",
        alternatives: tuple[str, ...] = (),
        transcript: str | None = None,
    ) -> Understanding:
        t = text.lower()
        ents = []
        if expect == "yes_no":
            if t.startswith(("yes", "yeah", "sure")):
                ents.append(Entity("yes_no", text, True))
            elif t.startswith(("no", "nope")):
                ents.append(Entity("yes_no", text, False))
        # Like the real triage, a red flag in any of the recogniser's hypotheses counts.
        heard_flags = [
            RedFlag(flag, urgency, flag.replace("_", " "), kw)  # type: ignore[arg-type]
            for kw, _, urgency, flag in KEYWORDS
            if flag and any(kw in h.lower() for h in alternatives)
        ]
        for kw, intent, urgency, flag in KEYWORDS:
            if kw in t:
                flags = [RedFlag(flag, urgency, flag.replace("_", " "), kw)] if flag else []  # type: ignore[arg-type]
                return self._flagged(text, intent, urgency, [*flags, *heard_flags], ents)
        confidence = 0.6 if t.strip() else 0.0
        return self._flagged(text, "message", "routine", heard_flags, ents, confidence)

    @staticmethod
    def _flagged(
        text: str,
        intent: str,
        urgency: str,
        flags: list[RedFlag],
        ents: list[Entity],
        confidence: float = 0.9,
    ) -> Understanding:
        ranks = {"routine": 0, "urgent": 1, "emergency": 2}
        for flag in flags:
            if ranks[flag.urgency] > ranks[urgency]:
                urgency = flag.urgency
        return Understanding(text, "en", intent, confidence, urgency, flags, ents)  # type: ignore[arg-type]


async def fake_engines(
    cfg: Config, script: list[str] | None = None, *, tmp_cache: str = ""
) -> tuple[Engines, ScriptedStt]:
    tts = EspeakTts(cfg.tts)
    prompts = PromptCache(tts, static_prompts(cfg.practice), cfg.tts, cache_dir=tmp_cache)
    await prompts.start()
    # As the real engines' loading does (``Understander.from_config``): the protocols are read
    # before the first call, which would otherwise wait seconds for them.
    await asyncio.to_thread(current_book, cfg.practice.specialty_packs)
    stt = ScriptedStt(script)
    return (
        Engines(
            prompts=prompts,
            stt=stt,
            nlu=KeywordNlu(),
            make_vad=lambda: build_vad(cfg.vad),
            closers=[prompts.aclose],
        ),
        stt,
    )
