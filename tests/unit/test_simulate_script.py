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


def test_speech_offsets_find_the_voiced_part_of_a_recording() -> None:
    import numpy as np

    from agent.core import g711
    from agent.pbxsim.simulate import speech_end_offset_s, speech_start_offset_s

    silence = np.zeros(8000, dtype=np.int16)
    tone = (8000 * np.sin(np.arange(4000) / 3)).astype(np.int16)
    ulaw = g711.ulaw_encode(np.concatenate([silence, tone, silence]))
    assert (speech_start_offset_s(ulaw), speech_end_offset_s(ulaw)) == (1.0, 1.5)
    quiet = g711.ulaw_encode(silence)
    assert (speech_start_offset_s(quiet), speech_end_offset_s(quiet)) == (0.0, 0.0)
