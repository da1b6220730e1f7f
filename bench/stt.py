"""STT benchmark: model load, memory, latency of 1 s and 3 s turns per encoder window, the second
listen's model (load, memory, latency), WER, guards.

``BENCH_ONLY=stt .venv/bin/python -m bench`` (``BENCH_QUICK=1`` for a smoke run). Audio: the
synthesized telephone-band clips in ``tests/data/audio`` (see its README), with the practice's
domain prompt. Latency runs are sequential on an otherwise shared 2-core machine, so treat p95 as
an upper bound.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import LoggingConfig, PracticeConfig, SttConfig, VadConfig
from agent.core.g711 import ulaw_decode
from agent.core.resample import float_to_pcm16
from agent.engines.stt import CTranslate2Whisper, FasterWhisperTranscriber, normalise, stt_prompt
from agent.engines.vad import WebRtcVad, build_vad
from agent.log import configure_logging

AUDIO = Path(__file__).resolve().parent.parent / "tests" / "data" / "audio"

# Spellings that are the same words for a caller: scored as equal.
_CANON = {
    "dr": "doctor",
    "3": "three",
    "i'm": "i am",
    "thanks": "thank you",
    "4th": "fourth",
}


def _words(text: str) -> list[str]:
    return " ".join(_CANON.get(w, w) for w in normalise(text).split()).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length)."""
    ref, hyp = _words(reference), _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)], len(ref)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _clip(name: str) -> bytes:
    return ulaw_decode((AUDIO / name).read_bytes()).astype("<i2").tobytes()


