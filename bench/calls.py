"""Scripted whole calls through ``medagent simulate``: how many meet their expectations, and the turn
latency the callers heard (end of the caller's speech → first agent audio, from the report).

The scripts are ``tests/data/calls/*.yaml``; each carries an ``expect:`` table that ``check_call``
reads against the simulate report and what the call left in the database (requests, appointments,
summary, transcript, audit). ``tests/integration/test_scripted_calls.py`` uses the same checks.

    BENCH_ONLY=calls .venv/bin/python -m bench                 # every script, 4 calls at a time
    BENCH_ONLY=calls BENCH_QUICK=1 .venv/bin/python -m bench   # 2 calls
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import Config, DatabaseConfig
from agent.log import configure_logging
from agent.pbxsim.simulate import CallScript, SimOptions, load_script, simulate

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "calls"
AT = datetime.fromisoformat("2026-12-01T19:30:00-05:00")
"""A Tuesday evening: the office is closed (billing takes a message), the schedule is open."""
CANCELLATION_POLICY = "Please give us 24 hours notice, or a fee may apply."
QUICK_SCRIPTS = ("office_hours.yaml", "emergency.yaml")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def scripts(quick: bool = False) -> list[CallScript]:
    """The calls, longest first and those that take turns at the desk phones before all: they
    run in real time, so this order keeps the concurrent run short."""
    files = (
        [SCRIPTS_DIR / n for n in QUICK_SCRIPTS] if quick else sorted(SCRIPTS_DIR.glob("*.yaml"))
    )
    calls = [call for f in files for call in load_script(f)]
    return sorted(calls, key=lambda c: (not c.phones, -_rough_length_s(c)))


def _rough_length_s(call: CallScript) -> float:
    """Caller speech, silences and an agent prompt per step: only to order the calls."""
    return sum(
        float(s.value) if s.kind == "silence" else 8.0 if s.kind == "say" else 1.0
        for s in call.steps
    )


def sim_config(base: Config, tmp: Path, *, dsn: str = "", concurrency: int = 4) -> Config:
    """The scripts' practice: a cancellation policy to speak, a short ring time (the unanswered
    transfer), room for the concurrent calls, and a database of its own (``dsn`` or embedded)."""
    return dataclasses.replace(
        base,
        practice=dataclasses.replace(base.practice, cancellation_policy=CANCELLATION_POLICY),
        transfer=dataclasses.replace(base.transfer, ring_timeout_s=8),
        calls=dataclasses.replace(
            base.calls, max_concurrent=max(base.calls.max_concurrent, concurrency), health_port=0
        ),
        database=DatabaseConfig(
            dsn=dsn,
            embedded_dir=str(tmp / "pg"),
            key_file=str(tmp / "record.key"),
            audit_key_file=str(tmp / "audit.key"),  # and its anchor beside it: one per database
            spool_dir=str(tmp / "spool"),
            embedded_fsync=False,
        ),
    )


# -------------------------------------------------------------------------------------------------
# What the calls left in the database


@dataclass
class CallRecord:
    requests: list[dict[str, Any]] = field(default_factory=list)
    """``{"kind", "urgency", "status", **data}`` in the order they were written."""
    summary: dict[str, Any] | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DatabaseView:
    calls: dict[str, CallRecord]
    appointments: list[dict[str, Any]]
    """``{"patient", "status", "provider", "starts_at"}`` (local time), every appointment."""
    audit: dict[str, int]
    """Audit rows per ``subject:action``."""
    audit_ok: bool


async def read_database(cfg: Config, now: datetime) -> DatabaseView:
    """Everything the scripted calls wrote, read back through the staff API (so it is audited)."""
    from agent.adapters.store import audit, open_store
    from agent.errors import StoreError

    store = await open_store(cfg.database, cfg.practice)
    actor = "bench:calls"
    try:
        pool = store.database.pool
        calls: dict[str, CallRecord] = {}
        for row in await pool.fetch("SELECT id FROM calls ORDER BY started_at"):
            call_id = row["id"]
            rec = CallRecord(turns=await store.records.transcript(call_id, actor=actor, now=now))
            try:
                rec.summary = await store.records.export_summary(call_id, actor=actor, now=now)
            except StoreError:
                rec.summary = None
            calls[call_id] = rec
        for req in sorted(
            await store.records.open_requests(actor=actor, now=now), key=lambda r: r.created_at
        ):
            rec = calls.setdefault(req.call_id, CallRecord())
            rec.requests.append(
                {**req.data, "kind": req.kind, "urgency": req.urgency, "status": req.status}
            )
        tz = ZoneInfo(cfg.practice.timezone)
        appointments = []
        for row in await pool.fetch(
            "SELECT a.patient_id, a.status, s.provider_id, s.starts_at FROM appointments a"
            " JOIN slots s ON s.id = a.slot_id ORDER BY s.starts_at"
        ):
            patient = await store.patients.get(str(row["patient_id"]), actor=actor, now=now)
            appointments.append(
                {
                    "patient": patient.name,
                    "status": row["status"],
                    "provider": row["provider_id"],
                    "starts_at": row["starts_at"].astimezone(tz),
                }
            )
        counts = {
            f"{r['subject']}:{r['action']}": r["n"]
            for r in await pool.fetch(
                "SELECT subject, action, count(*) AS n FROM audit_log GROUP BY subject, action"
            )
        }
        async with pool.acquire() as conn:
            verified = await audit.verify(conn, store.audit_key)
        return DatabaseView(calls, appointments, counts, verified.ok)
    finally:
        await store.aclose()


# -------------------------------------------------------------------------------------------------
# Expectations


def check_call(
    script: CallScript, report: dict[str, Any], db: DatabaseView, *, start: datetime = AT
) -> list[str]:
    """What the script's ``expect:`` asks for that the call did not do (empty: it passed)."""
    expect = script.expect
    out = report["outcome"]
    problems: list[str] = []
    prompts = [p for t in report["turns"] for p in t["agent_prompts"]]
    spoken = " ".join(prompts).lower()
    rec = db.calls.get(report["call_id"], CallRecord())

    # Every call: a summary and a transcript with both sides.
    if rec.summary is None:
        problems.append("no call summary stored")
    speakers = {t["speaker"] for t in rec.turns}
    if "agent" not in speakers:
        problems.append("no agent turns in the stored transcript")
    if any(s.kind == "say" for s in script.steps) and "caller" not in speakers:
        problems.append("no caller turns in the stored transcript")

    if "hangup_by" in expect and out["hangup_by"] != expect["hangup_by"]:
        problems.append(f"hung up by {out['hangup_by']}, expected {expect['hangup_by']}")
    if "requests" in expect:
        problems += _check_requests(expect["requests"], rec.requests)
    for kind in expect.get("no_requests", []):
        if any(r["kind"] == kind for r in rec.requests):
            problems.append(f"a {kind} request was written")
    for text in expect.get("said", []):
        if text.lower() not in spoken:
            problems.append(f"the agent never said {text!r}")
    for text in expect.get("never_said", []):
        if text.lower() in spoken:
            problems.append(f"the agent said {text!r}")
    if expect.get("said_policy") and CANCELLATION_POLICY.lower() not in spoken:
        problems.append("the cancellation policy was not spoken")
    if "emergency_in_turn" in expect:
        n = int(expect["emergency_in_turn"])
        turns = report["turns"]
        first = turns[n]["agent_prompts"][:1] if n < len(turns) else []
        if not first or "dial 9 1 1" not in first[0]:
            problems.append(f"turn {n} did not open with the 911 instruction: {first}")
    if "transfers" in expect:
        got = [{"target": t["target"], "status": t["status"]} for t in out["transfers"]]
        if got != expect["transfers"]:
            problems.append(f"transfers {got}, expected {expect['transfers']}")
    if "clinician_heard" in expect:
        heard = [p["heard"] or "" for p in out.get("phones", []) if p["answered"]]
        words = heard[0].lower() if heard else ""
        # What the desk phone heard is our espeak voice transcribed by tiny.en, which mangles
        # single words ("fever" came back as other words once in five runs): ask for most of the
        # expected phrases, not every one; the exact summary text is checked from the agent side.
        missing = [t for t in expect["clinician_heard"] if t.lower() not in words]
        if len(missing) * 2 > len(expect["clinician_heard"]):
            problems.append(f"the clinician did not hear {missing!r}: {words!r}")
        said = [p for turn in report["turns"] for p in turn["agent_prompts"]]
        summary = next((p.lower() for p in said if "answering assistant" in p.lower()), "")
        for text in expect["clinician_heard"]:
            if text.lower() not in summary:
                problems.append(f"the clinician summary does not say {text!r}: {summary!r}")
        # The summary comes first: the patient is bridged only after it.
        if words and not any(w in " ".join(words.split()[:12]) for w in ("patient", "calling")):
            problems.append(f"the clinician's first words were not the summary: {words!r}")
    if (
        "summary_urgency" in expect
        and (rec.summary or {}).get("urgency") != expect["summary_urgency"]
    ):
        problems.append(
            f"summary urgency {(rec.summary or {}).get('urgency')}, "
            f"expected {expect['summary_urgency']}"
        )
    if expect.get("handed_back") and not any(p.startswith("continue(") for p in out["path"]):
        problems.append(f"not handed back to the dialplan: {out['path']}")
    for want in expect.get("appointments", []):
        if not any(_appointment_matches(want, a, start) for a in db.appointments):
            problems.append(f"no appointment like {want}")
    return problems


