"""/health and /metrics over a loopback port, and the Prometheus text they serve."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.adapters.health import HealthInputs, HealthServer, assess, supervisor_inputs
from agent.core.jitter import JitterStats
from agent.core.pacer import PacerStats
from agent.runtime.metrics import Histogram, Metrics, MetricsObserver, label_value

# One sample line of the exposition format: name, optional {labels}, value.
_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_]+="(?:[^"\\]|\\.)*"\})? \S+$')


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        assert _SAMPLE.match(line), f"not a Prometheus sample: {line!r}"
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def test_assess_is_unhealthy_only_without_ari() -> None:
    ok = HealthInputs(ari_connected=True, ami_connected=True, active_calls=1, max_calls=4)
    assert assess(ok) == (
        200,
        {
            "status": "ok",
            "ari_connected": True,
            "ami_connected": True,
            "database_ok": None,
            "spooled": None,
            "quarantined": None,
            "active_calls": 1,
            "max_calls": 4,
            "degraded": [],
        },
    )
    status, body = assess(
        HealthInputs(
            ari_connected=True,
            ami_connected=False,
            active_calls=4,
            max_calls=4,
            database_ok=False,
            spooled=3,
            quarantined=1,
        )
    )
    assert (status, body["status"], body["degraded"]) == (
        200,
        "degraded",
        ["ami", "database", "spool_quarantine", "at_capacity"],
    )
    assert (body["spooled"], body["quarantined"]) == (3, 1)
    status, body = assess(
        HealthInputs(ari_connected=False, ami_connected=None, active_calls=0, max_calls=4)
    )
    assert (status, body["status"]) == (503, "unhealthy")


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = Histogram("x_seconds", "x", (0.5, 1.0))
    for v in (0.5, 0.7, 1.0, 3.0):
        h.observe(v)
    lines = list(h.render())
    assert 'x_seconds_bucket{le="0.5"} 1' in lines  # le is "less or equal"
    assert 'x_seconds_bucket{le="1"} 3' in lines
    assert 'x_seconds_bucket{le="+Inf"} 4' in lines
    assert "x_seconds_sum 5.2" in lines and "x_seconds_count 4" in lines
    with pytest.raises(ValueError, match="expected a duration >= 0, got -1"):
        h.observe(-1)


def test_label_values_cannot_carry_arbitrary_text() -> None:
    assert label_value("handed_back:capacity") == "handed_back:capacity"
    assert label_value('a "quoted"\nline') == "a__quoted__line"
    assert len(label_value("x" * 500)) == 64


def test_metrics_render_counts_and_rtp_stats() -> None:
    m = Metrics(max_calls=lambda: 4)
    m.call_started()
    m.call_started()
    m.call_ended("transferred", "appointment_request")
    m.transfer("answered")
    m.transfer("busy")
    m.transfer("busy")
    m.fallback("capacity")
    m.turn_latency(0.8)
    m.stt_time(0.6)
    m.rtp(JitterStats(received=100, lost=3, late=1, reordered=2))
    m.rtp(PacerStats(sent=50, late=2))
    m.rtp({"underruns": 5, "unrelated": 9})
    s = _samples(m.render())
    assert s["medagent_calls_active"] == 1
    assert s["medagent_calls_max"] == 4
    assert s["medagent_calls_total"] == 2
    assert s['medagent_call_outcomes_total{outcome="transferred"}'] == 1
    assert s['medagent_call_intents_total{intent="appointment_request"}'] == 1
    assert s['medagent_transfers_total{status="busy"}'] == 2
    assert s['medagent_fallbacks_total{reason="capacity"}'] == 1
    assert s["medagent_rtp_lost_total"] == 3
    assert s["medagent_rtp_late_total"] == 3  # 1 received late + 2 sent late
    assert s["medagent_rtp_reordered_total"] == 2
    assert s["medagent_rtp_underruns_total"] == 5
    assert s['medagent_turn_latency_seconds_bucket{le="0.75"}'] == 0
    assert s['medagent_turn_latency_seconds_bucket{le="1"}'] == 1
    assert s["medagent_stt_seconds_count"] == 1
    with pytest.raises(ValueError, match="expected RTP stats"):
        m.rtp(42)


def test_observer_feeds_metrics_from_call_hooks() -> None:
    now = [100.0]
    m = Metrics()
    obs = MetricsObserver(m, clock=lambda: now[0])
    obs.call_started("c1", "ch1")
    obs.heard("c1", "I need a refill")
    now[0] += 1.25
    obs.said("c1", "Which medication?")
    obs.record("c1", "refill_request", {}, False)
    obs.transfer("c1", "PJSIP/frontdesk", "noanswer")
    obs.ended("c1", "handed_back:transfer_failed")
    s = _samples(m.render())
    assert s["medagent_calls_active"] == 0
    assert s['medagent_call_intents_total{intent="refill_request"}'] == 1
    assert s['medagent_fallbacks_total{reason="transfer_failed"}'] == 1
    assert s['medagent_transfers_total{status="noanswer"}'] == 1
    assert s["medagent_reply_seconds_sum"] == 1.25
    assert "PJSIP" not in m.render()  # dial strings are not labels


class _Sup:
    def __init__(self) -> None:
        self.healthy = True
        self.active_calls = 2
        self.max_calls = 4


class _Ami:
    connected = False


class _Store:
    """What the record store reports: last known reachability and the spool's counts."""

    def __init__(self) -> None:
        self.database_ok: bool | None = True
        self.spooled = 0
        self.quarantined = 0


async def test_server_serves_health_and_metrics_on_loopback() -> None:
    sup = _Sup()
    metrics = Metrics(active_calls=lambda: float(sup.active_calls))
    metrics.transfer("answered")
    server = HealthServer(
        "127.0.0.1", 0, inputs=supervisor_inputs(sup, ami=_Ami()), metrics=metrics
    )
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.get("/health")
            assert r.status_code == 200
            assert json.loads(r.text)["degraded"] == ["ami"]
            assert json.loads(r.text)["active_calls"] == 2
            sup.healthy = False
            r = await http.get("/health")
            assert r.status_code == 503
            r = await http.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            s = _samples(r.text)
            assert s["medagent_calls_active"] == 2
            assert s['medagent_transfers_total{status="answered"}'] == 1
    finally:
        await server.close()


@given(st.lists(st.text(max_size=80), max_size=8))
def test_any_outcome_text_renders_as_valid_exposition(outcomes: list[str]) -> None:
    m = Metrics()
    for outcome in outcomes:
        m.call_started()
        m.call_ended(outcome, intent=outcome)
    s = _samples(m.render())  # asserts every line is a valid sample
    assert s["medagent_calls_total"] == len(outcomes)
    total = sum(v for k, v in s.items() if k.startswith("medagent_call_outcomes_total{"))
    assert total == len(outcomes)


async def test_health_reports_the_database_and_the_spool() -> None:
    sup, store = _Sup(), _Store()
    server = HealthServer("127.0.0.1", 0, inputs=supervisor_inputs(sup, store=store))
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            body = json.loads((await http.get("/health")).text)
            assert (body["database_ok"], body["spooled"], body["quarantined"]) == (True, 0, 0)
            assert body["degraded"] == []
            store.database_ok, store.spooled, store.quarantined = False, 4, 1
            r = await http.get("/health")
            body = json.loads(r.text)
            assert r.status_code == 200  # calls go on: records wait in the spool
            assert (body["database_ok"], body["spooled"], body["quarantined"]) == (False, 4, 1)
            assert body["degraded"] == ["database", "spool_quarantine"]
    finally:
        await server.close()
