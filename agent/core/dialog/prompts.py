"""Everything the agent says, written for the ear: short, one question at a time, no jargon.

Static prompts (no per-call values) have a key and are pre-rendered at start-up so they play at once.
"""

from __future__ import annotations

# key → text. Keys are stable: the prompt cache and the tests use them.
STATIC: dict[str, str] = {
    "sorry_transfer": "I'm sorry, something went wrong on my side. Let me put you through to our staff.",
    "didnt_catch": "Sorry, I didn't catch that. Could you tell me briefly what you're calling about?",
    "didnt_catch_again": "Sorry, I still didn't get that. You can also press zero to reach our staff.",
    "still_there": "Are you still there? Please tell me how I can help.",
    "yes_no_again": "Sorry, was that a yes or a no? You can press 1 for yes, or 2 for no.",
    "take_message": "I can take a message for the care team. Please tell me your name, your date of birth, and your message.",
    "message_saved": "Thank you. Your message is recorded, and the team will call you back. Is there anything else I can help with?",
    "anything_else": "Is there anything else I can help with?",
    "goodbye": "Thank you for calling. Goodbye.",
    "connecting_staff": "One moment, I'll put you through to our staff.",
    "connecting_front_desk": "One moment, I'll put you through to the front desk.",
    "connecting_on_call": "I'm connecting you to the on-call clinician now. Please stay on the line.",
    "urgent_connecting": "That needs a clinician's attention today. I'm connecting you to the on-call clinician now. Please stay on the line.",
    "emergency_offer": "Would you like me to connect you to the on-call clinician now?",
    "no_clinician": "I couldn't reach a clinician right now. I'll take an urgent message, and a clinician will call you back as soon as possible. Please tell me your name, your call-back number, and what is happening.",
    "urgent_message_saved": "Thank you. Your urgent message is with the on-call clinician, who will call you back as soon as possible. If things get worse, hang up and dial 911.",
    "one_moment": "One moment, please.",
    # Workflows: one question at a time.
    "ask_name": "First, I need to confirm who I'm speaking with. What is the patient's first and last name?",
    "ask_name_again": "Sorry, I didn't get the name. Please say the first and last name.",
    "ask_dob": "And the date of birth?",
    "ask_dob_again": "Sorry, I didn't get the date of birth. Please say the month, the day, and the year.",
    "id_retry": "I couldn't find that name and date of birth. Let's try once more. What is the patient's first and last name?",
    "id_failed_message": "I'm sorry, I still couldn't confirm your details. I'll take a message, and our staff will call you back. Please tell me your message.",
    "id_failed_new_patient": "I still couldn't find your record. I'll take your details, and the front desk will call you to set up the visit.",
    "ask_provider": "Would you like a particular provider, or whoever is available first?",
    "ask_when": "What day and time of day would suit you?",
    "ask_when_again": "Sorry, which day or time of day? For example, Tuesday morning, or the earliest opening.",
    "no_openings_then": "I don't have any openings then. What other day or time would work?",
    "no_openings": "I'm sorry, I can't find an opening that fits. I'll take a message so the front desk can find you a time. Please tell me anything they should know.",
    "slot_taken": "I'm sorry, that time was just taken. Let me look again.",
    "which_slot": "Sorry, which one would you like? You can say the first, the second, or the third, or press 1, 2, or 3.",
    "which_appointment": "Sorry, which appointment? You can say the first or the second, or press 1 or 2.",
    "no_appointments": "I don't see any upcoming appointments for you.",
    "ask_correction": "What should I change?",
    "confirm_again": "Sorry, is that right? Please say yes or no, or press 1 for yes and 2 for no.",
    "ask_medication": "Which medication do you need refilled?",
    "ask_medication_again": "Sorry, which medication? You can read the name from the label.",
    "ask_strength": "What strength is it? For example, 10 milligrams. You can say you don't know.",
    "ask_pharmacy": "Which pharmacy should it go to? Please say the name and the street or town.",
    "ask_pharmacy_spell": "Sorry, I want to get the pharmacy right. Could you spell its name for me?",
    "ask_supply": "How many days of medicine do you have left?",
    "ask_complaint": "Please tell me briefly what's going on.",
    "ask_screen": (
        "One safety question first. Right now, is anyone having chest pain, trouble breathing, "
        "heavy bleeding, sudden weakness on one side or trouble speaking, fainting, a seizure, "
        "a swelling throat, or an overdose? Please say yes or no."
    ),
    "ask_since": "When did it start?",
    "ask_severity": "On a scale from 1 to 10, how bad is it?",
    "ask_phone": "What's the best number to call you back? You can say this number.",
    "ask_phone_again": "Sorry, I didn't get the number. Please say it digit by digit, or say this number.",
    "ask_new_patient_when": "What days and times usually work for you?",
    # Intake the practice needs on the record.
    "ask_reason": "What is the visit for? Just briefly.",
    "ask_allergies": "Does the patient have any allergies to medicines? You can say none.",
    "ask_insurance": "What insurance do you have? Please say the company's name, or say none.",
    "ask_member_id": "And the member ID from the card? You can say you don't have it.",
    # Said when the directory or the schedule fails or does not answer in time (a database outage).
    "system_down": "I'm sorry, I can't reach our records right now. I'll take a message instead, and the team will call you back. Please tell me your message.",
    "refill_saved": "Thank you. Your refill request is with the clinician for review. The office or your pharmacy will contact you.",
    "controlled": "That medicine needs the clinician to review the request directly, so I can't arrange the refill myself. I'll pass a message to the clinician, and the office will call you.",
    "billing_connecting": "One moment, I'll put you through to our billing office.",
    "billing_closed": "Our billing office is closed right now. I'll take a message, and they'll call you back on the next business day. Please tell me your name and your question.",
    "staff_closed": "The office is closed right now. I'll take a message for our staff, and they'll call you back when we open. Please tell me your name and your message.",
    "nobody_free": "I'm sorry, nobody is free to take your call right now. I'll take a message instead. Please tell me your name and your message.",
    "results_policy": "I can't give test results over the phone. I'll ask the clinician to call you about them.",
    "results_saved": "Thank you. I've asked the clinician to call you about your results.",
    "same_day_saved": (
        "Thank you. I've sent this to the on-call clinician, who will call you back today. If it "
        "gets worse before then, hang up and dial 911."
    ),
    "nurse_saved": "Thank you. I've sent this to our nurse, who will call you back. If it gets worse, call us back, or dial 911 in an emergency.",
    "new_patient_saved": "Thank you. The front desk will call you to confirm your first visit.",
    "what_else": "Okay. What else can I help with?",
    "kept": "Okay, I've left your appointment as it is.",
    "didnt_hear": "Sorry, I didn't hear anything.",
    # Steering the call, at any point.
    "back_to_task": "Now, back to your request.",
    "start_over": "Okay, let's start over. How can I help you?",
    "distress": (
        "I'm sorry. That sounds frustrating, and I want to make sure you're looked after. "
        "Would you like to speak with a person?"
    ),
    "go_on": "Okay. How can I help you today?",
    "crisis_stay": (
        "Okay. I'm still here. You can call or text 9 8 8 at any time, day or night. If you'd "
        "like to talk with our on-call clinician, just say yes."
    ),
    "crisis_goodbye": (
        "Please remember, you can call or text 9 8 8 at any time, day or night. I'll put you "
        "through to our staff now."
    ),
    "change_booking": "Okay, let's change that.",
}


