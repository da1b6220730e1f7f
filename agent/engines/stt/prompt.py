"""Whisper's initial prompt: the practice's context, so a small model hears the names and drugs a
caller is likely to say.

It is one plain sentence rather than a list of terms: a sentence reads to Whisper like the start
of the conversation, a list does not, and a long list gets echoed back on silence (the guards
catch an echo, but then the turn is lost). Figures: ``bench/stt-notes.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

# Words a caller to a practice is likely to say that a small model mishears without context.
COMMON_MEDICATIONS = (
    "lisinopril",
    "metformin",
    "atorvastatin",
    "amlodipine",
    "levothyroxine",
    "albuterol",
)
SYMPTOM_WORDS = (
    "chest pain, trouble breathing, bleeding, fainting, a stroke, a seizure, an overdose, "
    "pregnancy, a rash or a fever"
)


def stt_prompt(
    practice_name: str, providers: Iterable[str], extra: Iterable[str] = (), *, max_chars: int = 600
) -> str:
    """Whisper's initial prompt for a call: one sentence naming the practice, up to four of its
    providers, common medications and the symptoms triage listens for, then ``extra`` terms."""
    names = ", ".join(list(providers)[:4])
    text = (
        f"A patient calls {practice_name} about an appointment with {names}, a refill of "
        f"{', '.join(COMMON_MEDICATIONS)} at the CVS or Walgreens pharmacy, test results, a bill, "
        f"or symptoms such as {SYMPTOM_WORDS}."
    )
    extra_terms = ", ".join(" ".join(t.split()) for t in extra if t.strip())
    if extra_terms:
        text = f"{text} {extra_terms}."
    return text[:max_chars]
