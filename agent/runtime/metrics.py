"""Counters and histograms of the running agent, rendered in Prometheus' text exposition format.

``Metrics`` is a plain object the runtime calls (``call_started()``, ``call_ended(outcome)``,
``transfer(status)``, ``fallback(reason)``, ``turn_latency(s)``, ``stt_time(s)``, ``rtp(stats)``);
``render()`` writes the text that ``GET /metrics`` serves. No I/O and no clock: the
``MetricsObserver`` that feeds it from a call's hooks is handed a clock.

The exposition (version 0.0.4) is written here rather than pulling in ``prometheus_client``: it is a
few lines of text, and our label values (outcomes, statuses, reasons) come from a small fixed set.
Never put patient data or free text in a label: every label value here is an identifier the code
chose, and :func:`label_value` bounds what an unexpected value can do to a scrape.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from agent.core.admission import DropReason
from agent.runtime.hooks import CallObserver

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Latency buckets (seconds) around what a caller notices: under 1 s feels live, over 3 s feels broken.
TURN_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
STT_BUCKETS_S = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)

_LABEL_SAFE = re.compile(r"[^A-Za-z0-9_:.\-]")
_MAX_LABEL_LEN = 64


def label_value(value: str) -> str:
    """A label value reduced to identifier characters and bounded in length, so that an outcome
    such as ``handed_back:capacity`` passes unchanged but nothing unexpected can bloat a series."""
    return _LABEL_SAFE.sub("_", value)[:_MAX_LABEL_LEN] or "none"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


@dataclass
class Counter:
    name: str
    help: str
    label: str | None = None
    """The one label this counter is split by (``None``: a single series)."""
    values: dict[str, float] = field(default_factory=dict)

    def inc(self, label: str = "", amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot go down (got {amount})")
        key = label_value(label) if self.label else ""
        self.values[key] = self.values.get(key, 0.0) + amount

    def value(self, label: str = "") -> float:
        return self.values.get(label_value(label) if self.label else "", 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        if self.label is None:
            yield f"{self.name} {_number(self.values.get('', 0.0))}"
            return
        for key in sorted(self.values):
            yield f'{self.name}{{{self.label}="{_escape(key)}"}} {_number(self.values[key])}'


@dataclass
class Gauge:
    name: str
    help: str
    read: Callable[[], float]
    """Read when rendered: the gauge reports the state of the thing itself, never a copy."""

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        yield f"{self.name} {_number(self.read())}"


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError(f"{self.name}: buckets must be strictly increasing")
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        if value < 0 or math.isnan(value):
            raise ValueError(f"{self.name}: expected a duration >= 0, got {value}")
        i = bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.sum += value
        self.count += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        cumulative = 0
        for upper, n in zip(self.buckets, self.counts, strict=True):
            cumulative += n
            yield f'{self.name}_bucket{{le="{_number(upper)}"}} {cumulative}'
        yield f'{self.name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{self.name}_sum {_number(self.sum)}"
        yield f"{self.name}_count {self.count}"


# RTP statistics fields we export, by the name they have on the stats objects of the media path
# (``JitterStats``, ``PacerStats``, ``MediaStats``). Anything else on those objects is ignored.
RTP_FIELDS: Mapping[str, str] = {
    "lost": "RTP packets from Asterisk never received (gaps the jitter buffer gave up on)",
    "late": "RTP packets that arrived after their playout time, or frames we sent late",
    "duplicates": "duplicate RTP packets received",
    "reordered": "RTP packets received out of order and put back in order",
    "underruns": "20 ms slots the pacer had no audio for while a prompt was playing",
    "dropped_slots": "outbound 20 ms slots dropped after a stall longer than the catch-up limit",
    "malformed": "datagrams on a media port that were not valid RTP",
    "wrong_source": "datagrams from an address other than the call's Asterisk media address",
}

RTP_DROPPED_HELP = (
    "inbound RTP datagrams dropped, by reason: no_remote (before ARI gave Asterisk's address), "
    "wrong_source (another sender; most are dropped by the kernel uncounted), rate (over the "
    "per-call packet rate), malformed, payload_type (not PCMU/PCMA), wrong_ssrc (not the stream "
    "Asterisk sends)"
)


class Metrics:
    """Everything ``/metrics`` reports. Methods are cheap and never raise on a live call's path
    except for a programming error (a negative duration)."""

    content_type = CONTENT_TYPE
    """What ``render()`` writes, as the HTTP ``Content-Type`` names it."""

    def __init__(
        self,
        *,
        active_calls: Callable[[], float] | None = None,
        max_calls: Callable[[], float] | None = None,
    ) -> None:
        self._active = 0
        self.calls_total = Counter("medagent_calls_total", "calls the agent answered")
        self.call_outcomes = Counter(
            "medagent_call_outcomes_total",
            "calls that ended, by outcome (transferred, agent_hangup, caller_hangup, "
            "handed_back:<reason>...)",
            label="outcome",
        )
        self.call_intents = Counter(
            "medagent_call_intents_total",
            "calls that ended, by the last request the agent recorded (none: no request)",
            label="intent",
        )
        self.transfers = Counter(
            "medagent_transfers_total",
            "transfers to staff, by result (answered, busy, noanswer, unavailable, failed...)",
            label="status",
        )
        self.fallbacks = Counter(
            "medagent_fallbacks_total",
            "calls handed back to the dialplan fallback, by reason",
            label="reason",
        )
        self.rtp_counters = {
            name: Counter(f"medagent_rtp_{name}_total", help_text)
            for name, help_text in RTP_FIELDS.items()
        }
        # Every reason is a series from the start, so a rate() over it works before the first drop.
        self.rtp_dropped = Counter(
            "medagent_rtp_dropped_total",
            RTP_DROPPED_HELP,
            label="reason",
            values={reason.value: 0.0 for reason in DropReason},
        )
        self.turn_latency_s = Histogram(
            "medagent_turn_latency_seconds",
            "end of the caller's speech to the agent's first audio of its answer",
            TURN_BUCKETS_S,
        )
        self.stt_time_s = Histogram(
            "medagent_stt_seconds",
            "end of an utterance to its words (both listens, after any speculative pass)",
            STT_BUCKETS_S,
        )
        self.second_listen_s = Histogram(
            "medagent_second_listen_seconds",
            "time the second model took to hear a symptom turn again (stt.second_model)",
            STT_BUCKETS_S,
        )
        self.reply_s = Histogram(
            "medagent_reply_seconds",
            "transcript ready to the agent starting its answer (understanding, dialog, speech "
            "synthesis; excludes speech-to-text)",
            TURN_BUCKETS_S,
        )
        self._gauges = [
            Gauge(
                "medagent_calls_active",
                "calls in progress",
                active_calls if active_calls is not None else (lambda: float(self._active)),
            )
        ]
        if max_calls is not None:
            self._gauges.append(
                Gauge("medagent_calls_max", "calls.max_concurrent (the capacity)", max_calls)
            )

    # -- what the runtime calls ----------------------------------------------------------------

    def call_started(self) -> None:
        self._active += 1
        self.calls_total.inc()

    def call_ended(self, outcome: str, intent: str = "") -> None:
        self._active = max(0, self._active - 1)
        self.call_outcomes.inc(outcome)
        self.call_intents.inc(intent or "none")

    def transfer(self, status: str) -> None:
        self.transfers.inc(status)

    def fallback(self, reason: str) -> None:
        self.fallbacks.inc(reason)

    def turn_latency(self, seconds: float) -> None:
        self.turn_latency_s.observe(seconds)

    def stt_time(self, seconds: float) -> None:
        self.stt_time_s.observe(seconds)

    def second_listen(self, seconds: float) -> None:
        self.second_listen_s.observe(seconds)

    def reply_time(self, seconds: float) -> None:
        self.reply_s.observe(seconds)

    def rtp(self, stats: Any) -> None:
        """Add one call's (or one interval's) media counters: any of ``JitterStats``,
        ``PacerStats``, ``MediaStats`` or a mapping with the names in ``RTP_FIELDS``. Fields the
        object lacks are skipped, so each part of the media path reports what it knows. Stats
        nested in it (``MediaStats.jitter``, ``.pacer``) count too, a name in several adding up.
        Drops by reason come from its ``dropped()`` (``MediaStats``) or a ``"dropped"`` mapping."""
        values = _flatten(stats)
        for name, counter in self.rtp_counters.items():
            amount = values.get(name, 0.0)
            if amount > 0:
                counter.inc(amount=amount)
        dropped_of = getattr(stats, "dropped", None)
        if callable(dropped_of):
            dropped = dropped_of()
        elif isinstance(stats, Mapping):
            dropped = stats.get("dropped")
        else:
            dropped = None
        if isinstance(dropped, Mapping):
            reasons = {reason.value for reason in DropReason}
            for reason, amount in dropped.items():
                if reason in reasons and _is_count(amount) and amount > 0:
                    self.rtp_dropped.inc(reason, float(amount))

    # -- exposition ----------------------------------------------------------------------------

    def render(self) -> str:
        parts: list[Iterable[str]] = [g.render() for g in self._gauges]
        parts += [
            self.calls_total.render(),
            self.call_outcomes.render(),
            self.call_intents.render(),
            self.transfers.render(),
            self.fallbacks.render(),
        ]
        parts += [c.render() for c in self.rtp_counters.values()]
        parts.append(self.rtp_dropped.render())
        parts += [
            self.turn_latency_s.render(),
            self.stt_time_s.render(),
            self.second_listen_s.render(),
            self.reply_s.render(),
        ]
        return "".join(line + "\n" for part in parts for line in part)


def _is_count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _flatten(stats: Any, depth: int = 0) -> dict[str, float]:
    """The numeric fields of a stats dataclass or mapping, with those of nested stats added in."""
    if isinstance(stats, Mapping):
        items: Iterable[tuple[Any, Any]] = stats.items()
    elif is_dataclass(stats) and not isinstance(stats, type):
        items = ((f.name, getattr(stats, f.name)) for f in fields(stats))
    else:
        raise ValueError(f"expected RTP stats (a dataclass or mapping), got {type(stats)!r}")
    out: dict[str, float] = {}
    for name, value in items:
        if _is_count(value):
            out[str(name)] = out.get(str(name), 0.0) + float(value)
        elif depth < 2 and is_dataclass(value) and not isinstance(value, type):
            for inner, amount in _flatten(value, depth + 1).items():
                out[inner] = out.get(inner, 0.0) + amount
    return out


class MetricsObserver(CallObserver):
    """Feeds ``Metrics`` from the call session's hooks, so the supervisor needs to know nothing
    about Prometheus. ``clock`` is monotonic seconds (``time.monotonic`` in production)."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float]) -> None:
        self.metrics = metrics
        self._clock = clock
        self._heard_at: dict[str, float] = {}
        self._intent: dict[str, str] = {}

    def call_started(self, call_id: str, channel_id: str) -> None:
        self.metrics.call_started()

    def heard(self, call_id: str, text: str) -> None:
        self._heard_at[call_id] = self._clock()

    def said(self, call_id: str, text: str) -> None:
        heard_at = self._heard_at.pop(call_id, None)
        if heard_at is not None:
            self.metrics.reply_time(max(0.0, self._clock() - heard_at))

    def transfer(self, call_id: str, target: str, status: str) -> None:
        # The target (a dial string) is deliberately not a label: it would grow a series per phone.
        self.metrics.transfer(status)

    def record(self, call_id: str, kind: str, data: dict[str, Any], urgent: bool) -> None:
        self._intent[call_id] = kind

    def turn_latency(self, call_id: str, seconds: float) -> None:
        self.metrics.turn_latency(seconds)

    def stt_time(self, call_id: str, seconds: float) -> None:
        self.metrics.stt_time(seconds)

    def second_listen(self, call_id: str, seconds: float) -> None:
        self.metrics.second_listen(seconds)

    def media_stats(self, call_id: str, stats: Any) -> None:
        self.metrics.rtp(stats)

    def fallback(self, reason: str) -> None:
        self.metrics.fallback(reason)

    def ended(self, call_id: str, outcome: str) -> None:
        self._heard_at.pop(call_id, None)
        self.metrics.call_ended(outcome, self._intent.pop(call_id, ""))
        if outcome.startswith("handed_back:"):
            self.metrics.fallback(outcome.split(":", 1)[1])
