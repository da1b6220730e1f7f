"""What a few words mean to the dialog: cue lists and small predicates over the caller's text.

Every list here is matched on whole words of what the recogniser heard, lower-cased. They are kept
together so that a new phrasing ("that'll be all", Spanish closings) is added in one place, and so
the machine's modules read as decisions, not as string handling.
"""

from __future__ import annotations

import re

from agent.core.dialog import slots
from agent.core.understanding import Entity, Understanding

FAQ_TOPICS: dict[str, tuple[str, ...]] = {
    "hours": (
        "hours",
        "open",
        "close",
        "closed",
        "closing",
        "opening",
        "weekend",
        "saturday",
        "sunday",
        "horario",
    ),
    "address": ("address", "where", "located", "location", "directions", "dirección", "direccion"),
    "parking": ("parking", "park", "garage"),
    "fax": ("fax",),
    "insurance": ("insurance", "accept", "medicare", "medicaid", "plan", "seguro"),
    "portal": ("portal", "online", "website", "app", "login", "password"),
}
"""Words that point an office question at an FAQ topic."""

_CANCELLATION = re.compile(
    r"\b(?:fee|fees|charge|charged|penalty|cost|pay)\b.*\b(?:cancel\w*|miss\w*|no.?shows?|late)\b"
    r"|\b(?:cancel\w*|miss\w*|no.?shows?)\b.*\b(?:fee|fees|charge|charged|penalty|cost|pay)\b"
    r"|\bcancellation policy\b|\bcobran?\w* .*cancel\w*"
)
"""A question about the cost of cancelling or missing a visit: answered with the practice's
cancellation policy (``DialogSettings.cancellation_policy``)."""

_QUESTION_START = re.compile(
    r"^(?:(?:wait|sorry|oh|um|uh|actually|and|but|also|quick question|by the way)[, ]+)*"
    r"(?:what|when|where|how|which|who|why|do you|does|are you|is there|is it|is the|can i|"
    r"could you tell|should i|will i|qu[eé]|cu[aá]ndo|d[oó]nde|c[oó]mo|a qu[eé] hora)\b"
)


def is_question(text: str) -> bool:
    """The caller asked something ("wait, what time do you close on Friday?") rather than
    answered: a question mark from the recogniser, or a question's first words."""
    lowered = " ".join(re.findall(r"[\w']+", text.lower()))
    return text.rstrip().endswith("?") or bool(_QUESTION_START.search(lowered))


COMMANDS: dict[str, tuple[str, ...]] = {
    "operator": (
        "operator", "representative", "real person", "live person", "a person", "a human",
        "human being", "receptionist", "somebody real", "someone real", "talk to someone",
        "speak to someone", "talk to somebody", "speak to somebody", "operadora", "operador",
        "una persona", "hablar con alguien", "recepcionista",
    ),
    "repeat": (
        "repeat that", "repeat it", "repeat the question", "repeat yourself", "say that again", "say it again", "come again", "pardon",
        "what was that", "what did you say", "sorry what", "what", "huh", "one more time",
        "i didn't hear you", "i didnt hear you", "i didn't catch that", "repita", "otra vez",
        "como dice", "cómo dice", "que dijo", "qué dijo", "mande",
    ),
    "back": (
        "go back", "back up", "previous question", "last question", "undo that",
        "regresar", "volver atras", "volver atrás", "la pregunta anterior",
    ),
    "start_over": (
        "start over", "start again", "begin again", "from the beginning", "from the top",
        "empezar de nuevo", "comenzar de nuevo", "desde el principio", "otra vez desde el principio",
    ),
}  # fmt: skip
"""Words that steer the call itself, at any point: a person, the last thing said again, the
previous question, a fresh start. Only a short utterance is a command ("I can't repeat that to my
wife" is not): ``command``."""

_COMMAND_WORDS = 5


def command(text: str) -> str | None:
    """The command a short utterance gives (``COMMANDS``), if any."""
    words = re.findall(r"[\w']+", text.lower())
    if not words or len(words) > _COMMAND_WORDS:
        return None
    lowered = " ".join(words)
    polite = re.sub(
        r"\b(?:please|can you|could you|can i|could i|i want to|i'd like to|i want|i need|let's|"
        r"let me|just|um|uh|sorry|oh|por favor|quiero|puede)\b",
        " ",
        lowered,
    )
    polite = " ".join(polite.split())
    for name, cues in COMMANDS.items():
        for cue in cues:
            if cue == "what":
                # A bare "what?" (or "sorry, what?", "repeat please") asks for the last thing
                # again; "a repeat prescription" does not.
                if polite in ("what", "what what", "repeat", "repite"):
                    return name
            elif re.search(rf"\b{re.escape(cue)}\b", lowered):
                return name
    return None


_SPANISH = re.compile(
    r"^(?:(?:en|habla|hablo|hable|para|in|do you speak|can we speak|por favor)\s+)*"
    r"(?:espa[nñ]ol|spanish)(?:\s+(?:por favor|please))?$"
)


def wants_spanish(text: str) -> bool:
    """The caller asked for Spanish ("español", "en español por favor", "Spanish please")."""
    return bool(_SPANISH.match(" ".join(re.findall(r"[\wñ']+", text.lower()))))


_DISTRESS = re.compile(
    r"\b(?:upset|frustrat\w*|angry|furious|fed up|sick of|ridiculous|unacceptable|"
    r"nobody (?:ever )?(?:calls?|called|answers?|gets back|listens)|no one (?:ever )?(?:calls?|called|answers?|gets back)|"
    r"never (?:call|get back|answer)\w*|third time|so many times|been waiting (?:for )?(?:days|weeks)|"
    r"molest[oa]|enojad[oa]|frustrad[oa]|nadie me (?:llama|contesta|regresa))"
)
"""The caller is upset with the practice ("I'm so upset, nobody ever calls me back"): they hear
an apology and the offer of a person before anything else."""