def _check_requests(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[str]:
    if len(want) != len(got):
        return [f"{len(got)} requests {[r['kind'] for r in got]}, expected {len(want)}"]
    problems = []
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        for key, value in w.items():
            if g.get(key) != value:
                problems.append(
                    f"request {i} ({g['kind']}): {key}={g.get(key)!r}, expected {value!r}"
                )
    return problems


def _appointment_matches(want: dict[str, Any], got: dict[str, Any], start: datetime) -> bool:
    local: datetime = got["starts_at"]
    checks = {
        "patient": got["patient"],
        "status": got["status"],
        "provider": got["provider"],
        "weekday": WEEKDAYS[local.weekday()],
        "in_days": (local.date() - start.astimezone(local.tzinfo).date()).days,
    }
    return all(checks.get(k) == v for k, v in want.items())


# -------------------------------------------------------------------------------------------------
# The benchmark


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def latencies(reports: list[dict[str, Any]]) -> list[float]:
    return [t["latency_ms"] for r in reports for t in r["turns"] if t.get("latency_ms") is not None]


async def run_calls(
    base: Config, tmp: Path, *, quick: bool, concurrency: int = 4, dsn: str = ""
) -> dict[str, Any]:
    calls = scripts(quick)
    cfg = sim_config(base, tmp, dsn=dsn, concurrency=concurrency)
    started = time.perf_counter()
    opts = SimOptions(now=AT, concurrency=min(concurrency, len(calls)))
    reports = await simulate(cfg, calls, opts)
    wall = time.perf_counter() - started
    db = await read_database(cfg, datetime.now(UTC))
    results = {s.name: check_call(s, r, db) for s, r in zip(calls, reports, strict=True)}
    lat = latencies(reports)
    return {
        "calls": len(calls),
        "passed": sum(1 for p in results.values() if not p),
        "failed": {name: p for name, p in results.items() if p},
        "turns_measured": len(lat),
        "latency_p50_ms": percentile(lat, 50),
        "latency_p95_ms": percentile(lat, 95),
        "latency_mean_ms": round(statistics.fmean(lat)) if lat else None,
        "concurrency": opts.concurrency,
        "simulate_wall_s": round(wall, 1),
        "audit_chain_ok": db.audit_ok,
    }


def run(quick: bool) -> dict[str, Any]:
    from agent.commands._config import resolve_config_path
    from agent.config import load_config

    base = load_config(resolve_config_path(None))
    # The agent's own logging set-up (redaction on), quiet: the JSON report is the output.
    configure_logging(dataclasses.replace(base.logging, level="warning"))
    with tempfile.TemporaryDirectory(prefix=f"bench-calls-{uuid.uuid4().hex[:6]}-") as tmp:
        Path(tmp).chmod(0o755)  # the embedded PostgreSQL runs as its own user when we are root
        return asyncio.run(run_calls(base, Path(tmp), quick=quick))
