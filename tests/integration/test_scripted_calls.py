"""Issue 4's scripted calls: every workflow as a whole call through ``simulate`` — the stand-in, our
ARI client, the supervisor with the real engines (Whisper tiny.en, the trained spaCy model, the
agent's TTS), callers speaking with the Piper voice through a modelled phone line — against a fresh
embedded PostgreSQL, then what the calls left in the database is read back and checked.

All scripts (``tests/data/calls/*.yaml``) run once, six calls at a time, in one ``simulate`` at a
fixed evening clock (``bench.calls.AT``). Each script then gets its own test: its ``expect:`` table
(``bench.calls.check_call``) and the checks below. Every log line of the whole run (structlog at
debug, and the standard library's loggers) is captured and searched for the callers' data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.adapters.store.scheduling import DEMO_PATIENTS
from agent.config import Config, LoggingConfig
from agent.log import configure_logging
from agent.pbxsim.simulate import CallScript, SimOptions, simulate
from bench.calls import (
    AT,
    DatabaseView,
    check_call,
    latencies,
    percentile,
    read_database,
    scripts,
    sim_config,
)
from tests.fakes.fake_store_pg import _ensure_template, cluster, drop_database, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.db]

CONCURRENCY = 4
"""Calls in progress at once: the calls run in real time, so this sets the file's wall time. Six
at once beside two other test workers on 2 cores starved the media loop (late frames count as
lost), and a drug name was misheard in one run of 18 scripts; four keep the suite's load as it
was with 14."""
MODEL_DIR = Path(__file__).resolve().parents[2] / ".medagent" / "nlu-model"


@dataclass
class Run:
    calls: list[CallScript]
    reports: dict[str, dict[str, Any]]
    db: DatabaseView
    logs: str


def _run_all(tmp: Path) -> Run:
    from agent.commands._config import resolve_config_path
    from agent.config import load_config

    async def go() -> Run:
        pg = cluster()
        await _ensure_template(pg)
        name = await fresh_database(pg)
        try:
            cfg: Config = sim_config(
                load_config(resolve_config_path(None)),
                tmp,
                dsn=pg.dsn(name),
                concurrency=CONCURRENCY,
            )
            calls = scripts()
            reports = await simulate(cfg, calls, SimOptions(now=AT, concurrency=CONCURRENCY))
            db = await read_database(cfg, AT)
        finally:
            await drop_database(pg, name)
        return Run(calls, {s.name: r for s, r in zip(calls, reports, strict=True)}, db, "")

    structlog_out = io.StringIO()
    stdlib_out = io.StringIO()
    handler = logging.StreamHandler(stdlib_out)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    configure_logging(LoggingConfig(level="debug", format="json"), stream=structlog_out)
    try:
        # A loop of its own (in a thread), outside the per-test loop of pytest-asyncio.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            run = pool.submit(asyncio.run, go()).result()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        configure_logging(LoggingConfig(level="warning"))
    return dataclasses.replace(run, logs=structlog_out.getvalue() + stdlib_out.getvalue())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    if not MODEL_DIR.is_dir():
        pytest.skip("no trained intent model: run `make nlu-model`")
    tmp = tmp_path_factory.mktemp("scripted-calls")
    tmp.chmod(0o755)
    return _run_all(tmp)


SCRIPT_NAMES = [s.name for s in scripts()]


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_scripted_call_meets_its_expectations(run: Run, name: str) -> None:
    script = next(s for s in run.calls if s.name == name)
    report = run.reports[name]
    problems = check_call(script, report, run.db)
    transcript = "\n".join(
        f"  {'CALLER' if i else ''} {t['caller']} -> {t['agent_prompts']}"
        for i, t in enumerate(report["turns"])
    )
    assert not problems, f"{name}: {problems}\n{transcript}"


def _call(run: Run, name: str) -> tuple[dict[str, Any], Any]:
    report = run.reports[name]
    return report, run.db.calls[report["call_id"]]


def test_transcript_and_summary_are_stored_for_every_call(run: Run) -> None:
    for name, report in run.reports.items():
        rec = run.db.calls[report["call_id"]]
        agent_turns = [t["text"] for t in rec.turns if t["speaker"] == "agent"]
        said = [p for t in report["turns"] for p in t["agent_prompts"]]
        # Every prompt the caller heard is in the record, in order (the clinician's summary is said
        # to the clinician, not to the caller, and is not a turn of the caller's transcript).
        heard_by_caller = [p for p in said if not p.startswith("This is the answering assistant")]
        assert agent_turns[: len(heard_by_caller)] == heard_by_caller, name
        assert rec.summary is not None and rec.summary["ended_at"] is not None, name


def test_booking_correction_moves_the_same_time_to_wednesday(run: Run) -> None:
    report, rec = _call(run, "booking with a correction")
    booked = [a for a in run.db.appointments if a["patient"] == "Robert Chen"]
    assert len(booked) == 1 and booked[0]["status"] == "booked"
    read_backs = [p for t in report["turns"] for p in t["agent_prompts"] if "Is that right?" in p]
    assert len(read_backs) == 2, read_backs
    assert read_backs[0].split(" at ")[1][:5] == read_backs[1].split(" at ")[1][:5], read_backs
    assert read_backs[1].startswith("Wednesday")
    request = rec.requests[0]
    assert request["action"] == "booked" and request["verified"] is True
    assert request["slot"]["starts_at"] == booked[0]["starts_at"].isoformat()


def test_emergency_is_never_queued_and_911_comes_first(run: Run) -> None:
    report, rec = _call(run, "emergency")
    assert report["turns"][1]["agent_prompts"][0].startswith("This could be a medical emergency")
    assert [r["kind"] for r in rec.requests] == ["emergency"]
    assert rec.requests[0]["red_flags"], rec.requests[0]
    assert report["outcome"]["transfers"] == []


def test_urgent_transfer_clinician_heard_the_summary_then_the_caller(run: Run) -> None:
    report, rec = _call(run, "urgent transfer answered")
    phones = report["outcome"]["phones"]
    assert [p["phone"] for p in phones if p["answered"]] == ["clinician100"]
    assert rec.summary is not None and rec.summary["urgency"] == "urgent"
    assert "Dial" not in " ".join(report["outcome"]["path"])  # bridged by us, not handed back


def test_unanswered_urgent_transfer_leaves_an_urgent_message(run: Run) -> None:
    report, rec = _call(run, "urgent transfer unanswered")
    message = next(r for r in rec.requests if r["kind"] == "message")
    assert message["urgency"] == "urgent" and message["red_flags"]
    assert "103" in message["message"] or "hundred" in message["message"]


def test_hangup_mid_booking_keeps_what_was_asked(run: Run) -> None:
    report, rec = _call(run, "hangup mid-booking")
    (partial,) = rec.requests
    assert partial["partial"] is True and partial["verified"] is True
    assert rec.summary is not None and rec.summary["open_items"], rec.summary


def test_audit_log_covers_the_calls_and_its_chain_holds(run: Run) -> None:
    db = run.db
    assert db.audit_ok
    calls = len(run.reports)
    assert db.audit.get("calls:write", 0) >= calls
    assert db.audit.get("turns:write", 0) >= 3 * calls
    assert db.audit.get("requests:write", 0) == sum(len(c.requests) for c in db.calls.values())
    assert db.audit.get("patients:search", 0) >= 7  # every identification is a directory search
    assert db.audit.get("appointments:write", 0) >= 2  # booked, and moved
    assert db.audit.get("appointments:cancel", 0) >= 2  # cancelled, and the old one of the move


def test_no_patient_data_in_the_logs_of_the_whole_run(run: Run) -> None:
    logs = run.logs.lower()
    assert "call" in logs and len(logs) > 1000, "nothing was captured"
    secrets: set[str] = set()
    for name, dob, phone, meds in DEMO_PATIENTS:
        # Full names: a surname alone may be a provider's too (Nurse Practitioner Garcia).
        secrets |= {name.lower(), phone, f"{phone[:3]}-{phone[3:6]}-{phone[6:]}"}
        secrets |= {
            dob.isoformat(),
            dob.strftime("%m/%d/%Y"),
            dob.strftime("%B %-d, %Y").lower(),
            dob.strftime("%B %-d").lower(),
            dob.strftime("%Y%m%d"),
        }
        secrets |= {m.split()[0].lower() for m in meds}
    secrets |= {"sarah miller", "sara miller", "5552345678", "555-234-5678", "oxycodone"}
    for script in run.calls:
        secrets.add(script.number)
        # Whole phrases and the distinctive words the callers said.
        for step in script.steps:
            if step.kind == "say":
                words = re.findall(r"[a-z']+", str(step.value).lower())
                secrets |= {" ".join(words[i : i + 4]) for i in range(0, max(1, len(words) - 3))}
    secrets |= {"charged twice", "crushing chest pain", "catch his breath", "blood test"}
    found = sorted(s for s in secrets if len(s) >= 4 and re.search(rf"\b{re.escape(s)}\b", logs))
    assert not found, f"patient data in clear in the logs: {found}"


def test_latency_figures_come_from_the_reports(run: Run) -> None:
    lat = latencies(list(run.reports.values()))
    assert len(lat) >= 40
    p50, p95 = percentile(lat, 50), percentile(lat, 95)
    assert p50 is not None and p95 is not None and 0 < p50 <= p95
