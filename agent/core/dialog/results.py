"""The directory's and the schedule's answers to the data commands a workflow sent.

Each data command is answered by exactly one result event (``commands.DataResult``). ``failed``
means the directory or schedule could not be reached: the request becomes a message instead, so
nothing the caller asked for is lost (the record writer spools it if the database is away too).
"""

from __future__ import annotations

from agent.core.dialog.commands import (
    Appointment,
    AppointmentCancelled,
    AppointmentsListed,
    Booked,
    Command,
    PatientLookedUp,
    Rescheduled,
    SaveRecord,
    Say,
    Slot,
    SlotPreferences,
    SlotsFound,
)
from agent.core.dialog.context import Context
from agent.core.dialog.workflows import advance, ask, declined, finish


def looked_up(d: Context, ev: PatientLookedUp) -> list[Command]:
    t = d.task
    assert t is not None
    if ev.failed:
        return _system_down(d)
    if ev.found:
        d.patient_id = ev.patient_id
        d.medications = ev.medications
        d.id_attempts = 0
        if t.kind == "refill" and "medication" in t.slots and d.medications:
            t.slots["on_medication_list"] = t.slots["medication"] in d.medications
        return advance(d)
    d.id_attempts += 1
    if d.id_attempts < d.settings.max_id_attempts:
        d.identity = {}
        d.other_names = ()
        return advance(d)
    if t.kind == "schedule":
        # Perhaps new to the practice: collect their details for a first visit (the name and
        # birth date they gave are kept for the front desk, marked as not found).
        t.kind = "new_patient"
        t.slots = {"not_found_in_directory": True}
        return [
            Say(d.p.STATIC["id_failed_new_patient"], "id_failed_new_patient"),
            *advance(d),
        ]
    d.pending = {**t.record(), **d.who(), "identity_not_confirmed": True}
    d.drop_task("identity_not_confirmed")
    return d.take_message(t.kind, "id_failed_message", keep_pending=True)


def slots_found(d: Context, ev: SlotsFound) -> list[Command]:
    t = d.task
    assert t is not None
    s = t.slots
    if ev.failed:
        return _system_down(d)
    want = s.pop("want_time", None)
    if want is not None:
        same = [x for x in ev.slots if x.starts_at.strftime("%H:%M") == want]
        if same:
            s["slot"] = same[0]
            return advance(d)
    if ev.slots:
        t.offered = ev.slots[:3]
        return ask(d, "slot", None)
    t.empty_searches += 1
    prefs: SlotPreferences = s.pop("preferences", SlotPreferences())
    anything = not (prefs.dates or prefs.weekdays or prefs.not_before or prefs.not_after)
    if anything or t.empty_searches >= 2:
        d.pending = {**t.record(), "no_openings": True}
        d.drop_task("no_openings")
        return d.take_message(t.kind, "no_openings", keep_pending=True)
    return ask(d, "preferences", "no_openings_then")


def listed(d: Context, ev: AppointmentsListed) -> list[Command]:
    t = d.task
    assert t is not None
    if ev.failed:
        return _system_down(d)
    if not ev.appointments:
        d.requests.append({"intent": t.kind, "completed": False, "why": "no_appointments"})
        d.task = None
        return [
            Say(d.p.STATIC["no_appointments"], "no_appointments"),
            *d.anything_else(),
        ]
    t.appointments = ev.appointments[:3]
    if len(t.appointments) == 1:
        t.slots["appointment"] = t.appointments[0]
        if t.kind == "cancel":
            return advance(d)  # the read-back names it
        only = d.p.appointments_listed([d.sp.spoken_slot(t.appointments[0].slot)])
        return [Say(only), *advance(d)]
    return advance(d)


def written(d: Context, ev: Booked | Rescheduled | AppointmentCancelled) -> list[Command]:
    t = d.task
    assert t is not None
    s = t.slots
    if ev.failed:
        return _system_down(d)
    if not ev.ok:
        if isinstance(ev, AppointmentCancelled):
            return _system_down(d)
        # Another caller got the slot first (the store refuses double booking): look again.
        taken: Slot = s.pop("slot")
        s["preferences"] = declined(s.get("preferences", SlotPreferences()), (taken.id,))
        return [Say(d.p.STATIC["slot_taken"], "slot_taken"), *advance(d)]
    data = {**t.record(), **d.who()}
    if isinstance(ev, Booked):
        when = d.sp.spoken_slot(s["slot"])
        d.just_booked = ev.appointment
        data.update(action="booked", appointment_id=ev.appointment.id if ev.appointment else "")
        return finish(d, SaveRecord("appointment", data), [Say(d.p.booked(when))])
    if isinstance(ev, Rescheduled):
        when = d.sp.spoken_slot(s["slot"])
        moved: Appointment = s["appointment"]
        d.just_booked = Appointment(moved.id, s["slot"], moved.appointment_type)
        data.update(action="rescheduled")
        return finish(d, SaveRecord("appointment", data), [Say(d.p.rescheduled(when))])
    when = d.sp.spoken_slot(s["appointment"].slot)
    data.update(action="cancelled")
    return finish(d, SaveRecord("appointment", data), [Say(d.p.cancelled(when))])


def _system_down(d: Context) -> list[Command]:
    """The directory or schedule failed or timed out ("I can't reach our records right now"): a
    message instead, so the request is not lost."""
    assert d.task is not None
    d.pending = {**d.task.record(), "system_unavailable": True}
    d.drop_task("system_unavailable")
    return d.take_message(d.pending["intent"], "system_down", keep_pending=True)
