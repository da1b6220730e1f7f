"""The Spanish catalog is a twin of the English one: the same keys and functions, Spanish only, the
emergency numbers spoken, and values (times, providers, numbers) said the Spanish way."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from datetime import datetime, time
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.dialog import prompts, prompts_es, spoken_es
from agent.core.dialog.commands import Slot
from agent.core.understanding import Entity

ENGLISH_WORDS = (" the ", " your ", " please", " appointment", " you ")
"""Common English words that would show a prompt was left untranslated."""

# 2026-09-04 is a Friday; 2026-05-01 a Friday too.
FRIDAY_8AM = datetime(2026, 9, 4, 8, 0)


def public_functions(module: ModuleType) -> dict[str, Callable[..., object]]:
    return {
        name: f
        for name, f in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_") and f.__module__ == module.__name__
    }


def parameters(f: Callable[..., object]) -> list[tuple[str, object]]:
    """Names and kinds; defaults differ by language (``confirm_nurse``'s ``to``)."""
    return [(p.name, p.kind) for p in inspect.signature(f).parameters.values()]


def sample_args(f: Callable[..., object]) -> dict[str, object]:
    """Plausible values for every parameter a prompt function takes, by name."""
    values: dict[str, object] = {
        "emergency_number": "911",
        "intent": "test_results",
        "when": "el viernes 4 a las 8 de la mañana con el doctor Patel",
        "old": "el jueves 3 a las 9 de la mañana con el doctor Patel",
        "new": "el viernes 4 a las 8 de la mañana con el doctor Patel",
        "appointment_type": "follow-up",
        "slots": ["el viernes 4 a las 8 de la mañana", "el lunes 7 a las 2 de la tarde"],
        "whens": ["el viernes 4 a las 8 de la mañana", "el lunes 7 a las 2 de la tarde"],
        "policy": "",
        "medication": "lisinopril",
        "strength": "10 miligramos",
        "pharmacy": "CVS en Main Street",
        "supply": "Le quedan más o menos 5 días.",
        "complaint": "tiene fiebre",
        "since": "ayer",
        "severity": "7",
        "phone": "5 5 5, 1 2 3, 4 5 6 7",
        "name": "Ana López",
        "message": "necesito hablar con alguien sobre mi receta",
        "text": "tome mucha agua y descanse.",
        "practice_name": "Maple Street Family Practice",
    }
    return {
        p.name: values[p.name]
        for p in inspect.signature(f).parameters.values()
        if p.default is inspect.Parameter.empty
    }


def all_spanish_texts() -> list[str]:
    texts = list(prompts_es.STATIC.values())
    for f in public_functions(prompts_es).values():
        texts.append(str(f(**sample_args(f))))
    texts += [prompts_es.intent_ack(i) for i in ("schedule", "refill", "symptoms", "billing")]
    texts.append(prompts_es.confirm_nurse("x", "", "5", "1", to="the on-call clinician"))
    texts.append(prompts_es.offer(["el viernes 4 a las 8 de la mañana"]))
    texts.append(prompts_es.appointments_listed(["el viernes 4 a las 8 de la mañana"]))
    return texts


# -- the catalog is a twin ------------------------------------------------------------------------


def test_every_static_key_has_spanish_text_and_no_extra_keys() -> None:
    assert set(prompts_es.STATIC) == set(prompts.STATIC)
    assert all(text.strip() for text in prompts_es.STATIC.values())


@pytest.mark.parametrize("name", sorted(public_functions(prompts)))
def test_every_prompt_function_has_a_spanish_twin(name: str) -> None:
    twin = public_functions(prompts_es).get(name)
    assert twin is not None, f"prompts_es.{name} is missing"
    assert parameters(twin) == parameters(public_functions(prompts)[name])


def test_every_intent_acknowledged_in_english_is_acknowledged_in_spanish() -> None:
    intents = ("schedule", "reschedule", "cancel", "refill", "symptoms", "test_results")
    for intent in (*intents, "billing", "office_info", "message", "unknown"):
        assert bool(prompts.intent_ack(intent)) == bool(prompts_es.intent_ack(intent)), intent


# -- Spanish only, written for the voice ----------------------------------------------------------


def test_no_common_english_words() -> None:
    for text in all_spanish_texts():
        padded = f" {text.lower()} "
        found = [w for w in ENGLISH_WORDS if w in padded]
        assert not found, f"{found} in {text!r}"


def test_nothing_the_english_text_rewriter_would_turn_into_english() -> None:
    """``engines.tts.speakable`` rewrites clock times (10:40), dashed phone numbers and "Dr." into
    English words before any voice hears them."""
    for text in all_spanish_texts():
        assert not re.search(r"\d:\d\d|\d{3}[-.]\d{4}|\bDr\.|\b\d{3}\b", text), text


def test_emergency_texts_give_the_numbers_digit_by_digit() -> None:
    assert "marque 9 1 1" in prompts_es.emergency_instruction("911")
    assert "marque 9 1 1" in prompts_es.emergency_goodbye("911")
    assert "marque 9 1 1" in prompts_es.emergency_line("911")
    crisis = prompts_es.crisis_instruction("911")
    assert "marque 9 1 1" in crisis
    assert (
        "llame o envíe un mensaje de texto al 9 8 8, la Línea de Prevención del Suicidio y Crisis"
        in crisis.replace("puede llamar o enviar un mensaje", "llame o envíe un mensaje")
    )
    for key in ("urgent_message_saved", "same_day_saved", "nurse_saved"):
        assert "9 1 1" in prompts_es.STATIC[key], key
    for key in ("crisis_stay", "crisis_goodbye"):
        assert "llamar o enviar un mensaje de texto al 9 8 8" in prompts_es.STATIC[key], key


def test_emergency_instruction_comes_first_and_whole() -> None:
    said = prompts_es.emergency_instruction("112")
    assert said.startswith("Esto podría ser una emergencia médica.")
    assert "cuelgue ahora y marque 1 1 2" in said
    assert said.endswith("Si no puede, quédese en la línea.")


def test_the_same_keys_are_offered_as_in_english() -> None:
    assert "oprimir el 0" in prompts_es.STATIC["didnt_catch_again"]
    assert "el 1 para sí" in prompts_es.STATIC["yes_no_again"]
    assert "el 2 para no" in prompts_es.STATIC["yes_no_again"]
    assert "el 1, el 2 o el 3" in prompts_es.STATIC["which_slot"]
    assert "el 1 o el 2" in prompts_es.STATIC["which_appointment"]


def test_prompts_with_values_read_naturally() -> None:
    when = spoken_es.spoken_slot(Slot("s1", "patel", "Doctor Patel", FRIDAY_8AM))
    assert prompts_es.confirm_booking(when, "follow-up") == (
        "El viernes 4 a las 8 de la mañana con el doctor Patel, para una cita de seguimiento. "
        "¿Es correcto?"
    )
    assert prompts_es.cancelled(when).startswith("Su cita del viernes 4")
    assert prompts_es.confirm_reschedule("el jueves 3", "el viernes 4") == (
        "Voy a cambiar su cita del jueves 3 al viernes 4. ¿Es correcto?"
    )
    assert prompts_es.offer(["el lunes 7", "el martes 8", "el jueves 10"]) == (
        "Tengo el lunes 7, el martes 8, o el jueves 10. ¿Cuál prefiere?"
    )
    nurse = prompts_es.confirm_nurse("tiene fiebre", "ayer", "7", "1 2", to="the on-call clinician")
    assert nurse.startswith("Le voy a enviar esto al profesional médico de guardia: tiene fiebre.")
    assert "Empezó ayer." in nurse
    assert prompts_es.message_readback(" ".join(["palabra"] * 30)).endswith(", etcétera.")


# -- saying values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "said"),
    [
        (FRIDAY_8AM, "el viernes 4 a las 8 de la mañana"),
        (datetime(2026, 5, 1, 13, 0), "el viernes primero a la una de la tarde"),
        (datetime(2026, 9, 8, 10, 40), "el martes 8 a las 10 y 40 de la mañana"),
        (datetime(2026, 9, 9, 12, 0), "el miércoles 9 a las 12 del mediodía"),
        (datetime(2026, 9, 10, 15, 30), "el jueves 10 a las 3 y media de la tarde"),
        (datetime(2026, 9, 12, 19, 15), "el sábado 12 a las 7 y cuarto de la noche"),
    ],
)
def test_spoken_when(at: datetime, said: str) -> None:
    assert spoken_es.spoken_when(at) == said


