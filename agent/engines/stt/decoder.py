"""One Whisper pass over one encoder window: the CTranslate2 model behind ``WhisperDecoder``, and
the token budgets that bound each pass.

Whisper's encoder is trained on 30 s windows, so a one-second "yes" is padded to thirty seconds
and costs as much to encode as a long sentence. CTranslate2 accepts a shorter window, and because
attention grows faster than the window, the cost falls faster than the length. Hence three
windows:

* ``short`` (yes/no, a digit): the utterance plus ``short_window_pad_s`` of silence, greedy, the
  decoder bounded by the voiced time;
* ``open`` (everything else): Whisper's full window cut short to ``open_window_s`` (or to the
  utterance plus ``short_window_pad_s`` when that is longer), with the n-best list: most of the
  time saved for a little accuracy (``stt.open_window_s``; figures in ``bench/stt-notes.md``);
* ``full``: Whisper's 30 s window, as faster-whisper builds it.

Which window a turn gets, and when a result is redone on the full one, is the transcriber's
policy (``backends.FasterWhisperTranscriber``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from agent.config import SttConfig
from agent.core.resample import WHISPER_RATE
from agent.engines.stt.guards import cut_loop, said_twice
from agent.engines.stt.models import resolve_model_path, whisper_languages
from agent.engines.stt.transcript import EncoderWindow, Hypothesis
from agent.errors import EngineError
from agent.log import get_logger

log = get_logger(__name__)

# Whisper's own limits: the prompt may take half the 448-token context, minus the marker token.
PROMPT_MAX_TOKENS = 223
_CONTEXT_TOKENS = 448
FULL_WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames
FULL_WINDOW_S = FULL_WINDOW_FRAMES / 100


def max_new_tokens(duration_s: float, *, short_answer: bool) -> int:
    """Decoder budget for the full window, from the audio's length: fast talkers reach about 4
    words (6 tokens) a second; the margin covers punctuation and numbers."""
    if short_answer:
        return 12 + int(4 * duration_s)
    return min(PROMPT_MAX_TOKENS, 16 + int(8 * duration_s))


def short_window_budget(voiced_ms: int) -> int:
    """Decoder budget for the short window, from the *voiced* time: tight, because a short window
    invites the decoder to repeat itself and every extra token costs decoder time. Running out is
    not an error: ``looks_wrong`` sends the utterance to the full window."""
    return min(PROMPT_MAX_TOKENS, 8 + int(8 * voiced_ms / 1000))


def generation_max_length(prompt_tokens: int, budget: int) -> int:
    """CTranslate2's ``max_length`` that lets the decoder write ``budget`` tokens after a prompt.

    CTranslate2 caps a Whisper generation at ``min(max_length // 2, max_length - start_step)``
    new tokens (``start_step``: the prompt less its last token), following Whisper's own "half the
    context" rule. ``len(prompt) + budget`` is enough after a long prompt, but after the bare
    start sequence (another language, where the practice's prompt is left out) it halved the
    budget: Spanish turns were cut short and the cut went unseen as hitting the limit.
    """
    return min(_CONTEXT_TOKENS, max(2 * budget, prompt_tokens - 1 + budget))


class WhisperDecoder(Protocol):
    """One Whisper pass over 16 kHz float audio. The seam between the policy (windows, fallback,
    guards: ``FasterWhisperTranscriber``) and the model (``CTranslate2Whisper``); tests script it.
    ``n_best`` > 1 fills ``Hypothesis.alternatives``."""

    def decode(
        self,
        audio: npt.NDArray[np.float32],
        *,
        window: EncoderWindow,
        prompt: str | None,
        max_tokens: int,
        n_best: int = 1,
    ) -> Hypothesis: ...


class CTranslate2Whisper:
    """A loaded CTranslate2 Whisper model; ``decode`` is safe from ``cfg.workers`` threads at once."""

    def __init__(self, cfg: SttConfig, *, languages: Sequence[str] = ()) -> None:
        """``languages``: with a multilingual model, each pass detects which of these is spoken
        (and ``cfg.language``) and decodes in it; empty, or an English-only model: always
        ``cfg.language``."""
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens
        except ImportError as exc:  # pragma: no cover - a main dependency
            raise EngineError(f"faster-whisper is not installed: {exc}") from exc
        self.cfg = cfg
        self.model_path = resolve_model_path(cfg)
        started = time.perf_counter()
        try:
            self._model = WhisperModel(
                str(self.model_path),
                device="cpu",
                compute_type=cfg.compute_type,
                cpu_threads=cfg.cpu_threads,
                num_workers=max(1, cfg.workers),
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(f"cannot load Whisper model from {self.model_path}: {exc}") from exc
        self.load_s = time.perf_counter() - started
        multilingual = bool(self._model.model.is_multilingual)
        wanted = [cfg.language, *(lang for lang in languages if lang != cfg.language)]
        if len(wanted) > 1 and not multilingual:
            log.warning(
                "stt_languages_ignored",
                model=str(self.model_path),
                reason="the model is English-only",
            )
            wanted = wanted[:1]
        unknown = [lang for lang in wanted if multilingual and lang not in whisper_languages()]
        if unknown:
            raise EngineError(f"{', '.join(map(repr, unknown))}: not a Whisper language code")
        self._tokenizers = {
            lang: Tokenizer(
                self._model.hf_tokenizer, multilingual, task="transcribe", language=lang
            )
            for lang in wanted
        }
        self._suppress = list(get_suppressed_tokens(self._tokenizers[cfg.language], [-1]))
        log.info("stt_model_loaded", model=str(self.model_path), load_s=round(self.load_s, 2))

    def decode(
        self,
        audio: npt.NDArray[np.float32],
        *,
        window: EncoderWindow,
        prompt: str | None,
        max_tokens: int,
        n_best: int = 1,
    ) -> Hypothesis:
        if window == "full":
            features = self._full_window(audio)
        elif window == "open":
            features = self._full_window(audio, at_least_s=self.cfg.open_window_s)
        else:
            features = self._short_window(audio)
        return self._generate(features, prompt, max_tokens, n_best)

    def _prompt_tokens(self, prompt: str | None, language: str) -> list[int]:
        tok = self._tokenizers[language]
        if language != self.cfg.language:
            # The practice's prompt is one sentence in the practice's language: in another
            # language it pulls the decoder towards translating.
            prompt = None
        tokens: list[int] = []
        if prompt and prompt.strip():
            vocab = tok.encode(" " + prompt.strip())[-PROMPT_MAX_TOKENS:]
            tokens = [tok.sot_prev, *vocab]
        return [*tokens, *tok.sot_sequence, tok.no_timestamps]

    def _full_window(
        self, audio: npt.NDArray[np.float32], *, at_least_s: float = FULL_WINDOW_S
    ) -> npt.NDArray[np.float32]:
        """Log-mel features padded with zeros to 30 s, exactly as faster-whisper does; with
        ``at_least_s`` below 30, the same window cut short: to that many seconds, or to the
        utterance plus ``short_window_pad_s`` when that is longer.

        The open window is cut from this one rather than built like the short one (digital
        silence added to the audio) because, on utterances as the segmenter cuts them (line
        noise before the speech), the short window's construction loses rare words (names, drug
        names) from the whole n-best list that this one keeps, and this one is a little faster.
        """
        features = self._model.feature_extractor(audio)[:, :-1][:, :FULL_WINDOW_FRAMES]
        frames = FULL_WINDOW_FRAMES
        if at_least_s < FULL_WINDOW_S:
            pad = int(100 * self.cfg.short_window_pad_s)
            frames = min(frames, max(int(100 * at_least_s), features.shape[1] + pad))
        window = np.zeros((features.shape[0], frames), dtype=np.float32)
        window[:, : features.shape[1]] = features
        return window

    def _short_window(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Features of the utterance followed by ``short_window_pad_s`` of digital silence.

        The silence is added to the *audio*, so the padding has the log-mel floor Whisper saw
        after speech in training; features padded with zeros instead (what the 30 s window does)
        make the decoder stop mid-word on a short window.
        """
        pad = np.zeros(int(self.cfg.short_window_pad_s * WHISPER_RATE), dtype=np.float32)
        features = self._model.feature_extractor(np.concatenate([audio, pad]))[:, :-1]
        return np.ascontiguousarray(features[:, :FULL_WINDOW_FRAMES], dtype=np.float32)

    def _language(self, encoded: Any) -> str:
        """Which of the configured languages is spoken (``cfg.language`` when only one)."""
        if len(self._tokenizers) == 1:
            return self.cfg.language
        ranked: list[tuple[str, float]] = self._model.model.detect_language(encoded)[0]
        for token, _prob in ranked:  # best first
            lang = token.strip("<|>")
            if lang in self._tokenizers:
                return lang
        return self.cfg.language

    def _generate(
        self, window: npt.NDArray[np.float32], prompt_text: str | None, budget: int, n_best: int
    ) -> Hypothesis:
        from faster_whisper.transcribe import get_ctranslate2_storage

        short = window.shape[1] < FULL_WINDOW_FRAMES
        n_best = max(1, n_best)
        encoded = self._model.model.encode(get_ctranslate2_storage(window[None]), to_cpu=False)
        language = self._language(encoded)
        tokenizer = self._tokenizers[language]
        prompt = self._prompt_tokens(prompt_text, language)
        result: Any = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=max(self.cfg.beam_size, n_best),
            num_hypotheses=n_best,
            max_length=generation_max_length(len(prompt), budget),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        tokens: list[int] = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        # CTranslate2 reports the sum of log-probs normalised by length; recover Whisper's average
        # over the tokens plus the end-of-text token, as faster-whisper does.
        avg_logprob = float(result.scores[0]) * len(tokens) / (len(tokens) + 1)
        text = tokenizer.decode(tokens)
        looped = False
        at_limit = len(result.sequences_ids[0]) >= budget
        others = tuple(
            tokenizer.decode([t for t in seq if t < tokenizer.eot])
            for seq in result.sequences_ids[1:]
        )
        if short:
            # Short windows make the decoder say the utterance again; the first copy is the
            # transcript (usually what the full window hears). The other hypotheses loop too
            # ("Mary Jones Mary Jones Mary Jones"), and a name said four times is no name to
            # the dialog.
            text, looped = cut_loop(text, at_limit=at_limit)
            text, twice = said_twice(text)
            looped = looped or twice
            others = tuple(said_twice(cut_loop(o)[0])[0] for o in others)
        return Hypothesis(
            text=text,
            looped=looped,
            avg_logprob=avg_logprob,
            no_speech_prob=float(result.no_speech_prob),
            hit_length_limit=at_limit,
            alternatives=others,
            language=language,
        )
