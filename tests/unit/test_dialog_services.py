"""The dialog's data commands against the in-memory directory and schedule (``runtime/services``),
and whole workflows with the dialog and the services wired the way the call session wires them."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from structlog.testing import capture_logs

from agent.config import PracticeConfig
from agent.core.dialog.commands import (
    AppointmentCancelled,
    AppointmentsListed,
    Booked,
    BookSlot,
    CallStarted,
    CancelAppointment,
    Command,
    FindSlots,
    Heard,
    ListAppointments,
    LookupPatient,
    PatientLookedUp,
    RescheduleAppointment,
    Rescheduled,
    SaveRecord,
    Say,
    SlotPreferences,
    SlotsFound,
)
from agent.core.dialog.machine import Dialog, DialogSettings, ProviderInfo, State
from agent.core.understanding import Entity, Understanding
from agent.runtime.practice_data import (
    CallServices,
    FakePatient,
    InMemoryDirectory,
    InMemoryScheduler,
    PatientDirectory,
    demo_services,
)

if TYPE_CHECKING:
    from agent.adapters.store import patients, scheduling

    def _store_scheduler_fits(s: scheduling.PgScheduler) -> scheduling.Scheduler:
        """mypy checks that CallServices can run on the PostgreSQL scheduler."""
        return s

    def _store_directory_fits(d: patients.PgPatientDirectory) -> PatientDirectory:
        """mypy checks that the PostgreSQL directory can be passed where the dialog's is wanted."""
        return d


PRACTICE = PracticeConfig(cancellation_policy="Please give us a day's notice.")
TZ = ZoneInfo(PRACTICE.timezone)
# Friday 27 November 2026, 10:00 in New York.
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
ACTOR = "agent:test"


def services() -> CallServices:
    return demo_services(PRACTICE, NOW)


async def test_lookup_matches_name_and_dob_not_case_or_punctuation() -> None:
    s = services()
    found = await s.execute(LookupPatient("MARY  jones.", "1962-03-04"), now=NOW, actor=ACTOR)
    assert isinstance(found, PatientLookedUp) and found.found
    assert found.patient_id == "demo-1" and found.medications == ("lisinopril",)
    wrong_dob = await s.execute(LookupPatient("Mary Jones", "1962-03-05"), now=NOW, actor=ACTOR)
    assert isinstance(wrong_dob, PatientLookedUp) and not wrong_dob.found
    garbled = await s.execute(LookupPatient("Mary Jones", "not a date"), now=NOW, actor=ACTOR)
    assert isinstance(garbled, PatientLookedUp) and not garbled.found and not garbled.failed


async def test_other_hypotheses_of_the_name_are_tried_with_the_same_birth_date() -> None:
    s = services()
    heard = LookupPatient("Robert Chin", "1948-11-12", other_names=("Proper Chance", "Robert Chen"))
    found = await s.execute(heard, now=NOW, actor=ACTOR)
    assert isinstance(found, PatientLookedUp) and found.patient_id == "demo-2"
    # Another hypothesis is no shortcut past the birth date.
    wrong = LookupPatient("Robert Chin", "1948-11-13", other_names=("Robert Chen",))
    missed = await s.execute(wrong, now=NOW, actor=ACTOR)
    assert isinstance(missed, PatientLookedUp) and not missed.found


async def test_caller_number_only_breaks_a_tie() -> None:
    twins = [
        FakePatient("a", "Sam Lee", date(1990, 1, 1), "5550000001"),
        FakePatient("b", "Sam Lee", date(1990, 1, 1), "5550000002"),
    ]
    s = CallServices(InMemoryDirectory(twins), InMemoryScheduler(PRACTICE, NOW.date()), PRACTICE)
    hint = await s.execute(
        LookupPatient("Sam Lee", "1990-01-01", "+15550000002"), now=NOW, actor=ACTOR
    )
    assert isinstance(hint, PatientLookedUp) and hint.patient_id == "b"
    # The number alone proves nothing: a wrong birth date with the right number is not found.
    wrong = await s.execute(
        LookupPatient("Sam Lee", "1990-01-02", "5550000002"), now=NOW, actor=ACTOR
    )
    assert isinstance(wrong, PatientLookedUp) and not wrong.found