def test_spoken_time_and_date() -> None:
    assert spoken_es.spoken_time(time(8, 0)) == "las 8 de la mañana"
    assert spoken_es.spoken_time(time(1, 5)) == "la una y 5 de la madrugada"
    assert spoken_es.spoken_date("2026-09-06") == "el domingo 6"
    assert spoken_es.spoken_day_part(3, "morning") == "el jueves en la mañana"
    assert spoken_es.spoken_day_part(None, "afternoon") == "en la tarde"


@pytest.mark.parametrize(
    ("name", "feminine", "said"),
    [
        ("Doctor Patel", None, "el doctor Patel"),
        ("Doctor Nguyen", True, "la doctora Nguyen"),
        ("Nurse Practitioner García", None, "la enfermera practicante García"),
        ("Nurse Practitioner Lee", False, "el enfermero practicante Lee"),
        ("Dr. Patel", None, "el doctor Patel"),
        ("Physician Assistant Kim", None, "el asistente médico Kim"),
        ("Ana Ruiz", None, "Ana Ruiz"),
    ],
)
def test_spoken_provider(name: str, feminine: bool | None, said: str) -> None:
    assert spoken_es.spoken_provider(name, feminine) == said


def test_spoken_slot_names_the_provider_with_its_article() -> None:
    slot = Slot("s1", "garcia", "Nurse Practitioner García", FRIDAY_8AM)
    assert spoken_es.spoken_slot(slot) == (
        "el viernes 4 a las 8 de la mañana con la enfermera practicante García"
    )


