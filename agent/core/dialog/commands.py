"""What the dialog tells the call to do, and what the call tells the dialog happened.

The dialog core is pure: it receives these events (with ``now`` passed in) and returns commands. The
call session (``agent.runtime.call``) carries the commands out with ARI, RTP and the engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from agent.core.understanding import Understanding

Expect = Literal["open", "yes_no", "digits"]

# ---------------------------------------------------------------------------------------------
# Commands (dialog → call)


@dataclass(frozen=True)
class Say:
    text: str
    """What to say, written for the ear."""
    prompt_key: str | None = None
    """Key of a pre-rendered static prompt (greeting, sorry…) when the text is one; spoken at once."""
    barge_in: bool = True
    """Whether the caller may interrupt it (never for emergency instructions)."""


@dataclass(frozen=True)
class Listen:
    expect: Expect = "open"
    """``yes_no``/``digits`` shorten the end-of-utterance silence."""
    timeout_s: float = 8.0


@dataclass(frozen=True)
class Transfer:
    targets: tuple[str, ...]
    """Dial strings tried in order (``PJSIP/clinician100``)."""
    reason: str
    summary: str = ""
    """Spoken to the clinician before the patient is bridged (warm transfer); empty = cold."""
    ring_timeout_s: int = 20


@dataclass(frozen=True)
class HandBack:
    """Continue the caller in the dialplan fallback (front desk / voicemail)."""

    reason: str


@dataclass(frozen=True)
class Hangup:
    drain: bool = True
    """Let queued speech finish first (goodbye)."""


@dataclass(frozen=True)
class SaveRecord:
    kind: Literal["message", "refill", "appointment", "transfer", "emergency", "summary"]
    data: dict[str, Any] = field(default_factory=dict)
    urgent: bool = False


Command = Say | Listen | Transfer | HandBack | Hangup | SaveRecord

# ---------------------------------------------------------------------------------------------
# Events (call → dialog)


@dataclass(frozen=True)
class CallStarted:
    now: datetime
    caller_number: str = ""
    caller_name: str = ""


@dataclass(frozen=True)
class Heard:
    now: datetime
    understanding: Understanding


@dataclass(frozen=True)
class NothingHeard:
    """The caller said nothing (or nothing intelligible) before the listen timeout."""

    now: datetime


@dataclass(frozen=True)
class DtmfReceived:
    now: datetime
    digit: str


@dataclass(frozen=True)
class TransferEnded:
    now: datetime
    status: Literal["answered", "busy", "no_answer", "unavailable", "failed"]
    target: str = ""


@dataclass(frozen=True)
class CallerHungUp:
    now: datetime


Event = CallStarted | Heard | NothingHeard | DtmfReceived | TransferEnded | CallerHungUp
