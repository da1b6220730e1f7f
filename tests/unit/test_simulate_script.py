"""``medagent simulate``'s caller scripts and clock (no engines, no stand-in)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.pbxsim.simulate import GivenAppointment, load_script, sim_clock

CALLS = Path(__file__).resolve().parents[1] / "data" / "calls"


def test_every_scripted_call_parses_with_its_expectations() -> None:
    calls = load_script(CALLS)
    assert len(calls) == len(list(CALLS.glob("*.yaml"))) >= 14
    assert all(c.expect for c in calls), [c.name for c in calls if not c.expect]
    by_name = {c.name: c for c in calls}
    assert by_name["reschedule"].appointments == (
        GivenAppointment("Linda Garcia", "patel", 2, "10:00"),
    )
    assert by_name["urgent transfer unanswered"].phones == {"clinician100": "noanswer"}


def test_given_appointments_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nsteps: [hangup]\ngiven: {appointments: [{patient: A, provider: p, at: '25:00'}]}\n"
    )
    with pytest.raises(ConfigError, match=r"calls\[0\]\.given\.appointments\[0\]"):
        load_script(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no \\*.yaml caller scripts"):
        load_script(empty)


def test_the_clock_starts_at_the_given_time_and_runs() -> None:
    start = datetime.fromisoformat("2026-12-01T19:30:00-05:00")
    clock = sim_clock(start)
    first = clock()
    time.sleep(0.01)
    assert start <= first < clock()
    with pytest.raises(ValueError, match="UTC offset"):
        sim_clock(datetime(2026, 12, 1, 19, 30))
