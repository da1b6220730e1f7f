"""The clinical workflows of the dialog, turn by turn: pure, no loop, no clock, no database.

The call session's side (directory, schedule) is played by the test: each data command the dialog
returns is answered with the result event the services would give.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.core.dialog.commands import (
    Appointment,
    AppointmentCancelled,
    AppointmentsListed,
    Booked,
    BookSlot,
    CallerHungUp,
    CallStarted,
    CancelAppointment,
    Command,
    DtmfReceived,
    FindSlots,
    HandBack,
    Hangup,
    Heard,
    ListAppointments,
    Listen,
    LookupPatient,
    NothingHeard,
    PatientLookedUp,
    RescheduleAppointment,
    Rescheduled,
    SaveRecord,
    Say,
    Slot,
    SlotsFound,
    Transfer,
    TransferEnded,
)
from agent.core.dialog.machine import Dialog, DialogSettings, ProviderInfo, State
from agent.core.understanding import Entity, RedFlag, Understanding

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
SETTINGS = DialogSettings(
    greeting="Hello, practice.",
    on_call=("PJSIP/clinician100", "PJSIP/clinician101"),
    front_desk="PJSIP/frontdesk",
    billing="PJSIP/billing",
    providers=(ProviderInfo("patel", "Doctor Patel"), ProviderInfo("nguyen", "Doctor Nguyen")),
    cancellation_policy="Please give us 24 hours notice, or a fee may apply.",
    controlled_substances=frozenset({"oxycodone", "alprazolam"}),
    self_care={"sore throat": "Warm drinks and rest can help a sore throat."},
)


def slot(i: int, day: int, hh: int, mm: int = 0, provider: str = "patel") -> Slot:
    names = {"patel": "Doctor Patel", "nguyen": "Doctor Nguyen"}
    return Slot(f"s{i}", provider, names[provider], datetime(2026, 12, day, hh, mm))


# Tuesday 1 December 2026, Wednesday the 2nd…
TUE_0900, TUE_1040, TUE_1120 = slot(1, 1, 9), slot(2, 1, 10, 40), slot(3, 1, 11, 20)
WED_1040 = slot(4, 2, 10, 40)


def heard(
    text: str,
    intent: str = "message",
    *,
    conf: float = 0.9,
    urgency: str = "routine",
    flags: tuple[RedFlag, ...] = (),
    **values: Any,
) -> Heard:
    """An utterance with entities given as label=value (placed over the whole text)."""
    ents = [Entity(label, text, value, 0, 0) for label, value in values.items()]
    return Heard(
        NOW,
        Understanding(text, "en", intent, conf, urgency, list(flags), ents),  # type: ignore[arg-type]
    )


def start(office_open: bool = True) -> Dialog:
    d = Dialog(SETTINGS)
    d.handle(CallStarted(NOW, caller_number="5551234567", office_open=office_open))
    return d


def said(out: list[Command]) -> str:
    return " ".join(c.text for c in out if isinstance(c, Say))


def only(out: list[Command], kind: type) -> Any:
    found = [c for c in out if isinstance(c, kind)]
    assert len(found) == 1, (kind, out)
    return found[0]


def identify(d: Dialog, first: Heard, *, medications: tuple[str, ...] = ()) -> list[Command]:
    """Name, date of birth, directory: found."""
    out = d.handle(first)
    assert "first and last name" in said(out) and d.state is State.ASK
    out = d.handle(heard("jane doe"))
    assert "date of birth" in said(out)
    out = d.handle(heard("march fourth nineteen sixty two", dob="1962-03-04"))
    lookup = only(out, LookupPatient)
    assert (lookup.name, lookup.dob, lookup.caller_number) == (
        "Jane Doe",
        "1962-03-04",
        "5551234567",
    )
    assert d.state is State.LOOKING_UP
    return d.handle(PatientLookedUp(NOW, True, "p-1", medications))


def test_book_with_a_correction_then_write() -> None:
    d = start()
    out = identify(d, heard("i'd like to make an appointment for a checkup", "schedule"))
    assert "particular provider" in said(out)
    out = d.handle(heard("doctor patel please", provider="patel"))
    assert "day and time" in said(out)
    out = d.handle(
        heard(
            "tuesday morning",
            date="2026-12-01",
            part_of_day={"part": "morning", "start": "08:00", "end": "12:00"},
        )
    )
    find = only(out, FindSlots)
    assert find.provider_id == "patel" and find.appointment_type == "follow-up"
    assert find.preferences.dates == ("2026-12-01",) and find.preferences.not_after == "12:00"
    out = d.handle(SlotsFound(NOW, (TUE_0900, TUE_1040, TUE_1120)))
    offer = said(out)
    assert "Tuesday the 1st at 9 AM with Doctor Patel" in offer and "11:20 AM" in offer
    out = d.handle(heard("the second one"))
    assert "Tuesday the 1st at 10:40 AM with Doctor Patel" in said(out) and "right" in said(out)
    assert d.state is State.CONFIRM and isinstance(out[-1], Listen) and out[-1].expect == "yes_no"
    # "No, Wednesday": the day changes, the time is kept if it is free.
    out = d.handle(heard("no wednesday", yes_no=False, date="2026-12-02"))
    find = only(out, FindSlots)
    assert find.preferences.dates == ("2026-12-02",) and find.preferences.near == "10:40"
    assert "s2" in find.preferences.exclude
    out = d.handle(SlotsFound(NOW, (slot(9, 2, 9), WED_1040)))
    assert "Wednesday the 2nd at 10:40 AM" in said(out) and d.state is State.CONFIRM
    out = d.handle(heard("yes", yes_no=True))
    book = only(out, BookSlot)
    assert book.slot == WED_1040 and book.patient_id == "p-1"
    out = d.handle(Booked(NOW, True, Appointment("a-9", WED_1040, "follow-up")))
    rec = only(out, SaveRecord)
    assert rec.kind == "appointment" and rec.data["action"] == "booked"
    assert rec.data["appointment_id"] == "a-9" and rec.data["verified"] is True
    assert "all set for Wednesday the 2nd" in said(out) and d.state is State.ANYTHING_ELSE


def test_slot_taken_by_another_caller_searches_again() -> None:
    d = start()
    identify(
        d, heard("book an appointment with doctor patel for my knee", "schedule", provider="patel")
    )
    d.handle(heard("any time is fine"))
    d.handle(SlotsFound(NOW, (TUE_0900,)))
    out = d.handle(heard("yes that works", yes_no=True))
    assert d.state is State.CONFIRM, said(out)
    d.handle(DtmfReceived(NOW, "1"))
    out = d.handle(Booked(NOW, False))
    assert "just taken" in said(out)
    find = only(out, FindSlots)
    assert "s1" in find.preferences.exclude


def test_offered_slot_chosen_by_key_and_none_of_those_asks_again() -> None:
    d = start()
    identify(d, heard("appointment please, for a checkup", "schedule"))
    d.handle(heard("anyone"))
    d.handle(heard("the earliest you have"))
    d.handle(SlotsFound(NOW, (TUE_0900, TUE_1040)))
    out = d.handle(heard("none of those work"))
    assert "day and time" in said(out) and d.state is State.ASK
    out = d.handle(heard("friday", date="2026-12-04"))
    assert set(only(out, FindSlots).preferences.exclude) == {"s1", "s2"}
    d.handle(SlotsFound(NOW, (slot(7, 4, 14), slot(8, 4, 15))))
    out = d.handle(DtmfReceived(NOW, "2"))
    assert "Friday the 4th at 3 PM" in said(out)


def test_reschedule_own_appointment() -> None:
    d = start()
    out = identify(d, heard("i need to move my appointment", "reschedule"))
    assert only(out, ListAppointments).patient_id == "p-1"
    appts = (Appointment("a-1", TUE_0900, "follow-up"), Appointment("a-2", slot(5, 10, 14), "x"))
    out = d.handle(AppointmentsListed(NOW, appts))
    assert "2 appointments" in said(out)
    out = d.handle(heard("the first one"))
    assert "day and time" in said(out)
    out = d.handle(heard("wednesday", date="2026-12-02"))
    assert only(out, FindSlots).provider_id == "patel"
    d.handle(SlotsFound(NOW, (WED_1040,)))
    out = d.handle(heard("yes", yes_no=True))
    assert "from Tuesday the 1st at 9 AM" in said(out) and "to Wednesday the 2nd" in said(out)
    out = d.handle(heard("yes", yes_no=True))
    move = only(out, RescheduleAppointment)
    assert (move.appointment_id, move.slot) == ("a-1", WED_1040)
    out = d.handle(Rescheduled(NOW, True, Appointment("a-1", WED_1040, "follow-up")))
    assert only(out, SaveRecord).data["action"] == "rescheduled"


def test_cancel_speaks_the_policy_before_confirming() -> None:
    d = start()
    identify(d, heard("cancel my appointment", "cancel"))
    out = d.handle(AppointmentsListed(NOW, (Appointment("a-1", TUE_1040, "follow-up"),)))
    text = said(out)
    assert "Tuesday the 1st at 10:40 AM" in text and "24 hours notice" in text
    assert d.state is State.CONFIRM
    out = d.handle(heard("yes please", yes_no=True))
    assert only(out, CancelAppointment).appointment_id == "a-1"
    out = d.handle(AppointmentCancelled(NOW, True))
    assert "is cancelled" in said(out)
    assert only(out, SaveRecord).data["action"] == "cancelled"


def test_no_upcoming_appointments_to_cancel() -> None:
    d = start()
    identify(d, heard("cancel my appointment", "cancel"))
    out = d.handle(AppointmentsListed(NOW, ()))
    assert "don't see any upcoming" in said(out) and d.state is State.ANYTHING_ELSE


def test_refill_with_identity_failure_then_success() -> None:
    d = start()
    d.handle(heard("i need a refill of my lisinopril", "refill", medication="lisinopril"))
    d.handle(heard("jane do"))
    d.handle(heard("march 4 1962", dob="1962-03-04"))
    out = d.handle(PatientLookedUp(NOW, False))
    assert "try once more" in said(out) and d.state is State.ASK
    d.handle(heard("jane doe"))
    out = d.handle(heard("march 4 1962", dob="1962-03-04"))
    assert only(out, LookupPatient).name == "Jane Doe"
    out = d.handle(PatientLookedUp(NOW, True, "p-1", ("lisinopril", "metformin")))
    # The medication was said up front; next comes the strength.
    assert "strength" in said(out)
    d.handle(heard("ten milligrams", dose={"amount": 10.0, "unit": "mg"}))
    d.handle(heard("the cvs on main street", pharmacy={"chain": "CVS", "location": "Main Street"}))
    out = d.handle(heard("about three days"))
    assert "allergies" in said(out)
    out = d.handle(heard("no allergies", yes_no=False))
    readback = said(out)
    assert "lisinopril 10 milligrams" in readback and "CVS on Main Street" in readback
    assert "3 days" in readback
    out = d.handle(
        heard("no it's twenty milligrams", yes_no=False, dose={"amount": 20, "unit": "mg"})
    )
    assert "lisinopril 20 milligrams" in said(out) and d.state is State.CONFIRM
    out = d.handle(heard("yes", yes_no=True))
    rec = only(out, SaveRecord)
    assert rec.kind == "refill" and rec.data["strength"] == "20 milligrams"
    assert rec.data["on_medication_list"] is True and rec.data["patient_id"] == "p-1"
    assert rec.data["allergies"] == "none"
    assert "with the clinician for review" in said(out)
    assert "will be" not in said(out), "never promise the refill"


def test_identity_fails_twice_refill_becomes_a_message_for_staff() -> None:
    d = start()
    d.handle(heard("refill please", "refill"))
    for _ in range(2):
        d.handle(heard("john smith"))
        d.handle(heard("june 1 1970", dob="1970-06-01"))
        out = d.handle(PatientLookedUp(NOW, False))
    assert "couldn't confirm" in said(out) and d.state is State.MESSAGE
    out = d.handle(heard("please call me about my pills"))
    rec = only(out, SaveRecord)
    assert rec.kind == "message" and rec.data["identity_not_confirmed"] is True
    assert not rec.data["verified"] and rec.data["intent"] == "refill"


def test_controlled_substance_is_never_promised() -> None:
    d = start()
    out = identify(d, heard("i need more oxycodone", "refill", medication="oxycodone"))
    assert d.state is State.ANYTHING_ELSE
    rec = only(out, SaveRecord)
    assert rec.kind == "message" and rec.data["controlled_substance"] is True
    assert "clinician to review" in said(out)
    assert not any(isinstance(c, SaveRecord) and c.kind == "refill" for c in out)


def test_urgent_transfer_summary_says_verified_and_unanswered_becomes_urgent_message() -> None:
    d = start()
    identify(d, heard("refill please", "refill"))
    rash = RedFlag("fever_with_rash", "urgent", "fever with rash", "fever and a rash")
    out = d.handle(heard("she has a fever and a rash", "symptoms", urgency="urgent", flags=(rash,)))
    t = only(out, Transfer)
    assert t.targets == SETTINGS.on_call
    assert "verified patient, Jane Doe" in t.summary and "5 5 5, 1 2 3, 4 5 6 7" in t.summary
    out = d.handle(TransferEnded(NOW, "busy", "PJSIP/clinician101"))
    assert d.state is State.URGENT_MESSAGE and "urgent message" in said(out)
    out = d.handle(heard("the rash is spreading, call me back"))
    assert only(out, SaveRecord).urgent


def test_emergency_mid_booking_comes_first_and_drops_the_booking() -> None:
    d = start()
    identify(d, heard("appointment", "schedule"))
    chest = RedFlag("chest_pain", "emergency", "chest pain", "chest pain")
    out = d.handle(heard("wait, i have chest pain", urgency="emergency", flags=(chest,)))
    assert isinstance(out[0], Say) and "9 1 1" in out[0].text and out[0].barge_in is False
    assert d.task is None and d.state is State.EMERGENCY_OFFER


def test_billing_during_hours_transfers_and_after_hours_takes_a_message() -> None:
    d = start(office_open=True)
    out = d.handle(heard("question about my bill", "billing"))
    assert only(out, Transfer).targets == ("PJSIP/billing",)
    out = d.handle(TransferEnded(NOW, "no_answer", "PJSIP/billing"))
    assert d.state is State.MESSAGE and "nobody is free" in said(out)
    d = start(office_open=False)
    out = d.handle(heard("question about my bill", "billing"))
    assert not any(isinstance(c, Transfer) for c in out)
    assert "billing office is closed" in said(out)
    out = d.handle(heard("jane doe, why was i charged twice"))
    assert only(out, SaveRecord).data["intent"] == "billing"


def test_staff_after_hours_is_a_message() -> None:
    d = start(office_open=False)
    out = d.handle(heard("can i talk to a person", "speak_to_staff"))
    assert not any(isinstance(c, Transfer) for c in out) and d.state is State.MESSAGE


def test_test_results_are_never_read_out() -> None:
    d = start()
    out = identify(d, heard("are my blood test results back", "test_results"))
    assert "can't give test results" in said(out)
    out = d.handle(heard("this number is fine"))
    assert "5 5 5, 1 2 3, 4 5 6 7" in said(out)
    out = d.handle(heard("yes", yes_no=True))
    rec = only(out, SaveRecord)
    assert rec.kind == "message" and rec.data["intent"] == "test_results"
    assert "clinician to call you" in said(out)


def test_new_patient_request_collects_details() -> None:
    d = start()
    out = d.handle(heard("i'm a new patient and need an appointment", "schedule"))
    assert not any(isinstance(c, LookupPatient) for c in out)
    d.handle(heard("my name is ann lee", person="Ann Lee"))
    out = d.handle(heard("july 9 1990", dob="1990-07-09"))
    assert "call you back" in said(out)
    out = d.handle(heard("555 010 0199", phone="5550100199"))
    assert "visit for" in said(out)
    d.handle(heard("to establish care and a checkup"))
    out = d.handle(heard("blue cross blue shield"))
    assert "member ID" in said(out)
    d.handle(heard("x y z 1 2 3 4 5"))
    out = d.handle(heard("weekday mornings"))
    assert "Ann Lee" in said(out) and "5 5 5, 0 1 0, 0 1 9 9" in said(out)
    out = d.handle(DtmfReceived(NOW, "1"))
    rec = only(out, SaveRecord)
    assert rec.kind == "appointment" and rec.data["request"] == "new_patient_appointment"
    assert rec.data["name"] == "Ann Lee" and rec.data["dob"] == "1990-07-09"
    assert rec.data["reason"] == "to establish care and a checkup"
    assert rec.data["insurance"] == "blue cross blue shield" and rec.data["member_id"]


def test_unknown_caller_asking_to_book_is_offered_a_new_patient_request() -> None:
    d = start()
    d.handle(heard("book an appointment", "schedule"))
    for _ in range(2):
        d.handle(heard("ann lee"))
        d.handle(heard("july 9 1990", dob="1990-07-09"))
        out = d.handle(PatientLookedUp(NOW, False))
    assert "couldn't find your record" in said(out) and d.task is not None
    assert d.task.kind == "new_patient" and "call you back" in said(out)


def test_routine_symptoms_become_a_structured_nurse_message_with_approved_self_care() -> None:
    d = start()
    out = d.handle(heard("i have had a sore throat for a while", "symptoms"))
    assert "chest pain, trouble breathing" in said(out) and isinstance(out[-1], Listen)
    assert out[-1].expect == "yes_no"
    out = d.handle(heard("no", yes_no=False))
    assert "when did it start" in said(out).lower()
    d.handle(heard("since monday"))
    out = d.handle(heard("maybe a four"))
    assert "allergies" in said(out)
    out = d.handle(heard("i'm allergic to penicillin", allergy=("penicillin",)))
    assert "call you back" in said(out)
    out = d.handle(heard("yes this number"))
    text = said(out)
    assert "sore throat" in text and "Severity 4" in text
    out = d.handle(heard("yes", yes_no=True))
    rec = only(out, SaveRecord)
    assert rec.data["queue"] == "nurse_line" and rec.data["severity"] == 4 and not rec.urgent
    assert rec.data["allergies"] == "penicillin"
    assert "Warm drinks" in said(out)


def test_silent_caller_mid_task_hears_the_question_again_then_staff() -> None:
    d = start()
    d.handle(heard("refill", "refill"))
    out = d.handle(NothingHeard(NOW))
    assert "didn't hear" in said(out) and "first and last name" in said(out)
    d.handle(NothingHeard(NOW))
    out = d.handle(NothingHeard(NOW))
    assert isinstance(out[-1], HandBack)
    partial = only(out, SaveRecord)
    assert partial.data["partial"] is True and partial.data["intent"] == "refill"


def test_hangup_mid_booking_keeps_the_partial_request() -> None:
    d = start()
    identify(d, heard("appointment with doctor nguyen", "schedule", provider="nguyen"))
    d.handle(heard("thursday afternoon", date="2026-12-03"))
    out = d.handle(CallerHungUp(NOW))
    msg = next(c for c in out if isinstance(c, SaveRecord) and c.kind == "message")
    assert msg.data["partial"] is True and msg.data["intent"] == "schedule"
    assert msg.data["provider"] == "nguyen" and msg.data["preferences"]["dates"] == ["2026-12-03"]
    assert d.state is State.ENDED


def test_two_requests_identity_asked_once() -> None:
    d = start()
    identify(d, heard("cancel my appointment", "cancel"))
    d.handle(AppointmentsListed(NOW, (Appointment("a-1", TUE_1040, "follow-up"),)))
    d.handle(heard("yes", yes_no=True))
    out = d.handle(AppointmentCancelled(NOW, True))
    assert d.state is State.ANYTHING_ELSE
    out = d.handle(
        heard("yes, i also need a refill of metformin", "refill", medication="metformin")
    )
    assert not any(isinstance(c, LookupPatient) for c in out)
    assert "strength" in said(out)
    assert [r["intent"] for r in d.requests] == ["cancel"]


def test_asking_for_a_person_mid_task_changes_topic() -> None:
    d = start()
    identify(d, heard("appointment", "schedule"))
    out = d.handle(heard("actually can i just talk to a person", "speak_to_staff", conf=0.95))
    assert only(out, Transfer).targets == ("PJSIP/frontdesk",)
    assert d.requests[0] == {"intent": "schedule", "completed": False, "why": "changed_topic"}


def test_unclear_confirmation_reprompts_with_keys_then_staff() -> None:
    d = start()
    identify(d, heard("cancel my appointment", "cancel"))
    d.handle(AppointmentsListed(NOW, (Appointment("a-1", TUE_1040, "follow-up"),)))
    out = d.handle(heard("hmm"))
    assert "press 1 for yes" in said(out)
    d.handle(heard("hmm"))
    out = d.handle(heard("hmm"))
    assert isinstance(out[-1], HandBack)


def test_scheduling_system_down_becomes_a_message() -> None:
    d = start()
    identify(d, heard("appointment for my blood pressure", "schedule"))
    d.handle(heard("anyone"))
    d.handle(heard("as soon as possible"))
    out = d.handle(SlotsFound(NOW, failed=True))
    assert d.state is State.MESSAGE and "can't reach our records" in said(out)
    out = d.handle(heard("please call me to book"))
    assert only(out, SaveRecord).data["system_unavailable"] is True


def test_goodbye_after_a_finished_task() -> None:
    d = start()
    identify(d, heard("cancel my appointment", "cancel"))
    d.handle(AppointmentsListed(NOW, (Appointment("a-1", TUE_1040, "follow-up"),)))
    d.handle(heard("yes", yes_no=True))
    d.handle(AppointmentCancelled(NOW, True))
    out = d.handle(heard("no thanks", yes_no=False))
    assert isinstance(out[-1], Hangup)


def test_no_to_a_cancellation_keeps_the_appointment_and_writes_nothing() -> None:
    d = start()
    identify(d, heard("cancel my appointment", "cancel"))
    d.handle(AppointmentsListed(NOW, (Appointment("a-1", TUE_1040, "follow-up"),)))
    out = d.handle(heard("no", yes_no=False))
    assert "left your appointment as it is" in said(out)
    assert not any(isinstance(c, CancelAppointment | SaveRecord) for c in out)
    assert d.state is State.ANYTHING_ELSE


def test_no_to_a_booking_read_back_asks_for_another_time_without_the_declined_one() -> None:
    d = start()
    identify(d, heard("appointment with doctor patel for a physical", "schedule", provider="patel"))
    d.handle(heard("whenever"))
    d.handle(SlotsFound(NOW, (TUE_0900,)))
    d.handle(heard("yes", yes_no=True))
    out = d.handle(heard("no", yes_no=False))
    assert "day and time" in said(out) and d.state is State.ASK
    out = d.handle(heard("thursday", date="2026-12-03"))
    assert "s1" in only(out, FindSlots).preferences.exclude


def test_a_patient_who_shares_a_providers_surname_is_still_heard_by_name() -> None:
    # Found by a scripted call: "Linda Garcia" came back from the NLU as the provider "garcia".
    d = start()
    out = d.handle(heard("i need my test results", "test_results"))
    assert "first and last name" in said(out)
    garcia = Entity("provider", "Garcia", "garcia", 6, 12)
    out = d.handle(
        Heard(NOW, Understanding("Linda Garcia", "en", "message", 0.2, "routine", [], [garcia]))
    )
    assert "date of birth" in said(out) and d.identity["name"] == "Linda Garcia"


def test_the_recognisers_other_hypotheses_of_the_name_go_with_the_lookup() -> None:
    d = start()
    d.handle(heard("i need a refill", "refill"))
    u = Understanding(
        "That's Robert Chin.",
        "en",
        "message",
        0.2,
        "routine",
        alternatives=("That's Robert Chen.", "Proper chance.", "This is Robert Chin."),
    )
    d.handle(Heard(NOW, u))
    out = d.handle(heard("november twelfth nineteen forty eight", dob="1948-11-12"))
    lookup = only(out, LookupPatient)
    assert lookup.name == "Robert Chin"
    assert lookup.other_names == ("Robert Chen", "Proper Chance")


def test_a_name_is_taken_from_another_hypothesis_when_the_best_one_is_not_a_name() -> None:
    # A rare name's best hypothesis may be one made-up word ("Faramiller." for "Sarah Miller.").
    d = start()
    d.handle(heard("i need a refill", "refill"))
    u = Understanding(
        "Faramiller.",
        "en",
        "message",
        0.2,
        "routine",
        alternatives=("Feremiller.", "Fara Miller.", "Sara Miller."),
    )
    out = d.handle(Heard(NOW, u))
    assert "date of birth" in said(out)
    assert d.identity["name"] == "Fara Miller" and d.other_names == ("Sara Miller",)
    # Nothing name-like anywhere: asked again.
    d = start()
    d.handle(heard("i need a refill", "refill"))
    u = Understanding("Hmm.", "en", "message", 0.2, "routine", alternatives=("Um.", "Hm"))
    assert "first and last name" in said(d.handle(Heard(NOW, u)))


def test_the_tail_of_a_split_yes_to_a_read_back_is_not_taken_as_a_new_answer() -> None:
    # "Yes, <pause> that's correct." reaches the dialog as two utterances.
    d = start()
    d.handle(heard("i have a question about my results", "test_results"))
    d.state, d.patient_id = State.ANYTHING_ELSE, "p-1"
    d.task = None
    out = d.handle(heard("That's correct.", yes_no=True))
    assert out == [Listen(expect="yes_no", timeout_s=SETTINGS.no_input_timeout_s)]
    assert d.state.value == "anything_else"
    out = d.handle(heard("No, that's all.", yes_no=False))
    assert only(out, Hangup) and d.state is State.ENDED


def test_a_free_text_answer_is_read_back_without_its_own_full_stop() -> None:
    d = start()
    identify(d, heard("i need a refill of lisinopril", "refill", medication="lisinopril"))
    d.handle(heard("ten milligrams", dose={"amount": 10.0, "unit": "mg"}))
    out = d.handle(heard("The corner pharmacy on Elm Street."))
    # A pharmacy that is no chain and none of the practice's: spelled once, then taken as said.
    assert "spell" in said(out)
    d.handle(heard("The corner pharmacy on Elm Street."))
    d.handle(heard("about 3 days"))
    out = d.handle(heard("none", yes_no=False))
    assert "sent to The corner pharmacy on Elm Street. You have" in said(out), said(out)


def test_yes_to_the_emergency_screening_question_gives_911_at_once() -> None:
    """A red flag the recogniser misheard ("I think it twice this morning") is caught by asking."""
    d = start()
    d.handle(heard("i have been feeling really strange all morning", "symptoms"))
    out = d.handle(heard("yes", yes_no=True))
    first = out[0]
    assert isinstance(first, Say) and "9 1 1" in first.text and first.barge_in is False
    rec = only(out, SaveRecord)
    assert rec.kind == "emergency" and "screening_yes" in rec.data["red_flags"]
    assert not any(isinstance(c, SaveRecord) and c.kind == "message" for c in out)


def test_unclear_answer_to_the_screening_question_is_asked_again() -> None:
    d = start()
    d.handle(heard("my knee has been sore since last week", "symptoms"))
    out = d.handle(heard("well it depends"))
    assert "chest pain, trouble breathing" in said(out) or "yes or no" in said(out).lower()


def test_only_answers_in_the_callers_own_words_are_open_to_a_second_listen() -> None:
    # The second recogniser re-hears turns where a caller tells what is wrong, never a name,
    # a date of birth or a number: those are details, not where an emergency is told.
    d = start()
    greeting_listen = Dialog(SETTINGS).handle(CallStarted(NOW, "5551234567", True))[-1]
    assert isinstance(greeting_listen, Listen) and not greeting_listen.detail
    out = d.handle(heard("i need a refill", "refill"))
    assert "first and last name" in said(out) and only(out, Listen).detail
    out = d.handle(NothingHeard(NOW))  # asked again: still a detail
    assert "first and last name" in said(out) and only(out, Listen).detail

    d = start()
    out = d.handle(heard("i have had a sore throat for a while", "symptoms"))
    screen = only(out, Listen)
    assert (screen.expect, screen.detail) == ("yes_no", False)
    # The screening question asked again after silence stays a yes/no question.
    assert only(d.handle(NothingHeard(NOW)), Listen).expect == "yes_no"
    out = d.handle(heard("no", yes_no=False))
    assert "when did it start" in said(out).lower()
    assert not only(out, Listen).detail  # "since I fainted this morning" is told, not a detail
    out = d.handle(heard("since monday"))
    assert only(out, Listen).detail  # the severity: a number
