"""When Whisper's words are not to be believed.

Whisper, given silence, line noise or a click, readily writes "Thank you." or "you"; given speech it
cannot make out, it copies its prompt or goes round in a loop. A transcript is dropped
(``Transcript.rejected`` says why, ``text`` is empty) when:

* the audio has less than ``min_voiced_ms`` of voice per the gated VAD: Whisper is not even run
  (the voice gate in ``backends``);
* the text copies the prompt's opening words (``echoes_prompt``: unintelligible audio);
* Whisper's own no-speech rule holds (``no_speech_prob`` above threshold and ``avg_logprob`` below);
* the text is a loop (zlib compression ratio above threshold, or a repeated phrase);
* it is one of Whisper's stock phrases for non-speech while the evidence for speech is weak.

On the shortened encoder windows the decoder also tends to repeat the utterance: ``cut_loop`` and
``said_twice`` keep the first copy, and ``looks_wrong`` sends a doubtful result to the full window.
A rejection that means "speech was there, this model could not make it out" (``unclear``) is what
lets a larger model hear the turn again.
"""

from __future__ import annotations

from agent.config import SttConfig
from agent.engines.stt.transcript import Hypothesis, Transcript, normalise

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

_MIN_AVG_LOGPROB = -2.0
"""Below any speech Whisper is merely unsure of: what scores lower is a tone or hiss that slipped
past the other rules."""

_NUMBER_WORDS = frozenset(
    "zero oh one two three four five six seven eight nine ten eleven twelve hundred".split()
)

_ECHO_WORDS = 4
"""A hypothesis holding the prompt's first words this many in a row is a copy of the prompt."""


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
