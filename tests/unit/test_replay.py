"""A call replayed in text records after which caller line the 911 instruction came, and when the
on-call clinician was reached (what ``medagent eval --calls`` scores)."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.config import Config, TransferConfig
from agent.core.understanding import RedFlag, Understanding
from agent.runtime.call import dialog_settings
from agent.runtime.replay import replay

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
STROKE = RedFlag("stroke", "emergency", "Stroke signs", "face is drooping")
SHORT_OF_BREATH = RedFlag("breathing", "urgent", "Short of breath", "short of breath")


class Scripted:
    """Understands each line as the test says."""

    def __init__(self, readings: dict[str, Understanding]) -> None:
        self.readings = readings

    def understand(self, text: str, *, now: datetime) -> Understanding:
        return self.readings.get(text) or Understanding(text, "en", "message", 0.9, "routine")


def test_the_line_after_which_the_911_instruction_came_is_recorded() -> None:
    cfg = Config(transfer=TransferConfig(on_call=["PJSIP/clinician100"]))
    lines = ["I want to leave a message", "her face is drooping"]
    readings = {
        lines[1]: Understanding(lines[1], "en", "symptoms", 0.9, "emergency", [STROKE]),
    }
    r = replay(
        lines,
        Scripted(readings),
        dialog_settings(cfg),
        cfg,
        now=NOW,
        on_call=["PJSIP/clinician100"],
    )
    assert r.emergency_after == 1
    assert any("dial 9 1 1" in said for said in r.agent[1])


def test_an_urgent_turn_reaches_the_on_call_clinician() -> None:
    cfg = Config(transfer=TransferConfig(on_call=["PJSIP/clinician100"]))
    lines = ["I'm short of breath since this morning"]
    readings = {
        lines[0]: Understanding(lines[0], "en", "symptoms", 0.9, "urgent", [SHORT_OF_BREATH]),
    }
    r = replay(
        lines,
        Scripted(readings),
        dialog_settings(cfg),
        cfg,
        now=NOW,
        on_call=["PJSIP/clinician100"],
    )
    assert r.on_call_after == 0 and r.emergency_after is None