def distressed(text: str) -> bool:
    return bool(_DISTRESS.search(text.lower()))


CORRECTION_CUES = ("wait", "actually", "no", "not", "wrong", "change", "meant", "instead", "espere")
"""A caller correcting what was just done ("no, wait! the fifteenth")."""

ANY_WORDS = frozenset(
    {"any", "anyone", "anybody", "whoever", "first", "earliest", "soonest", "whenever", "matter"}
    | {"cualquiera", "cualquier", "quien sea", "primera disponible", "lo antes posible", "importa"}
)
"""No preference: any provider, any time."""
DONT_KNOW = (
    "don't know", "dont know", "not sure", "no idea", "i forget", "no se", "no sé", "no lo sé",
    "no estoy segur",
)  # fmt: skip
NO_ALLERGIES = (
    "none", "no allergies", "no known", "nothing", "not allergic", "nkda", "ninguna", "ninguno",
    "no tengo alergias", "no soy alergic", "nada",
)  # fmt: skip
"""No allergies to medicines."""
NO_INSURANCE = (
    "none", "no insurance", "don't have insurance", "dont have insurance", "uninsured",
    "self pay", "self-pay", "cash", "paying myself", "ninguno", "no tengo seguro", "sin seguro",
)  # fmt: skip
NOT_AT_HAND = (
    "don't have it", "dont have it", "not with me", "not on me", "skip", "later", "no la tengo",
    "no lo tengo", "no tengo la tarjeta",
)  # fmt: skip
"""The caller cannot read the card now: the front desk gets it later."""
NONE_OF_THOSE = (
    "none", "neither", "other", "different", "something else", "anything else", "ninguna",
    "ninguno", "otro dia", "otro día", "otra hora", "otra",
)  # fmt: skip
"""None of the offered times suits."""

CLOSINGS = (
    "that's all",
    "that is all",
    "that's it",
    "nothing else",
    "i'm good",
    "i'm fine thanks",
    "goodbye",
    "bye",
    "no thank",
    "eso es todo",
    "nada más",
    "nada mas",
)
"""The caller has nothing more to ask."""

READ_BACK_TAILS = frozenset(
    {"that's correct", "that is correct", "that's right", "that is right", "correct", "exactly"}
)
"""The end of a "yes" to a read-back, arriving on its own after a pause split the answer."""

RAN_OUT = re.compile(r"\b(none|out|ran out|no more|nothing|ninguna|se me acab\w*|ya no tengo)\b")
"""No tablets left ("I ran out"): a supply of zero days."""

_NEW_PATIENT = re.compile(
    r"\bnew patient\b|\bfirst (?:visit|appointment)\b|\bnever been\b|\bestablish(?:ing)? care\b"
    r"|\bbecome a patient\b|\bnew to (?:the|your) (?:practice|office|clinic)\b"
    r"|\b(?:taking|accepting) new patients\b|\bpaciente nuev[oa]\b"
)


def yes_no(u: Understanding) -> bool | None:
    """The caller's yes or no, when the recogniser heard one."""
    e = u.entity("yes_no")
    return e.value if e is not None and isinstance(e.value, bool) else None


def keyed(yes: bool, digit: str) -> Understanding:
    """A key pressed for yes or no ("press 1 for yes, 2 for no"), as if it had been said."""
    return Understanding(
        text="yes" if yes else "no",
        lang="en",
        intent="message",
        confidence=1.0,
        urgency="routine",
        entities=[Entity("yes_no", f"dtmf {digit}", yes)],
    )


def keyed_choice(digit: str) -> Understanding:
    """A key pressed for one of the offered choices, as if its ordinal had been said."""
    word = ("first", "second", "third")[int(digit) - 1]
    return Understanding(word, "en", "message", 1.0, "routine")


def short(text: str) -> bool:
    """A bare answer ("no thanks", "yes please", "that's all") rather than a new sentence."""
    return len(text.split()) <= 4


def done(u: Understanding) -> bool:
    """The caller has nothing more: a bare "no", or a closing phrase ("no, that's all, thanks")."""
    text = " ".join(re.findall(r"[\w']+", u.text.lower()))
    return (yes_no(u) is False and short(text)) or any(
        re.search(rf"\b{c}\b", text) for c in CLOSINGS
    )


def read_back_tail(text: str) -> bool:
    return " ".join(re.findall(r"[\w']+", text.lower())) in READ_BACK_TAILS


def said_any(text: str, cues: tuple[str, ...] | frozenset[str]) -> bool:
    lowered = " ".join(slots.words(text))
    return any(re.search(rf"\b{re.escape(' '.join(slots.words(c)))}\b", lowered) for c in cues)


def new_patient(text: str) -> bool:
    """A booking for someone new to the practice ("I'm a new patient", "never been there")."""
    return bool(_NEW_PATIENT.search(text.lower()))


def faq_answer(text: str, faq: dict[str, str]) -> str | None:
    """The practice's answer to an office question, when it has one for the topic asked about."""
    lowered = text.lower()
    if "cancellation" in faq and _CANCELLATION.search(lowered):
        return faq["cancellation"]
    ws = set(re.findall(r"[a-záéíóúñ]+", lowered))
    for topic, cues in FAQ_TOPICS.items():
        if topic in faq and ws & set(cues):
            return faq[topic]
    return None


def self_care(complaint: str, advice: dict[str, str]) -> str | None:
    """Practice-approved self-care text whose topic words all appear in the complaint."""
    ws = set(slots.words(complaint))
    for topic, text in advice.items():
        if set(slots.words(topic.replace("_", " "))) <= ws:
            return text
    return None
