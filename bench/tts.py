"""Speech-out timings: per-prompt synthesis for espeak-ng (in-process and the command) and Piper, the
start-up pre-render of the static prompts (cold, and reloaded from the disk cache), test-caller
synthesis per voice, and the real-time factor (synthesis time / audio time; below 1 is faster than
speech).

    BENCH_ONLY=tts .venv/bin/python -m bench          # full
    BENCH_ONLY=tts BENCH_QUICK=1 .venv/bin/python -m bench
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from typing import Any

from agent.config import PracticeConfig, TtsConfig
from agent.engines.tts import EspeakTts, PiperTts, TtsEngine
from agent.errors import EngineError
from agent.pbxsim.callers import available_voices, synthesize_caller
from agent.runtime.prompt_cache import PromptCache, static_prompts

PROMPTS = [
    "Your appointment with Doctor Patel is on Tuesday at ten forty.",  # 10 words
    "I'm sorry, I didn't catch that. Could you say it again?",
    "Please hold while I connect you with the nurse line.",
    "Can you tell me your date of birth, please?",
    "Our office is open Monday to Thursday from eight to five.",
]


def _time_engine(engine: TtsEngine, texts: list[str], repeats: int) -> dict[str, Any]:
    engine.synthesize(texts[0])  # warm-up: first-use costs are start-up, not per-prompt
    times: list[float] = []
    audio = 0.0
    for _ in range(repeats):
        for text in texts:
            started = time.perf_counter()
            ulaw = engine.synthesize(text)
            times.append(time.perf_counter() - started)
            audio += len(ulaw) / 8000
    return {
        "prompts": len(times),
        "per_prompt_ms_median": round(statistics.median(times) * 1000, 1),
        "per_prompt_ms_max": round(max(times) * 1000, 1),
        "audio_s_per_prompt": round(audio / len(times), 2),
        "rtf": round(sum(times) / audio, 4),
    }


def _prerender(engine: TtsEngine, cfg: TtsConfig) -> dict[str, Any]:
    prompts = static_prompts(PracticeConfig())
    with tempfile.TemporaryDirectory(prefix="bench-prompts-") as tmp:
        cold = PromptCache(engine, prompts, cfg, cache_dir=tmp).prerender()
        warm = PromptCache(engine, prompts, cfg, cache_dir=tmp).prerender()
    started = time.perf_counter()
    PromptCache(engine, prompts, cfg, cache_dir="").prerender()
    return {
        "static_prompts": len(prompts),
        "audio_s": round(cold.audio_seconds, 1),
        "cold_s": round(cold.seconds, 3),
        "from_disk_s": round(warm.seconds, 4),
        "memory_only_s": round(time.perf_counter() - started, 3),
    }


def run(quick: bool) -> dict[str, Any]:
    repeats = 1 if quick else 5
    cfg = TtsConfig()
    result: dict[str, Any] = {}

    started = time.perf_counter()
    espeak = EspeakTts(cfg)
    result["espeak_init_s"] = round(time.perf_counter() - started, 3)
    result["espeak_in_process"] = _time_engine(espeak, PROMPTS, repeats)
    result["espeak_cli"] = _time_engine(EspeakTts(cfg, in_process=False), PROMPTS, repeats)
    result["prerender_espeak"] = _prerender(espeak, cfg)

    try:
        started = time.perf_counter()
        piper = PiperTts(dataclasses.replace(cfg, backend="piper"))
        result["piper_load_s"] = round(time.perf_counter() - started, 2)
        result["piper"] = _time_engine(piper, PROMPTS[:2] if quick else PROMPTS, 1 if quick else 2)
        if not quick:
            result["prerender_piper"] = _prerender(piper, cfg)
    except EngineError as exc:
        result["piper"] = {"skipped": str(exc)}

    callers: dict[str, float] = {}
    for voice in available_voices():
        synthesize_caller(PROMPTS[0], voice, noise_db=-45, seed=0)  # loads the voice
        started = time.perf_counter()
        for _ in range(repeats):
            synthesize_caller(PROMPTS[0], voice, noise_db=-45, seed=0)
        callers[voice] = round((time.perf_counter() - started) / repeats * 1000, 1)
    result["caller_ms_per_sentence"] = callers
    return result
