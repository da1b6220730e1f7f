"""How well we understand callers, measured on a labelled development set (``medagent eval``).

Text mode runs the ``Understander`` over every utterance of ``tests/data/nlu/dev.jsonl`` and reports
intent accuracy (with a confusion matrix), recall per urgency, routine over-triage (routine calls we
would escalate), red-flag recall and accuracy per language and per note (``asr``, ``elderly``…).
``--audio`` first turns each English utterance into a phone call in several voices (the stand-in's
test callers, which the command hands in) and transcribes it with the STT engine, reporting WER
and the same measures per voice. A target of ``TARGETS`` missed fails ``medagent eval --strict``.

The scoring (``score``) is pure: labelled items and results in, a ``Report`` out.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import Config, VadConfig, segmenter_settings
from agent.core.understanding import INTENTS, URGENCIES, Understanding
from agent.engines.nlu.classifier import normalize

DEV_SET = Path(__file__).resolve().parents[3] / "tests" / "data" / "nlu" / "dev.jsonl"
BLIND_SET = Path(__file__).resolve().parents[3] / "tests" / "data" / "triage_blind" / "lines.jsonl"
"""Written by someone who saw only the protocol list and the labelling rules: never tuned on."""
BLIND_CALLS = BLIND_SET.with_name("calls.jsonl")


def load_calls(path: str | Path = BLIND_CALLS) -> list[dict[str, Any]]:
    """Multi-turn calls: ``lines``, ``danger_line`` (index, or null), ``urgency``."""
    calls = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            raw = json.loads(line)
            if not isinstance(raw.get("lines"), list) or raw.get("urgency") not in URGENCIES:
                raise ValueError(f"{path}:{number}: expected lines and urgency")
            calls.append(raw)
    return calls


DEFAULT_VOICES = ("joe", "us-male", "us-female")
"""Natural Piper voice and two espeak-ng voices (``agent.pbxsim.callers.VOICES``)."""

TARGETS: dict[str, tuple[str, float]] = {
    "intent_accuracy": (">=", 0.95),
    "emergency_recall": (">=", 1.0),
    "urgent_recall": (">=", 0.95),
    "routine_over_triage": ("<=", 0.05),
}
"""The release bar for text input (see tests/integration/test_nlu_model.py)."""

_RANK = {"routine": 0, "urgent": 1, "emergency": 2}
_FIELDS = ("text", "intent", "urgency", "lang")


@dataclass(frozen=True)
class DevItem:
    text: str
    intent: str
    urgency: str
    red_flags: tuple[str, ...]
    lang: str
    notes: tuple[str, ...] = ()
    protocol: str | None = None
    """The protocol the problem belongs to (``none``: not a health problem); ``None``: not labelled."""
    disposition: str | None = None


def parse_item(line: str, *, where: str = "<line>") -> DevItem:
    """One JSON line of a labelled set. Raises ``ValueError`` naming the line and the field."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object")
    missing = [f for f in _FIELDS if f not in raw]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    if raw["intent"] not in INTENTS:
        raise ValueError(f"{where}: unknown intent {raw['intent']!r}")
    if raw["urgency"] not in URGENCIES:
        raise ValueError(f"{where}: unknown urgency {raw['urgency']!r}")
    if raw["lang"] not in ("en", "es"):
        raise ValueError(f"{where}: unknown lang {raw['lang']!r}; expected en or es")
    if "red_flags" not in raw and "protocol" not in raw:
        raise ValueError(f"{where}: missing field(s) red_flags (or protocol)")
    red_flags = raw.get("red_flags", [])
    if not isinstance(red_flags, list):
        raise ValueError(f"{where}: red_flags must be a list of rule ids")
    if red_flags and raw["urgency"] == "routine":
        raise ValueError(f"{where}: red flags {red_flags} on a routine item")
    protocol = raw.get("protocol")
    if protocol is not None and not isinstance(protocol, str):
        raise ValueError(f"{where}: protocol must be a protocol id or 'none'")
    return DevItem(
        text=str(raw["text"]),
        intent=raw["intent"],
        urgency=raw["urgency"],
        red_flags=tuple(red_flags),
        lang=raw["lang"],
        notes=tuple(raw.get("notes", ())),
        protocol=protocol,
        disposition=raw.get("disposition"),
    )


def load_set(path: str | Path = DEV_SET) -> list[DevItem]:
    items = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                items.append(parse_item(line, where=f"{path}:{number}"))
    return items


