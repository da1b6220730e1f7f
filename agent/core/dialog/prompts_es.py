"""Everything the agent says, in Spanish: the twin of ``prompts`` for callers who speak Spanish.

Same keys, same functions, same parameters, same meaning; only the language changes. Written for
the ear of US Hispanic callers: neutral Latin American Spanish, "usted", short sentences, one
question at a time, everyday words ("cita", "resurtir", "oprima"). The agent still never
diagnoses and never gives test results.

Choices that hold across the catalog, so a new prompt reads like the others:

* "The clinician" is "el profesional médico": it may be a nurse practitioner, and "el médico" would
  promise a doctor. "The nurse" is "el personal de enfermería", which names no gender.
* Emergency numbers are spaced ("9 1 1"): a Spanish voice reads "911" as "novecientos once".
* Keys are the English prompts' keys, said "oprima el 1": callers know the verb from phone menus.
* Values that reach the functions (times, providers, phone numbers) are said by ``spoken_es``; the
  caller's own words (a complaint, "ayer") are read back as they were heard.
"""

from __future__ import annotations

from agent.core.dialog import spoken_es

# key → text: the keys of ``prompts.STATIC``, no more and no fewer (the prompt cache and the tests
# look them up by key, whatever the language).
STATIC: dict[str, str] = {
    "sorry_transfer": "Lo siento, algo falló de mi lado. Le voy a comunicar con nuestro personal.",
    "didnt_catch": "Perdón, no le entendí. ¿Me puede decir brevemente para qué llama?",
    "didnt_catch_again": "Perdón, todavía no le entendí. También puede oprimir el 0 para hablar con nuestro personal.",
    "still_there": "¿Sigue en la línea? Por favor, dígame cómo le puedo ayudar.",
    "yes_no_again": "Perdón, ¿eso fue un sí o un no? Puede oprimir el 1 para sí, o el 2 para no.",
    "take_message": "Puedo tomar un mensaje para el equipo médico. Por favor, dígame su nombre, su fecha de nacimiento y su mensaje.",
    "message_saved": "Gracias. Su mensaje quedó registrado, y el equipo le va a devolver la llamada. ¿Hay algo más en que le pueda ayudar?",
    "anything_else": "¿Hay algo más en que le pueda ayudar?",
    "goodbye": "Gracias por llamar. Adiós.",
    "connecting_staff": "Un momento, le comunico con nuestro personal.",
    "connecting_front_desk": "Un momento, le comunico con la recepción.",
    "connecting_on_call": "Le estoy comunicando ahora con el profesional médico de guardia. Por favor, quédese en la línea.",
    "urgent_connecting": "Eso necesita la atención de un profesional médico hoy. Le estoy comunicando ahora con el profesional médico de guardia. Por favor, quédese en la línea.",
    "emergency_offer": "¿Quiere que le comunique ahora con el profesional médico de guardia?",
    "no_clinician": "No pude comunicarme con un profesional médico en este momento. Voy a tomar un mensaje urgente, y un profesional médico le va a devolver la llamada lo antes posible. Por favor, dígame su nombre, un número para devolverle la llamada, y qué está pasando.",
    "urgent_message_saved": "Gracias. Su mensaje urgente ya está con el profesional médico de guardia, que le va a devolver la llamada lo antes posible. Si se pone peor, cuelgue y marque 9 1 1.",
    "one_moment": "Un momento, por favor.",
    # Workflows: one question at a time.
    "ask_name": "Primero, necesito confirmar con quién hablo. ¿Cuál es el nombre y apellido del paciente?",
    "ask_name_again": "Perdón, no entendí el nombre. Por favor, diga el nombre y el apellido.",
    "ask_dob": "¿Y la fecha de nacimiento?",
    # Day before month: how Spanish speakers say a date ("4 de marzo de 1962"); the month's name
    # makes it unambiguous, where the English prompt asks for the US order.
    "ask_dob_again": "Perdón, no entendí la fecha de nacimiento. Por favor, diga el día, el mes y el año.",
    "id_retry": "No encontré ese nombre con esa fecha de nacimiento. Intentemos otra vez. ¿Cuál es el nombre y apellido del paciente?",
    "id_failed_message": "Lo siento, todavía no pude confirmar sus datos. Voy a tomar un mensaje, y nuestro personal le va a devolver la llamada. Por favor, dígame su mensaje.",
    "id_failed_new_patient": "Todavía no encontré su expediente. Voy a tomar sus datos, y la recepción le va a llamar para programar la cita.",
    "ask_provider": "¿Quiere la cita con alguien en particular, o con quien esté disponible primero?",
    "ask_when": "¿Qué día y qué hora del día le conviene?",
    "ask_when_again": "Perdón, ¿qué día o qué hora del día? Por ejemplo, el martes en la mañana, o la primera cita disponible.",
    "no_openings_then": "No tengo citas disponibles para ese momento. ¿Qué otro día u hora le conviene?",
    "no_openings": "Lo siento, no encuentro una cita que le convenga. Voy a tomar un mensaje para que la recepción le busque un horario. Por favor, dígame lo que deben saber.",
    "slot_taken": "Lo siento, alguien acaba de tomar ese horario. Déjeme buscar otra vez.",
    "which_slot": "Perdón, ¿cuál prefiere? Puede decir la primera, la segunda o la tercera, u oprimir el 1, el 2 o el 3.",
    "which_appointment": "Perdón, ¿cuál cita? Puede decir la primera o la segunda, u oprimir el 1 o el 2.",
    "no_appointments": "No veo citas próximas a su nombre.",
    "ask_correction": "¿Qué debo cambiar?",
    "confirm_again": "Perdón, ¿es correcto? Por favor, diga sí o no, u oprima el 1 para sí y el 2 para no.",
    "ask_medication": "¿Qué medicamento necesita resurtir?",
    "ask_medication_again": "Perdón, ¿qué medicamento? Puede leer el nombre en la etiqueta.",
    "ask_strength": "¿De qué dosis es? Por ejemplo, 10 miligramos. Puede decir que no sabe.",
    "ask_pharmacy": "¿A qué farmacia enviamos la receta? Por favor, diga el nombre y la calle o la ciudad.",
    "ask_pharmacy_spell": "Perdón, quiero anotar bien la farmacia. ¿Me deletrea el nombre, por favor?",
    "ask_supply": "¿Para cuántos días le queda medicina?",
    "ask_complaint": "Por favor, dígame brevemente qué está pasando.",
    "ask_screen": (
        "Primero, una pregunta de seguridad. En este momento, ¿alguien tiene dolor de pecho, "
        "dificultad para respirar, un sangrado fuerte, debilidad repentina de un lado del cuerpo "
        "o dificultad para hablar, un desmayo, una convulsión, hinchazón en la garganta, o una "
        "sobredosis? Por favor, diga sí o no."
    ),
    "ask_since": "¿Cuándo empezó?",
    "ask_severity": "En una escala del 1 al 10, ¿qué tan fuerte es?",
    "ask_phone": "¿A qué número es mejor devolverle la llamada? Puede decir: este número.",
    "ask_phone_again": "Perdón, no entendí el número. Por favor, dígalo dígito por dígito, o diga: este número.",
    "ask_new_patient_when": "¿Qué días y horas le convienen normalmente?",
    "ask_reason": "¿Para qué es la cita? Dígamelo brevemente.",
    "ask_allergies": "¿El paciente tiene alergia a algún medicamento? Puede decir ninguna.",
    "ask_insurance": "¿Qué seguro médico tiene? Diga el nombre de la compañía, o diga ninguno.",
    "ask_member_id": "¿Y el número de miembro de la tarjeta? Puede decir que no lo tiene.",
    # Said when the directory or the schedule fails or does not answer in time (a database outage).
    "system_down": "Lo siento, no puedo consultar nuestros registros en este momento. Voy a tomar un mensaje, y el equipo le va a devolver la llamada. Por favor, dígame su mensaje.",
    "refill_saved": "Gracias. Su pedido de resurtido está con el profesional médico para que lo revise. El consultorio o su farmacia se va a comunicar con usted.",
    "controlled": "Ese medicamento necesita que el profesional médico revise el pedido directamente, así que yo no puedo tramitar el resurtido. Le voy a pasar un mensaje al profesional médico, y el consultorio le va a llamar.",
    "billing_connecting": "Un momento, le comunico con nuestra oficina de facturación.",
    "billing_closed": "Nuestra oficina de facturación está cerrada en este momento. Voy a tomar un mensaje, y le van a devolver la llamada el próximo día hábil. Por favor, dígame su nombre y su pregunta.",
    "staff_closed": "El consultorio está cerrado en este momento. Voy a tomar un mensaje para nuestro personal, y le van a devolver la llamada cuando abramos. Por favor, dígame su nombre y su mensaje.",
    "nobody_free": "Lo siento, en este momento no hay nadie disponible para atender su llamada. Voy a tomar un mensaje. Por favor, dígame su nombre y su mensaje.",
    "results_policy": "No puedo dar resultados de exámenes por teléfono. Le voy a pedir al profesional médico que le llame para hablar de ellos.",
    "results_saved": "Gracias. Le pedí al profesional médico que le llame para hablar de sus resultados.",
    "same_day_saved": (
        "Gracias. Le envié esto al profesional médico de guardia, que le va a devolver la llamada "
        "hoy. Si se pone peor antes de eso, cuelgue y marque 9 1 1."
    ),
    "nurse_saved": "Gracias. Le envié esto a nuestro personal de enfermería, que le va a devolver la llamada. Si se pone peor, vuelva a llamarnos, o marque 9 1 1 si es una emergencia.",
    "new_patient_saved": "Gracias. La recepción le va a llamar para confirmar su primera cita.",
    "what_else": "Muy bien. ¿En qué más le puedo ayudar?",
    "kept": "Muy bien, dejé su cita como estaba.",
    "didnt_hear": "Perdón, no escuché nada.",
    # Steering the call, at any point.
    "back_to_task": "Ahora, volvamos a lo que me pidió.",
    "start_over": "Muy bien, empecemos de nuevo. ¿En qué le puedo ayudar?",
    "distress": (
        "Lo siento. Entiendo que es frustrante, y quiero asegurarme de que le atiendan bien. "
        "¿Quiere hablar con una persona?"
    ),
    "go_on": "Muy bien. ¿En qué le puedo ayudar hoy?",
    "crisis_stay": (
        "Muy bien. Aquí sigo. Puede llamar o enviar un mensaje de texto al 9 8 8 a cualquier "
        "hora, de día o de noche. Si quiere hablar con nuestro profesional médico de guardia, "
        "solo diga sí."
    ),
    "crisis_goodbye": (
        "Por favor, recuerde que puede llamar o enviar un mensaje de texto al 9 8 8 a cualquier "
        "hora, de día o de noche. Ahora le comunico con nuestro personal."
    ),
    "change_booking": "Muy bien, cambiemos eso.",
}


