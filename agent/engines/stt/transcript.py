"""What a recogniser pass gives back, and the interface every recogniser offers.

``Hypothesis`` is one decoder pass before the guards (``guards``) judge it; ``Transcript`` is what
the rest of the agent reads once they have. ``normalise`` is the one spelling of words that the
guards, the short-answer matching and the benchmark all compare in.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Literal, Protocol

Window = Literal["short", "open", "full", "skipped"]
EncoderWindow = Literal["short", "open", "full"]


def normalise(text: str) -> str:
    """Lower case, letters/digits/apostrophes only, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class Transcript:
    text: str
    """What was said; empty when nothing was heard or a guard rejected the hypothesis."""
    words: tuple[str, ...]
    """``text`` as lower-case words without punctuation, for matching short answers."""
    avg_logprob: float
    no_speech_prob: float
    duration_s: float
    """Length of the audio given."""
    elapsed_s: float
    """Wall time the transcription took."""
    compression_ratio: float = 0.0
    window: Window = "full"
    """Which encoder window produced the text (``skipped``: the voice pre-check said no)."""
    rejected: str | None = None
    """Why a hypothesis was dropped: ``no_voice``, ``empty``, ``prompt_echo``, ``no_speech``,
    ``repetition``, ``low_confidence``, ``hallucination``."""
    hypothesis: str = ""
    """Whisper's text before the guards (patient data: never log it)."""
    alternatives: tuple[str, ...] = ()
    """Other hypotheses of the same pass (best first, ``text`` excluded); empty when rejected.
    Triage reads them so a misheard red flag is not missed."""
    language: str = ""
    """The language Whisper decoded in (``""`` when it did not run)."""

    @property
    def empty(self) -> bool:
        return not self.text


class Transcriber(Protocol):
    def transcribe(
        self, pcm16_8k: bytes, *, prompt: str | None, short_answer: bool = False
    ) -> Transcript:
        """``pcm16_8k``: signed 16-bit little-endian 8 kHz mono. ``short_answer``: the dialog
        expects yes/no or a digit, so the decoder may stop early."""
        ...


@dataclass(frozen=True)
class Hypothesis:
    """One decoder pass, before the guards."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    hit_length_limit: bool = False
    looped: bool = False
    """The decoder repeated itself and ``text`` is its first copy."""
    alternatives: tuple[str, ...] = ()
    """The other n-best texts of the pass (full window with ``stt.alternatives`` > 1)."""
    language: str = ""
    """The language decoded (detected among the model's ``languages`` when it has several)."""

    @property
    def compression_ratio(self) -> float:
        return compression_ratio(self.text)


def transcript_of(
    h: Hypothesis | None,
    *,
    duration_s: float,
    elapsed_s: float,
    window: Window,
    rejected: str | None,
) -> Transcript:
    """The transcript of a pass (``h``; ``None`` when Whisper did not run). A rejected hypothesis
    keeps only its raw text, in ``hypothesis``: nothing downstream may act on it."""
    if h is None:
        return Transcript("", (), 0.0, 1.0, duration_s, elapsed_s, 0.0, window, rejected)
    text = "" if rejected else h.text.strip()
    return Transcript(
        text=text,
        words=tuple(normalise(text).split()),
        avg_logprob=h.avg_logprob,
        no_speech_prob=h.no_speech_prob,
        duration_s=duration_s,
        elapsed_s=elapsed_s,
        compression_ratio=h.compression_ratio,
        window=window,
        rejected=rejected,
        hypothesis=h.text.strip(),
        alternatives=()
        if rejected
        else tuple(a.strip() for a in h.alternatives if a.strip() and a.strip() != text),
        language=h.language,
    )