@dataclass
class Report:
    n: int
    intent_accuracy: float
    confusion: dict[str, dict[str, int]]
    """gold intent → predicted intent → count."""
    urgency_recall: dict[str, float]
    """Share of the items of each gold urgency we rated at least as urgent (routine: exactly)."""
    routine_over_triage: float
    red_flag_recall: float
    accuracy_by_lang: dict[str, float]
    accuracy_by_note: dict[str, float]
    misses: list[dict[str, Any]] = field(default_factory=list)
    """Items we got wrong (intent or urgency). Dev-set text only, never callers' words."""
    protocol_accuracy: float | None = None
    """Share of the items labelled with a protocol whose protocol we named (``none``: none)."""
    by_protocol: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per labelled protocol: n, topic (share named right), urgency (share rated at least as
    urgent as labelled; routine: exactly)."""
    emergency_safety_net: float = 1.0
    """Share of the emergencies that the dialog cannot file as routine business: flagged (911 or a
    clinician at once), or a symptom call (which gets the emergency screening question first), or too
    unsure to act on (the caller is asked again). Per-utterance recall may miss a misheard red
    flag; this is what the call does with the miss."""

    def metrics(self) -> dict[str, float]:
        return {
            "intent_accuracy": self.intent_accuracy,
            "emergency_recall": self.urgency_recall.get("emergency", 1.0),
            "urgent_recall": self.urgency_recall.get("urgent", 1.0),
            "routine_over_triage": self.routine_over_triage,
        }

    def failures(self, targets: dict[str, tuple[str, float]] = TARGETS) -> list[str]:
        out = []
        values = self.metrics()
        for name, (op, bound) in targets.items():
            value = values[name]
            ok = value >= bound if op == ">=" else value <= bound
            if not ok:
                out.append(f"{name} {value:.3f} (target {op} {bound})")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            **{k: round(v, 4) for k, v in self.metrics().items()},
            "urgency_recall": _rounded(self.urgency_recall),
            "red_flag_recall": round(self.red_flag_recall, 4),
            "emergency_safety_net": round(self.emergency_safety_net, 4),
            "protocol_accuracy": (
                None if self.protocol_accuracy is None else round(self.protocol_accuracy, 4)
            ),
            "by_protocol": {k: _rounded(v) for k, v in self.by_protocol.items()},
            "accuracy_by_lang": _rounded(self.accuracy_by_lang),
            "accuracy_by_note": _rounded(self.accuracy_by_note),
            "confusion": self.confusion,
            "misses": self.misses,
            "failures": self.failures(),
        }


def score(
    items: Sequence[DevItem], results: Sequence[Understanding], *, min_confidence: float = 0.5
) -> Report:
    """``min_confidence``: the dialog's ``nlu.min_confidence`` (below it a turn is asked again)."""
    if len(items) != len(results):
        raise ValueError(f"{len(items)} items but {len(results)} results")
    confusion: dict[str, dict[str, int]] = {g: dict.fromkeys(INTENTS, 0) for g in INTENTS}
    by_urgency: dict[str, list[bool]] = defaultdict(list)
    by_lang: dict[str, list[bool]] = defaultdict(list)
    by_note: dict[str, list[bool]] = defaultdict(list)
    flags_found = flags_total = 0
    misses = []
    netted: list[bool] = []
    topic_right: dict[str, list[bool]] = defaultdict(list)
    topic_urgency: dict[str, list[bool]] = defaultdict(list)
    for item, result in zip(items, results, strict=True):
        if item.urgency == "emergency":
            netted.append(
                result.urgency != "routine"
                or result.intent == "symptoms"
                or result.confidence < min_confidence
            )
        confusion[item.intent][result.intent] += 1
        right = item.intent == result.intent
        by_lang[item.lang].append(right)
        for note in item.notes:
            by_note[note].append(right)
        if item.urgency == "routine":
            urgency_ok = result.urgency == "routine"
        else:
            urgency_ok = _RANK[result.urgency] >= _RANK[item.urgency]
        by_urgency[item.urgency].append(urgency_ok)
        topic_ok = True
        if item.protocol is not None:
            topic_ok = (result.protocol or "none") == item.protocol
            topic_right[item.protocol].append(topic_ok)
            topic_urgency[item.protocol].append(urgency_ok)
        found = {f.rule_id for f in result.red_flags}
        flags_total += len(item.red_flags)
        flags_found += sum(1 for f in item.red_flags if f in found)
        if not (right and urgency_ok and topic_ok):
            miss: dict[str, Any] = {
                "text": item.text,
                "intent": [item.intent, result.intent],
                "urgency": [item.urgency, result.urgency],
                "red_flags": [list(item.red_flags), sorted(found)],
                "confidence": round(result.confidence, 3),
            }
            if item.protocol is not None:
                miss["protocol"] = [item.protocol, result.protocol or "none"]
            misses.append(miss)
    correct = sum(confusion[g][g] for g in INTENTS)
    routine = by_urgency.get("routine", [])
    return Report(
        n=len(items),
        intent_accuracy=correct / len(items) if items else 0.0,
        confusion=confusion,
        urgency_recall={u: _share(v) for u, v in by_urgency.items()},
        routine_over_triage=1.0 - _share(routine) if routine else 0.0,
        red_flag_recall=flags_found / flags_total if flags_total else 1.0,
        accuracy_by_lang={k: _share(v) for k, v in sorted(by_lang.items())},
        accuracy_by_note={k: _share(v) for k, v in sorted(by_note.items())},
        misses=misses,
        protocol_accuracy=(
            _share(v for vs in topic_right.values() for v in vs) if topic_right else None
        ),
        by_protocol={
            pid: {
                "n": float(len(topic_right[pid])),
                "topic": _share(topic_right[pid]),
                "urgency": _share(topic_urgency[pid]),
            }
            for pid in sorted(topic_right)
        },
        emergency_safety_net=_share(netted) if netted else 1.0,
    )


