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
}


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
