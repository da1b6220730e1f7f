"""Speech to text: Whisper behind a small synchronous interface, with guards against hallucination.

``Transcriber.transcribe(pcm16_8k, prompt=..., short_answer=...) -> Transcript`` is all the rest of
the agent sees. The modules, from the bottom up:

* ``transcript``: what a pass gives back (``Transcript``; ``Hypothesis`` before the guards) and
  the ``Transcriber`` interface;
* ``guards``: when Whisper's words are not believed (silence, noise, loops, prompt echoes, stock
  phrases), and when a rejection means speech a larger model may make out (``unclear``);
* ``prompt``: Whisper's initial prompt, one sentence of the practice's context;
* ``models``: where the bundled models are (``tiny.en``, ``base`` joined from two packages);
* ``decoder``: the CTranslate2 model, its three encoder windows and the decoder's token budgets;
* ``backends``: the transcribers (faster-whisper, openai-whisper) with the voice gate they share,
  and ``build_transcriber`` / ``build_second_transcriber``, which build them from ``[stt]``;
* ``async_transcriber``: ``AsyncTranscriber`` moves a transcriber off the event loop.

The second listen (``build_second_transcriber``) is Whisper ``base`` with the same windows and
guards, detecting per pass which of ``stt.second_languages`` is spoken. A call hears a turn again
with it only when the turn is about the caller's health, or the intent model is unsure, and no
emergency was heard, or when the first model could not make the speech out (``unclear``; see
``agent.core.understanding.worth_a_second_listen``). It keeps the n-best list: greedy decoding
would be faster but misses emergencies that the n-best list lets triage catch. In a call it runs
inside the speculative pass, so its time is mostly hidden in the end-of-turn silence.
Measurements behind these choices: ``bench/stt-notes.md``.
"""

from agent.engines.stt.async_transcriber import AsyncTranscriber
from agent.engines.stt.backends import (
    FasterWhisperTranscriber,
    OpenAIWhisperTranscriber,
    build_second_transcriber,
    build_transcriber,
    voiced_ms,
)
from agent.engines.stt.decoder import (
    PROMPT_MAX_TOKENS,
    CTranslate2Whisper,
    WhisperDecoder,
    generation_max_length,
    max_new_tokens,
    short_window_budget,
)
from agent.engines.stt.guards import (
    HALLUCINATIONS,
    UNCLEAR_REJECTIONS,
    cut_loop,
    echoes_prompt,
    looks_wrong,
    rejection,
    repeats_phrase,
    said_twice,
    unclear,
)
from agent.engines.stt.models import base_model_dir, resolve_model_path, whisper_languages
from agent.engines.stt.prompt import COMMON_MEDICATIONS, SYMPTOM_WORDS, stt_prompt
from agent.engines.stt.transcript import (
    EncoderWindow,
    Hypothesis,
    Transcriber,
    Transcript,
    Window,
    compression_ratio,
    normalise,
)

__all__ = [
    "COMMON_MEDICATIONS",
    "HALLUCINATIONS",
    "PROMPT_MAX_TOKENS",
    "SYMPTOM_WORDS",
    "UNCLEAR_REJECTIONS",
    "AsyncTranscriber",
    "CTranslate2Whisper",
    "EncoderWindow",
    "FasterWhisperTranscriber",
    "Hypothesis",
    "OpenAIWhisperTranscriber",
    "Transcriber",
    "Transcript",
    "WhisperDecoder",
    "Window",
    "base_model_dir",
    "build_second_transcriber",
    "build_transcriber",
    "compression_ratio",
    "cut_loop",
    "echoes_prompt",
    "generation_max_length",
    "looks_wrong",
    "max_new_tokens",
    "normalise",
    "rejection",
    "repeats_phrase",
    "resolve_model_path",
    "said_twice",
    "short_window_budget",
    "stt_prompt",
    "unclear",
    "voiced_ms",
    "whisper_languages",
]