def spread(items: Sequence[DevItem], n: int) -> list[DevItem]:
    """``n`` items evenly spaced through ``items`` (the set is grouped by intent, so its first
    ``n`` would all be one intent)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def word_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words) after the classifier's normalisation, so punctuation, case and
    fillers are not counted as errors."""
    ref = normalize(reference).split()
    hyp = normalize(hypothesis).split()
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1], len(ref)


def _share(values: Iterable[bool]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in d.items()}


# --------------------------------------------------------------------------------------------------
# Printing


def format_report(report: Report, *, title: str = "text") -> str:
    lines = [f"== {title}: {report.n} utterances"]
    for name, value in report.metrics().items():
        op, bound = TARGETS[name]
        mark = "ok" if (value >= bound if op == ">=" else value <= bound) else "MISSED"
        lines.append(f"{name:<22} {value:7.3f}   target {op} {bound:<5} {mark}")
    lines.append(f"{'red_flag_recall':<22} {report.red_flag_recall:7.3f}")
    lines.append(f"{'emergency_safety_net':<22} {report.emergency_safety_net:7.3f}")
    for u, v in report.urgency_recall.items():
        lines.append(f"recall[{u}]{'':<{13 - len(u)}} {v:7.3f}")
    for k, v in report.accuracy_by_lang.items():
        lines.append(f"accuracy[lang={k}]{'':<{7 - len(k)}} {v:7.3f}")
    for k, v in report.accuracy_by_note.items():
        lines.append(f"accuracy[{k}]{'':<{12 - len(k)}} {v:7.3f}")
    if report.protocol_accuracy is not None:
        lines.append(f"{'protocol_accuracy':<22} {report.protocol_accuracy:7.3f}")
        lines.append("per protocol (n, topic named, urgency at least as labelled), worst first:")
        worst = sorted(
            report.by_protocol.items(), key=lambda kv: (kv[1]["urgency"], kv[1]["topic"])
        )
        for pid, per in worst:
            lines.append(
                f"  {pid:<22} {int(per['n']):>3} {per['topic']:6.2f} {per['urgency']:6.2f}"
            )
    short = {i: i[:6] for i in INTENTS}
    lines.append("confusion (rows: labelled, columns: predicted)")
    lines.append(" " * 15 + " ".join(f"{short[i]:>6}" for i in INTENTS))
    for gold in INTENTS:
        row = report.confusion[gold]
        lines.append(f"{gold:<15}" + " ".join(f"{row[p]:>6}" for p in INTENTS))
    return "\n".join(lines)