def crisis_instruction(emergency_number: str) -> str:
    """For a caller at risk of harming themselves: the crisis line as well as the emergency
    number, and that they were heard."""
    spaced = " ".join(emergency_number)
    return (
        "Thank you for telling me. Your safety matters. If you might act on these thoughts, "
        f"please hang up now and dial {spaced}. You can also call or text 9 8 8, the Suicide "
        "and Crisis Lifeline, at any time. If you can't, stay on the line."
    )


def emergency_line(emergency_number: str) -> str:
    """The greeting's first sentence, said whole before the caller can speak over it."""
    return f"For emergencies, dial {' '.join(emergency_number)}."


def emergency_instruction(emergency_number: str) -> str:
    """Said first, before anything else, when a red flag is an emergency. Never interruptible."""
    spaced = " ".join(emergency_number)
    return (
        f"This could be a medical emergency. Please hang up now and dial {spaced}. "
        f"If you can't, stay on the line."
    )


def emergency_goodbye(emergency_number: str) -> str:
    spaced = " ".join(emergency_number)
    return f"Okay. Please hang up now and dial {spaced}. Goodbye."


def intent_ack(intent: str) -> str:
    """A short acknowledgement of what the caller asked for, before taking a message."""
    return {
        "schedule": "You'd like to make an appointment.",
        "reschedule": "You'd like to change an appointment.",
        "cancel": "You'd like to cancel an appointment.",
        "refill": "You need a prescription refill.",
        "symptoms": "You have a question about how you're feeling.",
        "test_results": "You're asking about test results. I can't give results over the phone, but a clinician will call you.",
        "billing": "You have a billing question.",
        "office_info": "You have a question about the office.",
        "message": "You'd like to leave a message.",
    }.get(intent, "")