def _fit(pcm: bytes, seconds: float) -> bytes:
    """Pad with silence (or cut) to exactly ``seconds``: a segmenter's utterance of that length."""
    n = int(seconds * 8000) * 2
    return pcm[:n] + bytes(max(0, n - len(pcm)))


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def run(quick: bool) -> dict[str, Any]:
    # The report is JSON on stdout; log lines (model loaded) go to stderr.
    configure_logging(LoggingConfig(level="warning"), stream=sys.stderr)
    cfg = SttConfig()
    practice = PracticeConfig()
    # The prompt a call gives Whisper (one sentence of the practice's context, ~90 tokens).
    prompt = stt_prompt(practice.name, [p.name for p in practice.providers])
    rss_before = _rss_mb()
    model = CTranslate2Whisper(cfg)
    stt = FasterWhisperTranscriber(cfg, decoder=model)
    result: dict[str, Any] = {
        "model": str(model.model_path),
        "load_s": round(model.load_s, 2),
        "model_rss_mb": round(_rss_mb() - rss_before, 1),
        "prompt_chars": len(prompt),
    }
    stt.transcribe(_fit(_clip("piper_yes.ulaw"), 1.0), prompt=prompt, window="full")  # warm-up

    repeats = 2 if quick else 10
    # A 1 s and a 3 s turn, each as a short answer (the dialog asked yes/no: greedy, short window)
    # and as an open sentence (n-best for triage, open window). ``auto`` is what a call gets;
    # the forced windows show what each costs.
    turns = {
        "1s_answer": (_fit(_clip("piper_yes.ulaw"), 1.0), True),
        "1s_open": (_fit(_clip("piper_yes.ulaw"), 1.0), False),
        "3s_answer": (_fit(_clip("piper_refill.ulaw"), 3.0), True),
        "3s_open": (_fit(_clip("piper_refill.ulaw"), 3.0), False),
    }
    latency: dict[str, Any] = {}
    for label, (pcm, short_answer) in turns.items():
        for window in ("auto", "short", "open", "full"):
            times = []
            for _ in range(repeats):
                t = stt.transcribe(pcm, prompt=prompt, short_answer=short_answer, window=window)
                times.append(t.elapsed_s * 1000)
            latency[f"{label}_{window}"] = {
                "p50_ms": round(statistics.median(times)),
                "p95_ms": round(_percentile(times, 95)),
            }
    result["latency"] = latency
    result["latency_note"] = (
        "auto: the window a call uses (short for answers, open for sentences, full when a "
        "shortened window's result looks wrong); open sentences keep "
        f"{cfg.alternatives} hypotheses for triage; open window {cfg.open_window_s:g} s"
    )

    result["second_listen"] = _second_listen(cfg, prompt, turns, latency, repeats)

    clips = json.loads((AUDIO / "clips.json").read_text())
    if quick:
        clips = clips[:3]
    wer: dict[str, Any] = {}
    fallbacks = 0
    for window in ("full", "open", "short", "auto"):
        per_voice: dict[str, list[int]] = {}
        misses: list[str] = []
        for c in clips:
            short_answer = len(c["text"].split()) <= 3
            t = stt.transcribe(
                _clip(c["file"]), prompt=prompt, short_answer=short_answer, window=window
            )
            errors, n = word_errors(c["text"], t.text)
            acc = per_voice.setdefault(c["voice"], [0, 0])
            acc[0] += errors
            acc[1] += n
            if errors:
                misses.append(c["file"])
            if window == "auto" and t.window == "full":
                fallbacks += 1
        wer[window] = {
            voice: round(e / n, 3) for voice, (e, n) in sorted(per_voice.items()) if n
        } | {"clips_with_errors": misses}
    wer["auto_full_window_passes"] = fallbacks
    result["wer"] = wer

    result["wer"]["note"] = (
        "numbers are scored literally ('555-212-34' vs 'five five five...'), which inflates all "
        "windows alike; 'auto' applies the configured policy (short window for answers of "
        "<= 3 words, which stand in for the dialog's short_answer turns, open window for the "
        "rest). The dev-set figures (WER, intent, emergency recall per window) come from "
        "'medagent eval --audio'"
    )

    # Guards: line noise with the voice pre-check bypassed, so the model-level guards are measured.
    class _AlwaysSpeech:
        def is_speech(self, frame_pcm16_8k: bytes) -> bool:
            return True

    bare = FasterWhisperTranscriber(cfg, vad=_AlwaysSpeech(), decoder=model)
    rng = np.random.default_rng(5)
    noises = {
        "silence": np.zeros(16000),
        "white_-45dBFS": rng.standard_normal(16000) * 10 ** (-45 / 20),
        "hum_60Hz": 0.03 * np.sin(2 * np.pi * 60 * np.arange(16000) / 8000),
    }
    words_out = {}
    for name, x in noises.items():
        pcm = float_to_pcm16(x).astype("<i2").tobytes()
        t = bare.transcribe(pcm, prompt=prompt)
        words_out[name] = {"words": len(t.words), "rejected": t.rejected}
    result["noise_without_precheck"] = words_out

    # VAD cost a 20 ms frame: webrtcvad alone and behind the noise gate (per call, per frame).
    frame = _clip("piper_refill.ulaw")[16000:16320]
    for name, vad in (("webrtc", WebRtcVad(2)), ("gated", build_vad(VadConfig()))):
        n = 2000 if quick else 20000
        started = time.perf_counter()
        for _ in range(n):
            vad.is_speech(frame)
        result[f"vad_{name}_us_per_frame"] = round((time.perf_counter() - started) / n * 1e6, 1)
    return result


def _second_listen(
    cfg: SttConfig,
    prompt: str,
    turns: dict[str, tuple[bytes, bool]],
    first: dict[str, Any],
    repeats: int,
) -> dict[str, Any]:
    """The second model (``stt.second_model``), which hears symptom and unsure turns again:
    its load, memory and latency on the open turns, and the recogniser time of such a turn."""
    if not cfg.second_model:
        return {"off": True}
    rss_before = _rss_mb()
    model = CTranslate2Whisper(
        dataclasses.replace(cfg, model=cfg.second_model), languages=cfg.second_languages
    )
    stt = FasterWhisperTranscriber(cfg, decoder=model)
    out: dict[str, Any] = {
        "model": cfg.second_model,
        "languages": cfg.second_languages,
        "load_s": round(model.load_s, 2),
        "model_rss_mb": round(_rss_mb() - rss_before, 1),
    }
    stt.transcribe(turns["1s_open"][0], prompt=prompt)  # warm-up
    for label in ("1s_open", "3s_open"):
        times = []
        for _ in range(repeats):
            times.append(stt.transcribe(turns[label][0], prompt=prompt).elapsed_s * 1000)
        p50 = round(statistics.median(times))
        out[label] = {
            "p50_ms": p50,
            "p95_ms": round(_percentile(times, 95)),
            # A turn heard twice: the first pass (a call's "auto") then this one.
            "turn_heard_twice_p50_ms": first[f"{label}_auto"]["p50_ms"] + p50,
        }
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick=False), indent=2))