async def test_find_slots_honours_day_time_provider_and_exclusions() -> None:
    s = services()
    prefs = SlotPreferences(dates=("2026-12-01",), not_before="08:00", not_after="12:00")
    found = await s.execute(FindSlots("patel", "follow-up", prefs), now=NOW, actor=ACTOR)
    assert isinstance(found, SlotsFound) and 1 <= len(found.slots) <= 3
    for slot in found.slots:
        local = slot.starts_at.astimezone(TZ)
        assert local.date() == date(2026, 12, 1) and 8 <= local.hour < 12
        assert slot.provider_id == "patel" and slot.provider_name == "Doctor Patel"
    times = [x.starts_at for x in found.slots]
    assert all(b - a >= timedelta(hours=1) for a, b in zip(times, times[1:], strict=False)), (
        "offer times that differ"
    )
    again = await s.execute(
        FindSlots(
            "patel",
            "follow-up",
            SlotPreferences(**{**prefs.__dict__, "exclude": (found.slots[0].id,)}),
        ),
        now=NOW,
        actor=ACTOR,
    )
    assert isinstance(again, SlotsFound) and found.slots[0] not in again.slots


async def test_near_puts_the_wished_time_first() -> None:
    s = services()
    prefs = SlotPreferences(dates=("2026-12-02",), near="10:40")
    found = await s.execute(FindSlots("nguyen", "follow-up", prefs), now=NOW, actor=ACTOR)
    assert isinstance(found, SlotsFound) and found.slots
    first = found.slots[0].starts_at.astimezone(TZ)
    assert abs((first.hour * 60 + first.minute) - (10 * 60 + 40)) <= 20


async def test_no_double_booking_when_two_calls_race_for_one_slot() -> None:
    s = services()
    found = await s.execute(FindSlots("", "follow-up"), now=NOW, actor=ACTOR)
    assert isinstance(found, SlotsFound)
    slot = found.slots[0]
    results = await asyncio.gather(
        s.execute(BookSlot(slot, "demo-1", "follow-up"), now=NOW, actor="agent:a"),
        s.execute(BookSlot(slot, "demo-2", "follow-up"), now=NOW, actor="agent:b"),
    )
    assert sorted(isinstance(r, Booked) and r.ok for r in results) == [False, True]
    later = await s.execute(FindSlots("", "follow-up"), now=NOW, actor=ACTOR)
    assert isinstance(later, SlotsFound) and slot not in later.slots


async def test_list_cancel_and_move_only_the_callers_own_appointments() -> None:
    s = services()
    listed = await s.execute(ListAppointments("demo-1"), now=NOW, actor=ACTOR)
    assert isinstance(listed, AppointmentsListed) and len(listed.appointments) == 1
    appt = listed.appointments[0]
    assert appt.slot.starts_at > NOW
    stolen = await s.execute(CancelAppointment(appt.id, "demo-2"), now=NOW, actor=ACTOR)
    assert isinstance(stolen, AppointmentCancelled) and not stolen.ok
    free = await s.execute(FindSlots(appt.slot.provider_id, "follow-up"), now=NOW, actor=ACTOR)
    assert isinstance(free, SlotsFound)
    moved = await s.execute(
        RescheduleAppointment(appt.id, "demo-1", free.slots[0]), now=NOW, actor=ACTOR
    )
    assert isinstance(moved, Rescheduled) and moved.ok and moved.appointment is not None
    assert moved.appointment.slot.id == free.slots[0].id
    listed = await s.execute(ListAppointments("demo-1"), now=NOW, actor=ACTOR)
    assert isinstance(listed, AppointmentsListed)
    assert [a.slot.id for a in listed.appointments] == [free.slots[0].id]
    gone = await s.execute(
        CancelAppointment(listed.appointments[0].id, "demo-1"), now=NOW, actor=ACTOR
    )
    assert isinstance(gone, AppointmentCancelled) and gone.ok


class _DownDirectory:
    async def find(self, name: str, dob: date, *, actor: str, now: datetime) -> list[FakePatient]:
        raise ConnectionError(f"database unreachable while looking for {name}")


async def test_backend_failure_is_a_failed_result_and_logs_no_patient_data() -> None:
    s = CallServices(_DownDirectory(), InMemoryScheduler(PRACTICE, NOW.date()), PRACTICE)
    with capture_logs() as logs:
        result = await s.execute(LookupPatient("Mary Jones", "1962-03-04"), now=NOW, actor=ACTOR)
    assert isinstance(result, PatientLookedUp) and result.failed and not result.found
    assert logs and "Mary" not in repr(logs) and "1962" not in repr(logs)


