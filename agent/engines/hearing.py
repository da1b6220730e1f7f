"""One caller turn heard as a call hears it, synchronously: for ``medagent understand --audio`` and
``medagent eval --audio``, so what they report is what calls do.

The first recogniser transcribes; the understander reads the words (triage reads the n-best list
too). When the turn is about the caller's health, or the intent model is unsure of it, and it
raised no emergency (``worth_a_second_listen``), the second recogniser (``stt.second_model``)
hears the same audio again: its words are the ones acted on (it hears better), and triage reads
both hearings. The call's runtime does the same with its async engines
(``agent.runtime.call.CallSession._hear``, run as the speculative pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.config import Config
from agent.core.understanding import Understanding, other_hypotheses, worth_a_second_listen
from agent.engines.stt import Transcriber, Transcript, unclear


@dataclass(frozen=True)
class Hearing:
    understanding: Understanding | None
    """``None``: no words were heard (silence, noise, or speech neither model made out)."""
    first: Transcript
    second: Transcript | None = None
    """The second listen's transcript when there was one."""

    @property
    def heard(self) -> str:
        """The words acted on: the second hearing's when it heard any."""
        return self.second.text if self.second is not None and self.second.text else self.first.text

    @property
    def stt_s(self) -> float:
        """Recogniser time of the turn, both listens."""
        return self.first.elapsed_s + (self.second.elapsed_s if self.second else 0.0)


class Ears:
    def __init__(
        self,
        first: Transcriber,
        understander: Any,
        *,
        prompt: str | None,
        second: Transcriber | None = None,
        min_confidence: float = 0.5,
    ) -> None:
        self.min_confidence = min_confidence
        self.first = first
        self.second = second
        self.understander = understander
        self.prompt = prompt

    @classmethod
    def from_config(cls, cfg: Config, understander: Any) -> Ears:
        """Loads both recognisers (``EngineError`` when one cannot be loaded)."""
        from agent.engines.stt import build_second_transcriber, build_transcriber

        return cls(
            build_transcriber(cfg.stt),
            understander,
            prompt=stt_prompt(cfg),
            second=build_second_transcriber(cfg.stt),
            min_confidence=cfg.nlu.min_confidence,
        )

    def nothing(self, now: datetime) -> Understanding:
        """What a turn with no words is understood as where a result must be printed or scored
        (a call keeps listening instead)."""
        result: Understanding = self.understander.understand("", now=now, transcript="")
        return result

    def hear(self, pcm16_8k: bytes, *, now: datetime) -> Hearing:
        """An open turn (the dialog asked an open question) of 8 kHz 16-bit audio. The
        understanding is ``None`` when neither recogniser heard words."""
        first = self.first.transcribe(pcm16_8k, prompt=self.prompt)
        u = None
        if first.text:
            u = self.understander.understand(
                first.text, now=now, transcript=first.text, alternatives=first.alternatives
            )
        if self.second is None or not worth_a_second_listen(
            u, self.min_confidence, unclear=unclear(first)
        ):
            return Hearing(u, first)
        second = self.second.transcribe(pcm16_8k, prompt=self.prompt)
        if second.text:
            u = self.understander.understand(
                second.text,
                now=now,
                transcript=second.text,
                alternatives=other_hypotheses(
                    second.text, second.alternatives, (first.text,), first.alternatives
                ),
            )
        return Hearing(u, first, second)


def stt_prompt(cfg: Config) -> str:
    """Whisper's initial prompt for this practice (the same one calls use)."""
    from agent.engines.stt import stt_prompt as build

    return build(cfg.practice.name, [p.name for p in cfg.practice.providers], cfg.stt.vocabulary)
