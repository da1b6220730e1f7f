"""Prompt intelligibility: how much of what the agent says survives the phone line, per voice.

Every static prompt (``static_prompts``: the dialog's ``STATIC`` and the practice greeting) and a
few representative dynamic ones (offered times, a refill read-back, a call-back number, the
emergency instruction) are synthesized by the default voice (``build_tts(TtsConfig())``, Piper) and
by espeak-ng for comparison, sent down the modelled phone line (``agent.engines.phone_line``: 8 kHz,
300-3400 Hz, a speaking level, seeded hiss, μ-law) and transcribed by the project's default
recogniser. The word error rate stands in for a caller's ear: what Whisper cannot make out, an
elderly caller on a poor line may not either.

    BENCH_ONLY=prompt_wer .venv/bin/python -m bench          # full: a quiet and a noisy line
    BENCH_ONLY=prompt_wer BENCH_QUICK=1 .venv/bin/python -m bench

Scoring: texts are normalised as ``bench/stt.py`` does (``normalise`` and its spelling table), and
numbers are compared as digits on both sides, so "dial 9 1 1" heard as "dial 911" and "ten forty" as
"10:40" are not errors: the caller heard the number. The recogniser gets no initial prompt, so the
practice's vocabulary does not help it guess words a listener would have to hear.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from datetime import datetime
from typing import Any

from agent.config import LoggingConfig, PracticeConfig, SttConfig, TtsConfig
from agent.core.dialog import prompts
from agent.core.dialog.commands import Slot
from agent.core.dialog.slots import ordinal, spoken_slot
from agent.core.g711 import ulaw_decode
from agent.core.resample import TELEPHONE_RATE, float_to_ulaw
from agent.engines.phone_line import telephone_channel
from agent.engines.stt import CTranslate2Whisper, FasterWhisperTranscriber, normalise
from agent.engines.tts import EspeakTts, TtsEngine, build_tts, speakable
from agent.log import configure_logging
from agent.runtime.prompt_cache import static_prompts
from bench.stt import word_errors

TARGET_WER = 0.10
"""The default voice must stay below this on the quiet line (issue "Patients' experience")."""

# Line hiss relative to the speech at -20 dBFS: 30 dB is a quiet landline, 15 dB a poor mobile call.
LINES = {"quiet_line": 30.0, "noisy_line": 15.0}


def _slot(day: int, hour: int, minute: int, provider: str) -> Slot:
    return Slot(f"s{day}", "p1", provider, datetime(2026, 3, day, hour, minute))


def prompt_texts() -> dict[str, str]:
    """Key → text: what a caller hears, static prompts first."""
    offered = [
        spoken_slot(_slot(3, 10, 40, "Doctor Patel")),
        spoken_slot(_slot(4, 14, 0, "Doctor Nguyen")),
        spoken_slot(_slot(5, 8, 15, "Nurse Practitioner Gomez")),
    ]
    dynamic = {
        "dyn_offer": prompts.offer(offered),
        "dyn_offer_one": prompts.offer(offered[:1]),
        "dyn_confirm_refill": prompts.confirm_refill(
            "lisinopril", "10 milligrams", "the CVS on Main Street", "You have 3 days left."
        ),
        "dyn_confirm_callback": prompts.confirm_callback("555-212-3456"),
        "dyn_emergency_instruction": prompts.emergency_instruction("911"),
        "dyn_booked": prompts.booked(spoken_slot(_slot(10, 9, 0, "Doctor Patel"))),
    }
    return {**static_prompts(PracticeConfig()), **dynamic}


# ------------------------------------------------------------------------------------------------
# Scoring: numbers as digits on both sides

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_NUMBER = {w: str(i) for i, w in enumerate(_UNITS)}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70}
_ORDINALS = {
    w: ordinal(i)
    for i, w in enumerate(
        "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
        "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth "
        "twentieth".split()
    )
}
# Same words, other spellings. "o'clock" is dropped: "nine o'clock" is written "9:00" just as well.
_SAME = {"ok": "okay", "callback": "call back", "o'clock": "", "oclock": ""}


def scoring_text(text: str) -> str:
    """``text`` as the words scored: ``normalise``d, numbers as digit strings, "A M" as "am"."""
    text = re.sub(r"(\d):00\b", r"\1", text)  # "9:00" is "nine"
    text = normalise(text.replace("-", " "))
    text = re.sub(r"(\d) ?([ap]) ?m\b", r"\1 \2m", text)  # "10am", "10 a m", "10 am" alike
    words = re.sub(r"\b([ap]) m\b", r"\1m", text).split()  # "A M" and "a.m." alike
    out: list[str] = []
    for i, w in enumerate(words):
        w = _SAME.get(w, w)
        if w in _NUMBER:
            w = _NUMBER[w]
        elif w in _TENS:
            w = str(_TENS[w])
        elif w in _ORDINALS:
            w = _ORDINALS[w]
        elif w == "oh" and out and out[-1].isdigit():  # "nine oh five"
            w = "0"
        if not w:
            continue
        # "forty" "two" → 42; a run of digit groups ("9 1 1", "555 212 3456", "10 40") → one.
        if w.isdigit() and out and out[-1].isdigit():
            prev = out[-1]
            if prev.endswith("0") and len(w) == 1 and words[i - 1] in _TENS:
                out[-1] = str(int(prev) + int(w))
            else:
                out[-1] = prev + w
            continue
        out.append(w)
    return " ".join(out)


def wer_of(said: str, heard: str) -> tuple[int, int]:
    """(word errors, words said) after ``scoring_text`` on both sides."""
    return word_errors(scoring_text(said), scoring_text(heard))


# ------------------------------------------------------------------------------------------------
# The run


def over_the_line(ulaw: bytes, snr_db: float, seed: int) -> bytes:
    """The agent's 8 kHz μ-law prompt as the caller's end receives it: band-limited, at a speaking
    level, with hiss, μ-law again; 16-bit PCM for the recogniser."""
    received = telephone_channel(ulaw_decode(ulaw), TELEPHONE_RATE, snr_db=snr_db, seed=seed)
    return ulaw_decode(float_to_ulaw(received)).astype("<i2").tobytes()


def _score_voice(
    engine: TtsEngine,
    texts: dict[str, str],
    lines: dict[str, float],
    stt: FasterWhisperTranscriber,
) -> dict[str, Any]:
    rendered = {key: engine.synthesize(text) for key, text in texts.items()}
    result: dict[str, Any] = {"engine": engine.identity}
    for line, snr_db in lines.items():
        per_prompt = []
        for seed, (key, text) in enumerate(texts.items()):
            heard = stt.transcribe(
                over_the_line(rendered[key], snr_db, seed), prompt=None, window="full"
            ).text
            errors, n = wer_of(speakable(text), heard)
            per_prompt.append((key, errors, n, heard))
        errors = sum(e for _, e, _, _ in per_prompt)
        words = sum(n for _, _, n, _ in per_prompt)
        worst = sorted(per_prompt, key=lambda p: (-p[1] / max(p[2], 1), p[0]))[:5]
        result[line] = {
            "snr_db": snr_db,
            "wer": round(errors / words, 4),
            "prompts_with_errors": sum(1 for _, e, _, _ in per_prompt if e),
            "worst": [
                {"prompt": k, "wer": round(e / max(n, 1), 3), "said": texts[k], "heard": h}
                for k, e, n, h in worst
            ],
        }
    return result


def run(quick: bool) -> dict[str, Any]:
    configure_logging(LoggingConfig(level="warning"), stream=sys.stderr)
    texts = prompt_texts()
    lines = LINES
    if quick:  # a smoke run: a few static prompts and every dynamic one, the quiet line only
        keys = [*list(texts)[:4], *(k for k in texts if k.startswith("dyn_"))]
        texts = {k: texts[k] for k in keys}
        lines = {"quiet_line": LINES["quiet_line"]}
    # One hypothesis is enough for a WER; the n-best list the dialog keeps for triage only costs time.
    cfg = dataclasses.replace(SttConfig(), alternatives=1)
    model = CTranslate2Whisper(cfg)
    stt = FasterWhisperTranscriber(cfg, decoder=model)

    default = build_tts(TtsConfig())
    voices: dict[str, TtsEngine] = {"default": default}
    if default.backend != "espeak":
        voices["espeak"] = EspeakTts(dataclasses.replace(TtsConfig(), backend="espeak"))
    result: dict[str, Any] = {
        "recogniser": str(model.model_path),
        "prompts": len(texts),
        "static_prompts": sum(1 for k in texts if not k.startswith("dyn_")),
        "default_backend": default.backend,
        "voices": {name: _score_voice(e, texts, lines, stt) for name, e in voices.items()},
        "target": f"default voice below {TARGET_WER:.0%} WER on the quiet line",
    }
    result["meets_target"] = result["voices"]["default"]["quiet_line"]["wer"] < TARGET_WER
    return result