def _cap(text: str) -> str:
    """A value that opens a sentence ("el viernes 4…") starts with a capital, as written text
    does; the voice pauses the same either way, but transcripts and logs read right."""
    return text[:1].upper() + text[1:]


def _de(when: str) -> str:
    """ "de" + "el viernes" is "del viernes": Spanish contracts it, and so does a careful voice."""
    return f"del {when[3:]}" if when.startswith("el ") else f"de {when}"


def _a(what: str) -> str:
    """ "a" + "el" is "al", as in ``_de``."""
    return f"al {what[3:]}" if what.startswith("el ") else f"a {what}"


def _or(last: str) -> str:
    """ "o" becomes "u" before a word that starts with an o sound ("u ocho")."""
    return f"u {last}" if last.lower().startswith(("o", "ho", "8")) else f"o {last}"


def _and(last: str) -> str:
    """ "y" becomes "e" before a word that starts with an i sound ("e hija"), not before "hie"."""
    low = last.lower()
    return f"e {last}" if low.startswith(("i", "hi")) and not low.startswith("hie") else f"y {last}"


def crisis_instruction(emergency_number: str) -> str:
    """For a caller at risk of harming themselves: the crisis line as well as the emergency
    number, and that they were heard."""
    spaced = " ".join(emergency_number)
    return (
        "Gracias por decírmelo. Su seguridad es importante. Si cree que podría actuar según esos "
        f"pensamientos, por favor cuelgue ahora y marque {spaced}. También puede llamar o enviar "
        "un mensaje de texto al 9 8 8, la Línea de Prevención del Suicidio y Crisis, a cualquier "
        "hora. Si no puede, quédese en la línea."
    )


