"""A call's media counters as ``/metrics`` shows them: drops by reason, and the nested jitter and
pacer counters of ``MediaStats`` (the object the call hands over when it ends)."""

from __future__ import annotations

from agent.adapters.media import MediaStats
from agent.core.admission import DropReason
from agent.core.jitter import JitterStats
from agent.core.pacer import PacerStats
from agent.runtime.metrics import Metrics, MetricsObserver


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_every_drop_reason_is_a_series_from_the_start() -> None:
    s = samples(Metrics().render())
    for reason in DropReason:
        assert s[f'medagent_rtp_dropped_total{{reason="{reason.value}"}}'] == 0


def test_media_stats_of_a_call_fold_into_drop_counters_by_reason() -> None:
    m = Metrics()
    obs = MetricsObserver(m, clock=lambda: 0.0)
    stats = MediaStats(
        no_remote=4,
        wrong_source=3,
        rate_limited=1000,
        malformed=2,
        unsupported_payload=5,
        wrong_ssrc=7,
    )
    assert stats.dropped() == {
        "no_remote": 4,
        "wrong_source": 3,
        "rate": 1000,
        "malformed": 2,
        "payload_type": 5,
        "wrong_ssrc": 7,
    }
    obs.media_stats("c1", stats)
    obs.media_stats("c2", MediaStats(wrong_ssrc=1))
    s = samples(m.render())
    assert s['medagent_rtp_dropped_total{reason="no_remote"}'] == 4
    assert s['medagent_rtp_dropped_total{reason="wrong_source"}'] == 3
    assert s['medagent_rtp_dropped_total{reason="rate"}'] == 1000
    assert s['medagent_rtp_dropped_total{reason="malformed"}'] == 2
    assert s['medagent_rtp_dropped_total{reason="payload_type"}'] == 5
    assert s['medagent_rtp_dropped_total{reason="wrong_ssrc"}'] == 8
    # The older single-series counters stay.
    assert s["medagent_rtp_malformed_total"] == 2
    assert s["medagent_rtp_wrong_source_total"] == 3


def test_jitter_and_pacer_counters_inside_media_stats_are_counted() -> None:
    """The call hands over ``MediaStats``; its loss and lateness live in ``.jitter``/``.pacer``."""
    m = Metrics()
    m.rtp(
        MediaStats(
            jitter=JitterStats(lost=3, late=1, duplicates=2, reordered=4),
            pacer=PacerStats(late=2, dropped_slots=6),
        )
    )
    s = samples(m.render())
    assert s["medagent_rtp_lost_total"] == 3
    assert s["medagent_rtp_late_total"] == 3
    assert s["medagent_rtp_duplicates_total"] == 2
    assert s["medagent_rtp_reordered_total"] == 4
    assert s["medagent_rtp_dropped_slots_total"] == 6
