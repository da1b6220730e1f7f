"""The transcribers: Whisper with the voice gate in front and the guards behind, on either of two
backends, and the choice between them from ``[stt]``.

``FasterWhisperTranscriber`` runs a CTranslate2 Whisper model (``decoder``) and owns the window
policy: short answers get the short window, other turns the open one, and a shortened window's
result that still looks wrong (``guards.looks_wrong``) is redone on the full window: a redo costs
one more pass, believing a loop costs a wrong answer. ``OpenAIWhisperTranscriber`` runs the
design card's openai-whisper on a local ``.pt`` file when that optional extra is installed.

Both run the same voice gate (``transcribe_voiced``): Whisper is not run at all on audio with less
than ``stt.min_voiced_ms`` of voice, since on silence, line noise or a click it writes words.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from agent.config import SttConfig, VadConfig
from agent.core.frames import PCM16_FRAME_BYTES
from agent.core.resample import telephone_to_whisper
from agent.engines.stt.decoder import (
    FULL_WINDOW_S,
    CTranslate2Whisper,
    WhisperDecoder,
    max_new_tokens,
    short_window_budget,
)
from agent.engines.stt.guards import echoes_prompt, looks_wrong, rejection
from agent.engines.stt.transcript import (
    EncoderWindow,
    Hypothesis,
    Transcriber,
    Transcript,
    transcript_of,
)
from agent.engines.vad import Vad, build_vad
from agent.errors import EngineError

# --------------------------------------------------------------------------------------------------
# The voice gate


def voiced_ms(pcm16_8k: bytes, vad: Vad, *, min_run_frames: int = 3) -> int:
    """Milliseconds of voice per the VAD, counting only runs of ``min_run_frames`` consecutive
    20 ms speech frames: a click or pop is one frame, the shortest syllable is longer than 60 ms."""
    n = len(pcm16_8k) // PCM16_FRAME_BYTES
    total = run = 0
    for i in range(n):
        if vad.is_speech(pcm16_8k[i * PCM16_FRAME_BYTES : (i + 1) * PCM16_FRAME_BYTES]):
            run += 1
            continue
        total += run if run >= min_run_frames else 0
        run = 0
    total += run if run >= min_run_frames else 0
    return 20 * total


def gate_vad() -> Vad:
    """The gate's VAD: the noise gate at its defaults. It asks "is there any voice at all?",
    independent of the endpointing settings of the call."""
    return build_vad(VadConfig())


def transcribe_voiced(
    pcm16_8k: bytes,
    *,
    cfg: SttConfig,
    vad: Vad,
    prompt: str | None,
    hear: Callable[[int], tuple[Hypothesis, EncoderWindow]],
) -> Transcript:
    """The pass both backends share: the voice gate, then ``hear(voiced_ms)`` (one backend's
    Whisper pass and the window it used), then the guards."""
    started = time.perf_counter()
    duration_s = len(pcm16_8k) / 16000
    voiced = voiced_ms(pcm16_8k, vad)
    if voiced < cfg.min_voiced_ms:
        return transcript_of(
            None,
            duration_s=duration_s,
            elapsed_s=time.perf_counter() - started,
            window="skipped",
            rejected="no_voice",
        )
    h, window = hear(voiced)
    # An echo of the prompt among the other hypotheses would be read for red flags too.
    others = tuple(a for a in h.alternatives if not echoes_prompt(a, prompt))
    return transcript_of(
        dataclasses.replace(h, alternatives=others),
        duration_s=duration_s,
        elapsed_s=time.perf_counter() - started,
        window=window,
        rejected=rejection(h, cfg, voiced_ms=voiced, prompt=prompt),
    )


# --------------------------------------------------------------------------------------------------
# The backends


class FasterWhisperTranscriber:
    """Whisper with the voice pre-check, the window policy and the guards around it."""

    def __init__(
        self,
        cfg: SttConfig,
        *,
        vad: Vad | None = None,
        decoder: WhisperDecoder | None = None,
        languages: Sequence[str] = (),
    ) -> None:
        """``languages``: see ``CTranslate2Whisper`` (ignored with a ``decoder`` given)."""
        self.cfg = cfg
        self.decoder: WhisperDecoder = (
            decoder if decoder is not None else CTranslate2Whisper(cfg, languages=languages)
        )
        self._vad = vad if vad is not None else gate_vad()

    def transcribe(
        self,
        pcm16_8k: bytes,
        *,
        prompt: str | None,
        short_answer: bool = False,
        window: Literal["auto", "short", "open", "full"] = "auto",
    ) -> Transcript:
        """``window``: ``auto`` follows the settings (``short_window``, ``open_window_s``) and
        redoes a shortened window's doubtful result on the full window; ``short``, ``open`` and
        ``full`` force one window without fallback (for the benchmark)."""

        def hear(voiced: int) -> tuple[Hypothesis, EncoderWindow]:
            audio = telephone_to_whisper(pcm16_8k)
            budget = max_new_tokens(len(pcm16_8k) / 16000, short_answer=short_answer)
            # Open questions keep an n-best list for triage; short answers stay greedy and fast.
            n_best = 1 if short_answer else max(1, self.cfg.alternatives)
            used: EncoderWindow = self._window(short_answer) if window == "auto" else window
            h = self.decoder.decode(
                audio,
                window=used,
                prompt=prompt,
                max_tokens=min(budget, short_window_budget(voiced)) if used == "short" else budget,
                n_best=n_best,
            )
            if window == "auto" and used != "full" and looks_wrong(h, self.cfg, voiced_ms=voiced):
                used = "full"
                h = self.decoder.decode(
                    audio, window="full", prompt=prompt, max_tokens=budget, n_best=n_best
                )
            return h, used

        return transcribe_voiced(pcm16_8k, cfg=self.cfg, vad=self._vad, prompt=prompt, hear=hear)

    def _window(self, short_answer: bool) -> EncoderWindow:
        policy = self.cfg.short_window
        if policy == "never":
            return "full"
        if policy == "always" or short_answer:
            return "short"
        return "open" if self.cfg.open_window_s < FULL_WINDOW_S else "full"


class OpenAIWhisperTranscriber:
    """The design card's openai-whisper, on a local ``.pt`` file (``stt.model``; it cannot
    download offline). Needs the ``openai-whisper`` extra (torch); imported only when chosen."""

    def __init__(self, cfg: SttConfig, *, vad: Vad | None = None) -> None:
        try:
            import whisper
        except ImportError as exc:
            raise EngineError(
                "stt.backend = 'openai-whisper' needs the openai-whisper package "
                "(pip install 'medagent[openai-whisper]')"
            ) from exc
        self.cfg = cfg
        path = Path(cfg.model)
        if path.suffix != ".pt" or not path.is_file():
            raise EngineError(
                f"stt.model {cfg.model!r}: openai-whisper needs a local .pt weights file"
            )
        started = time.perf_counter()
        self._model = whisper.load_model(str(path), device="cpu", download_root=cfg.model_cache_dir)
        self.load_s = time.perf_counter() - started
        self._whisper = whisper
        self._vad = vad if vad is not None else gate_vad()

    def transcribe(
        self, pcm16_8k: bytes, *, prompt: str | None, short_answer: bool = False
    ) -> Transcript:
        def hear(voiced: int) -> tuple[Hypothesis, EncoderWindow]:
            result = self._model.transcribe(
                telephone_to_whisper(pcm16_8k),
                language=self.cfg.language,
                initial_prompt=prompt,
                temperature=0.0,
                beam_size=self.cfg.beam_size if self.cfg.beam_size > 1 else None,
                condition_on_previous_text=False,
                without_timestamps=True,
                fp16=False,
            )
            segments = result.get("segments") or [{}]
            h = Hypothesis(
                text=str(result.get("text", "")),
                avg_logprob=float(np.mean([s.get("avg_logprob", 0.0) for s in segments])),
                no_speech_prob=float(max(s.get("no_speech_prob", 0.0) for s in segments)),
            )
            return h, "full"

        return transcribe_voiced(pcm16_8k, cfg=self.cfg, vad=self._vad, prompt=prompt, hear=hear)


# --------------------------------------------------------------------------------------------------
# Building them from [stt]


def build_transcriber(cfg: SttConfig) -> Transcriber:
    """The first recogniser of every turn, on the backend ``stt.backend`` names."""
    if cfg.backend == "faster-whisper":
        return FasterWhisperTranscriber(cfg)
    if cfg.backend == "openai-whisper":
        return OpenAIWhisperTranscriber(cfg)
    raise EngineError(f"unknown stt.backend {cfg.backend!r}")


def build_second_transcriber(cfg: SttConfig) -> Transcriber | None:
    """The recogniser of the second listen (``stt.second_model``, faster-whisper with the same
    windows and guards as the first, detecting per pass which of ``stt.second_languages`` is
    spoken); ``None`` when the setting is empty."""
    if not cfg.second_model:
        return None
    return FasterWhisperTranscriber(
        dataclasses.replace(cfg, backend="faster-whisper", model=cfg.second_model, second_model=""),
        languages=cfg.second_languages,
    )