def test_phone_numbers_digit_by_digit_in_groups() -> None:
    assert spoken_es.spoken_digits("(555) 123-4567") == "5 5 5, 1 2 3, 4 5 6 7"
    assert spoken_es.spoken_digits("5551234") == "5 5 5 1 2 3 4"


def test_counts_before_a_noun() -> None:
    assert spoken_es.supply_sentence({"days_left": 0}) == "Ya no le queda medicina."
    assert spoken_es.supply_sentence({"days_left": 1}) == "Le queda más o menos un día."
    assert spoken_es.supply_sentence({"days_left": 21}) == "Le quedan más o menos veintiún días."
    assert (
        spoken_es.supply_sentence({"days_left": 31}) == "Le quedan más o menos treinta y un días."
    )
    assert spoken_es.supply_sentence({}) == ""
    dose = Entity("dose", "ten mg", {"amount": 10, "unit": "mg"})
    assert spoken_es.spoken_dose(dose) == "10 miligramos"
    assert spoken_es.spoken_dose(Entity("dose", "1 mg", {"amount": 1.0, "unit": "mg"})) == (
        "un miligramo"
    )
    pharmacy = Entity("pharmacy", "cvs main", {"chain": "CVS", "location": "Main Street"})
    assert spoken_es.spoken_pharmacy(pharmacy) == "CVS en Main Street"


def test_hours_sentence_groups_days() -> None:
    hours = {d: "08:00-17:00" for d in ("mon", "tue", "wed", "thu")}
    hours |= {"fri": "08:00-16:00", "sat": "09:30-12:00"}
    assert spoken_es.hours_sentence(hours) == (
        "Estamos abiertos de lunes a jueves, de 8 de la mañana a 5 de la tarde, "
        "los viernes, de 8 de la mañana a 4 de la tarde, "
        "y los sábados, de 9 y media de la mañana a 12 del mediodía."
    )
    assert "no tiene un horario" in spoken_es.hours_sentence({})


def test_visit_types_and_recipients() -> None:
    assert spoken_es.visit_type("new patient") == "de paciente nuevo"
    assert spoken_es.visit_type(spoken_es.visit_type("follow-up")) == "de seguimiento"
    assert spoken_es.recipient("the nurse") == "el personal de enfermería"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_any_time_is_said_without_english_or_a_clock_face(at: datetime) -> None:
    said = spoken_es.spoken_when(at.replace(second=0, microsecond=0))
    assert not re.search(r"\d:\d|AM|PM|\bthe\b|\bat\b", said)
    assert re.fullmatch(r"el \w+ \w+ a las? .+ (de la|del) \w+", said), said