def audio_eval(
    cfg: Config,
    items: Sequence[DevItem],
    voices: Sequence[str],
    noise_db: float,
    *,
    synthesize: Callable[..., bytes],
    language_of: Callable[[str], str],
    hear: Callable[[bytes], Any],
    nothing: Callable[[], Understanding],
) -> dict[str, dict[str, Any]]:
    """Each voice's utterances spoken over a phone line, heard as a call hears them, scored.

    The test callers belong to the stand-in (``agent.pbxsim.callers``) and the hearing to the
    runtime (``agent.runtime.hearing.Ears``: the first listen, the understander, the second
    listen), both layers above the engines, so the command hands them in:
    ``synthesize(text, voice, noise_db=…, seed=…)`` gives 8 kHz μ-law, ``language_of(voice)`` the
    language that voice speaks, ``hear(pcm16)`` a ``Hearing`` and ``nothing()`` what a turn with
    no words is understood as.
    """
    from agent.core.g711 import ulaw_decode

    per_voice: dict[str, dict[str, Any]] = {}
    for voice in voices:
        # Each voice speaks the utterances of its own language.
        language = language_of(voice)
        spoken = [i for i in items if i.lang == language]
        edits = words = first_edits = 0
        results = []
        heard_texts = []
        stt_s = 0.0
        first_s: list[float] = []
        second_s: list[float] = []
        for seed, item in enumerate(spoken):
            # The caller's line delivers μ-law; the STT engine takes linear 16-bit samples.
            pcm = ulaw_decode(synthesize(item.text, voice, noise_db=noise_db, seed=seed)).tobytes()
            pcm = as_a_call_cuts_it(pcm, cfg.vad, seed=seed)
            hearing = hear(pcm)
            heard = hearing.heard
            stt_s += hearing.stt_s
            first_s.append(hearing.first_s)
            if hearing.second is not None:
                second_s.append(hearing.second_s)
            e, n = word_error_rate(item.text, heard)
            edits, words = edits + e, words + n
            e, _ = word_error_rate(item.text, hearing.first.text)
            first_edits += e
            heard_texts.append(heard)
            results.append(hearing.understanding or nothing())
        report = score(spoken, results, min_confidence=cfg.nlu.min_confidence)
        per_voice[voice] = {
            "n": report.n,
            # Of the words acted on (the second hearing's on turns heard twice), and of the
            # first recogniser alone.
            "wer": edits / words if words else 0.0,
            "wer_first_listen": first_edits / words if words else 0.0,
            **report.metrics(),
            "red_flag_recall": report.red_flag_recall,
            "emergency_safety_net": report.emergency_safety_net,
            "stt_s_per_utterance": stt_s / max(len(spoken), 1),
            "first_listen_p50_s": _median(first_s),
            # Turns the second model heard again (``stt.second_model``) and what that took.
            "second_listens": len(second_s),
            "second_listen_p50_s": _median(second_s),
            # Synthetic speech of dev-set sentences: no caller's words are printed.
            "misses": [
                {**miss, "heard": heard}
                for miss, heard in _misses_with_heard(report.misses, spoken, heard_texts)
            ],
        }
    return per_voice


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def as_a_call_cuts_it(pcm16: bytes, vad_cfg: VadConfig, *, seed: int = 0) -> bytes:
    """The utterance audio a call's segmenter hands to Whisper for this clip: from the speech's
    onset (less the pre-roll) to the end of its trailing silence. A second of quiet line hiss
    follows the clip so the end of the utterance is seen; utterances split by a long pause are
    joined, as the caller said them in one turn. Whole synthesized clips have the voice's own
    lead-in and tail, which the segmenter takes off: the eval hears what a call hears."""
    from agent.core.segmenter import Segmenter, UtteranceEnded
    from agent.engines.vad import build_vad

    rng = np.random.default_rng(seed)
    hiss = (rng.standard_normal(8000) * 10 ** (-45 / 20) * 32767).astype("<i2").tobytes()
    segmenter = Segmenter(segmenter_settings(vad_cfg), audio_format="pcm16")
    vad = build_vad(vad_cfg)
    data = pcm16 + hiss
    frame = 320  # 20 ms of 8 kHz 16-bit
    cut: list[bytes] = []
    for i in range(0, len(data) - frame + 1, frame):
        chunk = data[i : i + frame]
        cut += [
            e.audio
            for e in segmenter.process(chunk, vad.is_speech(chunk), 20)
            if isinstance(e, UtteranceEnded)
        ]
    cut += [e.audio for e in segmenter.flush() if isinstance(e, UtteranceEnded)]
    return b"".join(cut)


def _misses_with_heard(
    misses: list[dict[str, Any]], items: Sequence[DevItem], heard: Sequence[str]
) -> list[tuple[dict[str, Any], str]]:
    by_text = {item.text: h for item, h in zip(items, heard, strict=True)}
    return [(miss, by_text[miss["text"]]) for miss in misses]