# ---------------------------------------------------------------------------------------------
# The dialog and the services together, as the call session runs them.

SETTINGS = DialogSettings(
    greeting="Hello.",
    providers=tuple(ProviderInfo(p.id, p.name) for p in PRACTICE.providers),
    cancellation_policy=PRACTICE.cancellation_policy,
)


def heard(text: str, **values: object) -> Heard:
    ents = [Entity(label, text, value) for label, value in values.items()]
    return Heard(NOW, Understanding(text, "en", "message", 0.7, "routine", [], ents))


async def turn(d: Dialog, s: CallServices, event: object) -> list[Command]:
    """One caller turn: hand the event to the dialog and answer its data commands, as
    ``CallSession._execute`` does."""
    out = d.handle(event)  # type: ignore[arg-type]
    said: list[Command] = list(out)
    while out and isinstance(
        out[-1],
        LookupPatient
        | FindSlots
        | BookSlot
        | ListAppointments
        | CancelAppointment
        | RescheduleAppointment,
    ):
        out = d.handle(await s.execute(out[-1], now=NOW, actor=ACTOR))
        said += out
    return said


def text(out: list[Command]) -> str:
    return " ".join(c.text for c in out if isinstance(c, Say))


async def test_booking_then_cancelling_in_one_call_against_the_schedule() -> None:
    s = services()
    d = Dialog(SETTINGS)
    d.handle(CallStarted(NOW, "5551234567"))
    book = Understanding("i need an appointment for a checkup", "en", "schedule", 0.9, "routine")
    await turn(d, s, Heard(NOW, book))
    await turn(d, s, heard("mary jones"))
    out = await turn(d, s, heard("march 4 1962", dob="1962-03-04"))
    assert "particular provider" in text(out), text(out)
    await turn(d, s, heard("doctor nguyen", provider="nguyen"))
    out = await turn(
        d,
        s,
        heard(
            "tuesday afternoon",
            date="2026-12-01",
            part_of_day={"part": "afternoon", "start": "12:00", "end": "17:00"},
        ),
    )
    assert "Tuesday the 1st at" in text(out) and "Doctor Nguyen" in text(out)
    out = await turn(d, s, heard("the first one"))
    assert d.state is State.CONFIRM
    out = await turn(d, s, heard("no, wednesday", yes_no=False, date="2026-12-02"))
    assert "Wednesday the 2nd" in text(out)
    out = await turn(d, s, heard("yes", yes_no=True))
    booked = next(c for c in out if isinstance(c, SaveRecord))
    assert booked.data["action"] == "booked" and booked.data["provider"] == "nguyen"
    listed = await s.execute(ListAppointments("demo-1"), now=NOW, actor=ACTOR)
    assert isinstance(listed, AppointmentsListed) and len(listed.appointments) == 2
    assert any(
        a.slot.starts_at.astimezone(TZ).date() == date(2026, 12, 2) for a in listed.appointments
    )
    # Second request, same call: no second identification; two appointments to choose from.
    out = await turn(d, s, Heard(NOW, Understanding("cancel one", "en", "cancel", 0.9, "routine")))
    assert "2 appointments" in text(out)
    out = await turn(d, s, heard("the second one"))
    assert "day's notice" in text(out)
    out = await turn(d, s, heard("yes", yes_no=True))
    assert "is cancelled" in text(out)
    listed = await s.execute(ListAppointments("demo-1"), now=NOW, actor=ACTOR)
    assert isinstance(listed, AppointmentsListed) and len(listed.appointments) == 1


def test_dialog_settings_carry_the_practice_workflow_config() -> None:
    from dataclasses import replace

    from agent.config import Config
    from agent.runtime.call import dialog_settings

    cfg = Config()
    cfg = replace(cfg, practice=replace(cfg.practice, self_care={"cough": "Rest."}))
    settings = dialog_settings(cfg)
    assert "oxycodone" in settings.controlled_substances
    assert [p.id for p in settings.providers] == [p.id for p in cfg.practice.providers]
    assert settings.billing == cfg.transfer.billing and settings.self_care == {"cough": "Rest."}