def confirm_booking(when: str, appointment_type: str) -> str:
    return f"{when}, for a {appointment_type} visit. Is that right?"


def offer(slots: list[str]) -> str:
    """Up to three times, the last one joined with "or"; a single time gets a yes/no question."""
    if len(slots) == 1:
        return f"The first opening I have is {slots[0]}. Would that work?"
    listed = ", ".join(slots[:-1]) + f", or {slots[-1]}"
    return f"I have {listed}. Which would you like?"


def booked(when: str) -> str:
    return f"You're all set for {when}."


def appointments_listed(whens: list[str]) -> str:
    if len(whens) == 1:
        return f"I see your appointment on {whens[0]}."
    listed = ", ".join(whens[:-1]) + f", and {whens[-1]}"
    return f"I see {len(whens)} appointments: {listed}. Which one is it about?"


def confirm_cancel(when: str, policy: str) -> str:
    note = f" {policy.strip()}" if policy.strip() else ""
    return f"Your appointment on {when}.{note} Shall I cancel it?"


def cancelled(when: str) -> str:
    return f"Your appointment on {when} is cancelled."


def confirm_reschedule(old: str, new: str) -> str:
    return f"I'll move your appointment from {old} to {new}. Is that right?"


def rescheduled(when: str) -> str:
    return f"Done. Your appointment is now {when}."


def confirm_refill(medication: str, strength: str, pharmacy: str, supply: str) -> str:
    what = f"{medication} {strength}".strip()
    return f"A refill of {what}, sent to {pharmacy}. {supply} Is that right?".replace("  ", " ")


def confirm_nurse(
    complaint: str, since: str, severity: str, phone: str, *, to: str = "the nurse"
) -> str:
    started = f" It started {since}." if since else ""
    return (
        f"I'll send {to} this: {complaint}.{started} "
        f"Severity {severity} out of 10. Call-back number {phone}. Is that right?"
    )


def confirm_callback(phone: str) -> str:
    return f"The clinician will call you at {phone}. Is that the right number?"


def confirm_new_patient(name: str, phone: str, when: str) -> str:
    return (
        f"A first appointment for {name}, call-back number {phone}, "
        f"usually free {when}. Is that right?"
    )


def message_readback(message: str) -> str:
    """Read back what was taken, trimmed so a long message does not become a long prompt."""
    ws = message.split()
    short = " ".join(ws[:25]).rstrip(".!?, ") + (" and so on" if len(ws) > 25 else "")
    return f"I've noted: {short}."


def self_care(text: str) -> str:
    return f"Here is advice our practice has approved: {text}"