def emergency_line(emergency_number: str) -> str:
    """The greeting's first sentence, said whole before the caller can speak over it."""
    return f"Para emergencias, marque {' '.join(emergency_number)}."


def emergency_instruction(emergency_number: str) -> str:
    """Said first, before anything else, when a red flag is an emergency. Never interruptible."""
    spaced = " ".join(emergency_number)
    return (
        f"Esto podría ser una emergencia médica. Por favor, cuelgue ahora y marque {spaced}. "
        "Si no puede, quédese en la línea."
    )


def emergency_goodbye(emergency_number: str) -> str:
    spaced = " ".join(emergency_number)
    return f"Muy bien. Por favor, cuelgue ahora y marque {spaced}. Adiós."


def greeting(practice_name: str) -> str:
    """A default Spanish greeting, for a practice that configures only its English one. Said
    after ``emergency_line``, which carries the emergency number; short, as
    ``practice.greeting`` is, because callers speak over a long greeting. It has no English twin
    here: in English the greeting is configuration."""
    return f"{practice_name}, le atiende el asistente automático. ¿En qué le puedo ayudar?"


def intent_ack(intent: str) -> str:
    """A short acknowledgement of what the caller asked for, before taking a message."""
    return {
        "schedule": "Quiere hacer una cita.",
        "reschedule": "Quiere cambiar una cita.",
        "cancel": "Quiere cancelar una cita.",
        "refill": "Necesita resurtir una receta.",
        "symptoms": "Tiene una pregunta sobre cómo se siente.",
        "test_results": "Pregunta por resultados de exámenes. No puedo dar resultados por teléfono, pero un profesional médico le va a llamar.",
        "billing": "Tiene una pregunta sobre facturación.",
        "office_info": "Tiene una pregunta sobre el consultorio.",
        "message": "Quiere dejar un mensaje.",
    }.get(intent, "")


