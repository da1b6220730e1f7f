"""The second listen: which turns a larger recogniser hears again, and what triage then reads.

The recognisers are scripted (``Transcript``s the test writes, behind the call's own ``WhisperStt``
adapter); the understander is the real one with a scripted classifier and phrase triage, so the
merge of the two hearings is exercised. These are the ``Ears`` calls, ``medagent understand
--audio`` and ``medagent eval --audio`` all hear with."""

from __future__ import annotations

import asyncio

from agent.core.understanding import (
    RedFlag,
    Understanding,
    other_hypotheses,
    worth_a_second_listen,
)
from agent.engines.nlu.pipeline import Understander
from agent.engines.stt import Transcript
from agent.runtime.engines import SpacyNlu, WhisperStt
from agent.runtime.hearing import Ears, Hearing
from tests.unit.test_nlu_pipeline import NOW, PhraseTriage, RecordingExtractor, ScriptedClassifier

FLAG = RedFlag("fainting", "emergency", "Fainting", "fainted")


def test_symptom_urgent_and_unsure_turns_without_an_emergency_are_worth_a_second_listen() -> None:
    def u(intent: str, urgency: str, conf: float = 0.8, flags: list[RedFlag] | None = None):
        return Understanding("words", "en", intent, conf, urgency, flags or [])  # type: ignore[arg-type]

    assert worth_a_second_listen(u("symptoms", "routine"), 0.5)
    assert worth_a_second_listen(u("refill", "urgent"), 0.5)  # a reaction to the drug, say
    # "I fainted twice" heard "I think the twice": billing, but the model is unsure.
    assert worth_a_second_listen(u("billing", "routine", conf=0.21), 0.5)
    assert not worth_a_second_listen(u("symptoms", "emergency", 0.3, [FLAG]), 0.5)  # acted on
    assert not worth_a_second_listen(u("schedule", "routine"), 0.5)
    assert not worth_a_second_listen(u("office_info", "routine", conf=0.51), 0.5)
    # No words believed: heard again only when there was speech the model could not make out.
    assert worth_a_second_listen(None, 0.5, unclear=True)
    assert not worth_a_second_listen(None, 0.5)


def test_other_hypotheses_keep_every_one_but_the_best_once_in_order() -> None:
    assert other_hypotheses(
        "I fainted twice.",
        ("i fainted twice", " I fainted twice. "),
        ("I think it twice.",),
        ("i think it twice", "i fainted twice"),
    ) == ("i fainted twice", "I think it twice.", "i think it twice")
    assert other_hypotheses("", (), ("",)) == ()


class ScriptedTranscriber:
    """Returns one fixed transcript; counts the passes."""

    def __init__(
        self,
        text: str,
        alternatives: tuple[str, ...] = (),
        elapsed_s: float = 0.1,
        rejected: str | None = None,
    ):
        self.transcript = Transcript(
            text=text,
            words=tuple(text.lower().split()),
            avg_logprob=-0.3,
            no_speech_prob=0.01,
            duration_s=2.0,
            elapsed_s=elapsed_s,
            alternatives=alternatives,
            rejected=rejected,
        )
        self.passes = 0

    async def transcribe(self, pcm16_8k: bytes, *, prompt: str | None, **_: object) -> Transcript:
        self.passes += 1
        return self.transcript


def ears(intent: str, first: ScriptedTranscriber, second: ScriptedTranscriber | None) -> Ears:
    triage = PhraseTriage({"fainted": ("fainting", "emergency"), "hives": ("hives", "urgent")})
    understander = Understander(
        ScriptedClassifier(intent), triage, RecordingExtractor(), providers=[], timezone="UTC"
    )
    prompt = "A doctor's office."
    return Ears(
        WhisperStt(first, prompt),
        SpacyNlu(understander, yes_no=False),
        second_stt=WhisperStt(second, prompt) if second is not None else None,
    )


def hear(ears: Ears) -> Hearing:
    return asyncio.run(ears.hear(b"\0\0" * 16000, now=NOW))


def test_an_emergency_the_first_recogniser_lost_is_found_by_the_second() -> None:
    first = ScriptedTranscriber("I think it twice this morning.", ("I think it's twice",))
    second = ScriptedTranscriber("I fainted twice this morning.", elapsed_s=0.3)
    hearing = hear(ears("symptoms", first, second))
    u = hearing.understanding
    assert u.urgency == "emergency" and [f.rule_id for f in u.red_flags] == ["fainting"]
    # The second hearing's words are acted on; the first's are kept as other hypotheses.
    assert u.text == hearing.heard == "I fainted twice this morning."
    assert u.alternatives == ("I think it twice this morning.", "I think it's twice")
    assert hearing.second is not None and second.passes == 1
    assert hearing.stt_s == hearing.first_s + hearing.second_s


def test_a_flag_only_the_first_recogniser_heard_still_counts() -> None:
    first = ScriptedTranscriber("I feel odd.", ("I fainted, I feel odd.",))
    second = ScriptedTranscriber("I feel odd.")
    u = hear(ears("symptoms", first, second)).understanding
    assert u.urgency == "emergency" and u.text == "I feel odd."


def test_turns_about_other_things_are_heard_once() -> None:
    first = ScriptedTranscriber("Can I book a checkup next week?")
    second = ScriptedTranscriber("I fainted")
    hearing = hear(ears("schedule", first, second))
    assert second.passes == 0 and hearing.second is None
    assert hearing.understanding.urgency == "routine"


def test_an_emergency_already_heard_is_not_heard_again() -> None:
    first = ScriptedTranscriber("I fainted in the kitchen.")
    second = ScriptedTranscriber("I fainted in the kitchen.")
    hearing = hear(ears("symptoms", first, second))
    assert hearing.understanding.urgency == "emergency" and second.passes == 0


def test_no_second_model_and_an_empty_second_hearing_leave_the_first_as_it_was() -> None:
    first = ScriptedTranscriber("I feel a bit off today.")
    alone = hear(ears("symptoms", first, None))
    assert alone.second is None and alone.understanding.urgency == "routine"
    silent = ScriptedTranscriber("")
    hearing = hear(ears("symptoms", first, silent))
    assert silent.passes == 1 and hearing.understanding.urgency == "routine"
    assert hearing.understanding.alternatives == () and hearing.heard == "I feel a bit off today."


def test_speech_the_first_recogniser_could_not_make_out_is_heard_by_the_second() -> None:
    # A Spanish caller to tiny.en: it copies its prompt, and the copy is rejected.
    first = ScriptedTranscriber("", rejected="prompt_echo")
    second = ScriptedTranscriber("Me desmayé dos veces esta mañana.")
    hearing = hear(ears("symptoms", first, second))
    assert hearing.understanding is not None
    assert hearing.understanding.text == hearing.heard == "Me desmayé dos veces esta mañana."
    assert hearing.understanding.alternatives == ()
    # Neither made it out: nothing heard, as a call would keep listening.
    both = ears("symptoms", first, ScriptedTranscriber("", rejected="low_confidence"))
    assert hear(both).understanding is None


def test_silence_and_noise_are_not_heard_twice() -> None:
    for reason in ("no_voice", "no_speech", "hallucination", "empty"):
        second = ScriptedTranscriber("I fainted")
        first = ScriptedTranscriber("", rejected=reason)
        hearing = hear(ears("symptoms", first, second))
        assert hearing.understanding is None and second.passes == 0, reason
