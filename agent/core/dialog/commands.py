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
    lang: str = field(default="en", repr=False)
    """The language it is in: the voice that says it (``Context.lang``; the text shows it, so the
    repr, which the golden traces record, leaves it out)."""


@dataclass(frozen=True)
class Listen:
    expect: Expect = "open"
    """``yes_no``/``digits`` shorten the end-of-utterance silence."""
    timeout_s: float = 8.0
    detail: bool = False
    """The question asks for one detail (a name, a date of birth, a phone number, a pharmacy): the
    answer is not heard again by the second recogniser, which re-hears turns where a caller tells
    what is wrong (``agent.core.understanding.worth_a_second_listen``)."""
    lang: str = field(default="en", repr=False)
    """The language the caller is expected to speak (``Context.lang``): a Spanish call's turns
    go straight to the multilingual recogniser."""


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


# Data commands: the dialog cannot reach the patient directory or the schedule, so it asks the call
# session, which answers each with exactly one result event (below). Dates and times inside are the
# practice's local wall-clock values, so the dialog can speak them without a time zone database.


@dataclass(frozen=True)
class Slot:
    """An open appointment time."""

    id: str
    provider_id: str
    provider_name: str
    """As spoken: "Doctor Patel"."""
    starts_at: datetime
    """Practice-local time."""
    minutes: int = 20


@dataclass(frozen=True)
class Appointment:
    id: str
    slot: Slot
    appointment_type: str


@dataclass(frozen=True)
class SlotPreferences:
    """What the caller would like; empty fields mean "any"."""

    dates: tuple[str, ...] = ()
    """ISO dates the caller named (one, or every day of a range)."""
    weekdays: tuple[int, ...] = ()
    """0 = Monday; from "any Tuesday" when no date was named."""
    not_before: str = ""
    """``HH:MM`` local."""
    not_after: str = ""
    exclude: tuple[str, ...] = ()
    """Slot ids already offered and declined."""
    near: str = ""
    """``HH:MM``: closest to this time first (a correction "no, Wednesday" keeps the time)."""


@dataclass(frozen=True)
class LookupPatient:
    name: str
    dob: str
    """ISO date."""
    caller_number: str = ""
    """A hint only (it can be spoofed or shared): never proof of identity."""
    other_names: tuple[str, ...] = ()
    """The same answer as the recogniser's other hypotheses heard it; each is tried only with the
    same date of birth, so a match is as strong as a match on ``name``."""


@dataclass(frozen=True)
class FindSlots:
    provider_id: str
    """Empty: any provider."""
    appointment_type: str
    preferences: SlotPreferences = field(default_factory=SlotPreferences)
    limit: int = 3


@dataclass(frozen=True)
class BookSlot:
    slot: Slot
    patient_id: str
    appointment_type: str


@dataclass(frozen=True)
class ListAppointments:
    patient_id: str


@dataclass(frozen=True)
class CancelAppointment:
    appointment_id: str
    patient_id: str


@dataclass(frozen=True)
class RescheduleAppointment:
    appointment_id: str
    patient_id: str
    slot: Slot


DataCommand = (
    LookupPatient
    | FindSlots
    | BookSlot
    | ListAppointments
    | CancelAppointment
    | RescheduleAppointment
)

Command = Say | Listen | Transfer | HandBack | Hangup | SaveRecord | DataCommand

# ---------------------------------------------------------------------------------------------
# Events (call → dialog)


@dataclass(frozen=True)
class CallStarted:
    now: datetime
    caller_number: str = ""
    caller_name: str = ""
    office_open: bool = True
    """Computed by the call session (``agent.core.office.is_office_open``): billing and staff
    transfers during hours, messages after hours."""


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


# Results of the data commands. ``failed``: the directory or schedule could not be reached; the
# dialog then takes a message instead, so nothing the caller asked for is lost.


@dataclass(frozen=True)
class PatientLookedUp:
    now: datetime
    found: bool
    patient_id: str = ""
    medications: tuple[str, ...] = ()
    """Generic names on the patient's list, when known."""
    phone_on_file: str = ""
    failed: bool = False


@dataclass(frozen=True)
class SlotsFound:
    now: datetime
    slots: tuple[Slot, ...] = ()
    failed: bool = False


@dataclass(frozen=True)
class Booked:
    now: datetime
    ok: bool
    """False: the slot was taken by another caller in the meantime (or the write failed)."""
    appointment: Appointment | None = None
    failed: bool = False


@dataclass(frozen=True)
class AppointmentsListed:
    now: datetime
    appointments: tuple[Appointment, ...] = ()
    """The caller's own future appointments, soonest first."""
    failed: bool = False


@dataclass(frozen=True)
class AppointmentCancelled:
    now: datetime
    ok: bool
    failed: bool = False


@dataclass(frozen=True)
class Rescheduled:
    now: datetime
    ok: bool
    appointment: Appointment | None = None
    failed: bool = False


DataResult = (
    PatientLookedUp | SlotsFound | Booked | AppointmentsListed | AppointmentCancelled | Rescheduled
)

Event = (
    CallStarted | Heard | NothingHeard | DtmfReceived | TransferEnded | CallerHungUp | DataResult
)