def confirm_booking(when: str, appointment_type: str) -> str:
    """``appointment_type`` may come as configured ("follow-up"): ``spoken_es.visit_type`` says it
    in Spanish, and leaves a Spanish one as it is."""
    return f"{_cap(when)}, para una cita {spoken_es.visit_type(appointment_type)}. ¿Es correcto?"


def offer(slots: list[str]) -> str:
    """Up to three times, the last one joined with "o"; a single time gets a yes/no question. The
    comma before "o" is not Spanish spelling but a pause: each time is a long phrase to hold."""
    if len(slots) == 1:
        return f"La primera cita que tengo es {slots[0]}. ¿Le conviene?"
    listed = ", ".join(slots[:-1]) + f", {_or(slots[-1])}"
    return f"Tengo {listed}. ¿Cuál prefiere?"


def booked(when: str) -> str:
    return f"Listo. Su cita quedó para {when}."


def appointments_listed(whens: list[str]) -> str:
    if len(whens) == 1:
        return f"Veo que tiene una cita {whens[0]}."
    listed = ", ".join(whens[:-1]) + f", {_and(whens[-1])}"
    return f"Veo {len(whens)} citas: {listed}. ¿Sobre cuál llama?"


def confirm_cancel(when: str, policy: str) -> str:
    note = f" {policy.strip()}" if policy.strip() else ""
    return f"Su cita {_de(when)}.{note} ¿Quiere que la cancele?"


def cancelled(when: str) -> str:
    return f"Su cita {_de(when)} quedó cancelada."


def confirm_reschedule(old: str, new: str) -> str:
    return f"Voy a cambiar su cita {_de(old)} {_a(new)}. ¿Es correcto?"


def rescheduled(when: str) -> str:
    return f"Listo. Ahora su cita es {when}."


def confirm_refill(medication: str, strength: str, pharmacy: str, supply: str) -> str:
    what = f"{medication} {strength}".strip()
    return f"Un resurtido de {what}, enviado a {pharmacy}. {supply} ¿Es correcto?".replace(
        "  ", " "
    )


def confirm_nurse(
    complaint: str,
    since: str,
    severity: str,
    phone: str,
    *,
    to: str = "el personal de enfermería",
) -> str:
    """``to`` may come in English, as ``workflows`` names it ("the on-call clinician"):
    ``spoken_es.recipient`` says it in Spanish."""
    started = f" Empezó {since}." if since else ""
    return (
        f"Le voy a enviar esto {_a(spoken_es.recipient(to))}: {complaint}.{started} "
        f"Intensidad: {severity} de 10. Número para devolverle la llamada: {phone}. ¿Es correcto?"
    )


def confirm_callback(phone: str) -> str:
    return f"El profesional médico le va a llamar al {phone}. ¿Es el número correcto?"


def confirm_new_patient(name: str, phone: str, when: str) -> str:
    return (
        f"Una primera cita para {name}, número para devolverle la llamada {phone}, "
        f"normalmente disponible {when}. ¿Es correcto?"
    )


def message_readback(message: str) -> str:
    """Read back what was taken, trimmed so a long message does not become a long prompt."""
    ws = message.split()
    short = " ".join(ws[:25]).rstrip(".!?, ") + (", etcétera" if len(ws) > 25 else "")
    return f"Anoté: {short}."


def self_care(text: str) -> str:
    return f"Este es un consejo aprobado por nuestro consultorio: {text}"
