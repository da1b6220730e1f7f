"""Red-flag rules: one case per rule (English, Spanish, negated, someone else), recall of emergency
phrasings, the false-alarm rate on ordinary requests, pack selection and loader errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.triage import PACK_DIR, Triage
from agent.errors import ConfigError

ALL_PACKS = ["cardiology", "dermatology", "pediatrics"]


@pytest.fixture(scope="module")
def triage() -> Triage:
    return Triage.load(ALL_PACKS)


@dataclass(frozen=True)
class Case:
    rule: str
    en: tuple[str, ...]
    es: tuple[str, ...]
    negated: str | None
    other: str


CASES = [
    Case(
        "chest_pain",
        (
            "I have chest pain",
            "there's a crushing pressure in my chest",
            "i got kept pain",
            "chess pain since this morning",
            "pain going down my left arm",
            "i think im having a heart attack",
        ),
        ("tengo dolor de pecho", "me duele el pecho mucho"),
        "no chest pain today",
        "my husband has chest pain",
    ),
    Case(
        "shortness_of_breath",
        (
            "I can't breathe",
            "i cant breathe",
            "i can breathe",
            "i'm short of breath",
            "he is not breathing",
            "she's turning blue",
            "can't catch my breath",
        ),
        ("no puedo respirar", "me falta el aire"),
        "I'm not short of breath",
        "my son can't breathe",
    ),
    Case(
        "stroke",
        (
            "I think I'm having a stroke",
            "her face is drooping",
            "his speech is slurred",
            "i suddenly cant move my left arm",
            "worst headache of my life",
        ),
        ("creo que es un derrame", "tiene la cara caida"),
        "no slurred speech",
        "I think my mother is having a stroke",
    ),
    Case(
        "suicidal",
        (
            "I want to kill myself",
            "i don't want to live anymore",
            "I've been thinking about suicide",
        ),
        ("quiero quitarme la vida", "no quiero vivir"),
        None,  # a denial still reaches a person: see test_suicidal_denial_still_flags
        "my daughter said she wants to kill herself",
    ),
    Case(
        "severe_bleeding",
        (
            "I'm bleeding a lot",
            "the bleeding won't stop",
            "I can't stop the bleeding",
            "he's coughing up blood",
        ),
        ("estoy sangrando mucho", "no para de sangrar"),
        "without any heavy bleeding",
        "my son cut his hand and it won't stop bleeding",
    ),
    Case(
        "anaphylaxis",
        (
            "my throat is closing up",
            "her tongue is swelling",
            "i had to use my epipen",
            "severe allergic reaction",
        ),
        ("se me cierra la garganta", "tiene la lengua hinchada"),
        "no throat swelling",
        "my daughter's lips are swelling",
    ),
    Case(
        "unconscious",
        ("he passed out", "she won't wake up", "my dad is unresponsive", "she collapsed"),
        ("esta inconsciente", "se desmayo"),
        "he never passed out",
        "my mother is unconscious",
    ),
    Case(
        "seizure",
        ("he's having a seizure", "she is convulsing", "my son had a seizure"),
        ("esta convulsionando", "tuvo una convulsion"),
        "no seizures since march",
        "my son is having a seizure",
    ),
    Case(
        "infant_fever",
        (
            "my two week old has a fever",
            "the baby has a temperature of 101",
            "newborn with a fever",
        ),
        ("mi bebe tiene fiebre", "el recien nacido tiene calentura"),
        "my baby doesn't have a fever",
        "my baby has a fever",
    ),
    Case(
        "worst_pain_ever",
        (
            "the worst pain of my life started an hour ago",
            "worst back pain i've ever had came on suddenly",
            "i have never had pain like this",
        ),
        ("es el peor dolor de mi vida", "nunca habia tenido un dolor asi"),
        "not the worst pain ever just sore",
        "my mother says it is the worst pain of her life",
    ),
    Case(
        "severe_abdominal_pain",
        (
            "I have severe stomach pain",
            "excruciating abdominal pain",
            "my belly pain is unbearable",
            "i think its appendicitis",
        ),
        ("tengo un dolor muy fuerte de estomago", "dolor abdominal intenso"),
        "no severe abdominal pain",
        "my wife has terrible stomach pain",
    ),
    Case(
        "overdose",
        (
            "I took too many pills",
            "he overdosed",
            "my toddler swallowed some pills",
            "she took too much of her insulin",
        ),
        ("tomo demasiadas pastillas", "es una sobredosis"),
        "he didn't overdose",
        "my son took too many pills",
    ),
    Case(
        "pregnancy_bleeding",
        (
            "I'm pregnant and bleeding",
            "I'm twelve weeks pregnant and spotting",
            "i think im having a miscarriage",
        ),
        ("estoy embarazada y estoy sangrando",),
        "I'm pregnant and there's no bleeding",
        "my wife is pregnant and she's bleeding",
    ),
    Case(
        "fever_with_rash",
        ("I have a fever and a rash", "high temperature and red spots all over"),
        ("tengo fiebre y ronchas",),
        "a rash but no fever",
        "my son has a fever and a rash",
    ),
    Case(
        "worsening_infection",
        (
            "my wound is infected",
            "there are red streaks up my arm",
            "the infection is getting worse",
        ),
        ("la herida esta infectada",),
        "no pus",
        "my husband's incision looks infected",
    ),
    Case(
        "medication_reaction",
        (
            "I think I'm having an allergic reaction to the new medication",
            "I got a rash from the antibiotic",
            "I'm having side effects from my blood pressure pills",
        ),
        ("tengo una reaccion al medicamento",),
        "no side effects from the new medicine",
        "my mom got a rash from the antibiotics",
    ),
    Case(
        "palpitations_with_syncope",
        ("my heart was racing and then I passed out", "palpitations and I almost passed out"),
        ("tengo palpitaciones y me desmaye",),
        "my heart was racing but no dizzy spells",
        "my husband's heart was racing and he fainted",
    ),
    Case(
        "leg_swelling_with_breathlessness",
        ("my legs are swollen and I'm breathless", "swelling in my ankles and i'm winded"),
        ("tengo las piernas hinchadas y me falta el aire",),
        "no swollen ankles and I'm breathless",
        "my father's legs are swollen and he's breathless",
    ),
    Case(
        "defibrillator_shock",
        ("my defibrillator shocked me", "my icd went off"),
        ("me dio una descarga el desfibrilador",),
        "my defibrillator has not shocked me",
        "my dad's defibrillator fired twice",
    ),
    Case(
        "rapidly_spreading_redness",
        ("the redness is spreading fast", "the red area keeps getting bigger"),
        ("la rojez se esta extendiendo",),
        "no spreading redness",
        "my son's redness is spreading",
    ),
    Case(
        "blistering_rash_with_fever",
        ("I have blisters all over and a fever", "my skin is peeling and my mouth has sores"),
        ("tengo ampollas y fiebre",),
        "no blisters but a fever",
        "my daughter has blisters and a fever",
    ),
    Case(
        "infant_dehydration",
        ("she's had no wet diapers since yesterday", "he hasn't peed all day", "sunken soft spot"),
        ("tiene los panales secos", "no ha orinado en todo el dia"),
        None,  # the signs are themselves negative statements ("no wet diapers")
        "my baby hasn't had a wet diaper",
    ),
    Case(
        "infant_lethargic",
        ("the baby is very lethargic", "she is floppy and hard to wake"),
        ("el bebe esta muy decaido",),
        "he's not lethargic",
        "my baby is floppy",
    ),
    Case(
        "infant_not_feeding",
        ("my baby won't feed", "the baby is refusing the bottle"),
        ("mi bebe no quiere comer",),
        "my baby is feeding fine",  # no negation: the rule must simply not fire
        "my baby won't eat",
    ),
]


def flag_ids(triage: Triage, text: str, lang: str = "en") -> set[str]:
    return {f.rule_id for f in triage.assess(text, lang)}


def test_every_rule_has_a_case(triage: Triage) -> None:
    assert {r.id for r in triage.rules} == {c.rule for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_rule_fires_in_english(triage: Triage, case: Case) -> None:
    for text in case.en:
        assert case.rule in flag_ids(triage, text), text


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_rule_fires_in_spanish(triage: Triage, case: Case) -> None:
    for text in case.es:
        assert case.rule in flag_ids(triage, text, "es"), text


@pytest.mark.parametrize("case", [c for c in CASES if c.negated], ids=lambda c: c.rule)
def test_negated_finding_raises_no_flag(triage: Triage, case: Case) -> None:
    assert case.negated is not None
    assert case.rule not in flag_ids(triage, case.negated)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_third_person_is_subject_other(triage: Triage, case: Case) -> None:
    flags = [f for f in triage.assess(case.other) if f.rule_id == case.rule]
    assert flags, case.other
    assert flags[0].subject == "other"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.rule)
def test_first_person_is_subject_self(triage: Triage, case: Case) -> None:
    said = [(t, "en") for t in case.en] + [(t, "es") for t in case.es]
    for text, lang in said:
        if text.lower().split()[0] in ("i", "i'm", "i've", "tengo", "estoy", "me", "no", "se"):
            flags = [f for f in triage.assess(text, lang) if f.rule_id == case.rule]
            assert flags[0].subject == "self", text


def test_spanish_third_person(triage: Triage) -> None:
    (flag,) = triage.assess("mi hijo no puede respirar", "es")
    assert (flag.rule_id, flag.subject) == ("shortness_of_breath", "other")
    (flag,) = triage.assess("le duele el pecho a mi esposo", "es")
    assert (flag.rule_id, flag.subject) == ("chest_pain", "other")


def test_suicidal_denial_still_flags(triage: Triage) -> None:
    # negatable = false: "I'm not going to kill myself" must still reach a clinician.
    assert "suicidal" in flag_ids(triage, "I'm not going to kill myself")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not sure if it's chest pain", True),  # uncertainty is not a negation
        ("no I have chest pain", True),  # "no" answers the question, "I" starts a new clause
        ("no fever and chest pain", True),  # "and" ends the negation: over-triage on purpose
        ("I don't know, my chest hurts", True),
        ("I'm not feeling well and my chest hurts", True),
        ("I can't stand up, my chest hurts", True),
        ("no chest pain or shortness of breath", False),
        ("denies chest pain", False),
        ("I don't have any chest pain", False),
        ("no tengo dolor de pecho", False),
        ("sin dolor de pecho", False),
    ],
)
def test_negation_scope(triage: Triage, text: str, expected: bool) -> None:
    assert ("chest_pain" in flag_ids(triage, text)) is expected


def test_inability_is_the_flag_not_a_negation(triage: Triage) -> None:
    assert flag_ids(triage, "I can't breathe") == {"shortness_of_breath"}
    assert "unconscious" in flag_ids(triage, "he won't wake up")


def test_can_breathe_with_all_clear_is_not_a_flag(triage: Triage) -> None:
    # The documented trade-off: a bare "I can breathe" is taken as ASR-dropped "can't".
    assert "shortness_of_breath" in flag_ids(triage, "help i can breathe")
    for text in ("I can breathe fine", "i can breathe okay now", "I can breathe normally"):
        assert "shortness_of_breath" not in flag_ids(triage, text), text


def test_matched_words_are_the_callers(triage: Triage) -> None:
    (flag,) = triage.assess("Help, I CAN'T breathe!")
    assert flag.matched == "CAN'T breathe"
    assert flag.label == "Difficulty breathing"


# Reasonable phrasings callers use; every one must raise an emergency (recall 100 %).
EMERGENCY_PHRASINGS = [
    "my chest really hurts", "i have pain in the middle of my chest", "tightness in my chest",
    "i think i'm having a heart attack", "chest pains and sweating", "I cant breath",
    "I'm having trouble breathing", "he's gasping for air", "she stopped breathing",
    "my husband is choking", "I'm struggling to breathe", "my face is drooping on one side",
    "he can't move his right arm", "she's slurring her words", "I feel like ending my life",
    "i want to die", "thinking of hurting myself", "there's blood everywhere",
    "he's losing a lot of blood", "my throat feels tight after eating peanuts",
    "my lips are swollen and i cant swallow", "my dad collapsed", "she fainted and won't wake up",
    "my son is having a seizure", "my wife is seizing", "my three week old baby has a fever",
    "the worst stomach pain i've ever had", "my toddler got into my pills", "he drank bleach",
    "I'm pregnant and bleeding heavily", "I'm 20 weeks pregnant and there's blood",
    "my baby is not breathing", "mi esposo tiene dolor en el pecho", "mi hija no respira",
    "creo que tengo un infarto", "mi papa se desmayo y no responde", "esta sangrando mucho",
    "mi bebe de dos semanas tiene fiebre", "estoy embarazada y tengo sangrado",
    "my chest feels like someone is sitting on it", "my heart hurts", "chest pain radiating to my jaw",
    "i can hardly breathe", "she's wheezing and can't talk", "i feel like i'm suffocating",
    "her words are coming out wrong", "he suddenly can't talk", "i want to end it all",
    "i took all my pills", "my daughter swallowed a bottle of tylenol", "my son drank some cleaning fluid",
    "there's so much blood", "my nose won't stop bleeding for an hour", "i ate shrimp and now i cant breathe",
    "my grandpa is not responding", "he's shaking and won't respond", "my newborn feels really hot",
    "i have really bad pain in my stomach", "i think i'm losing the baby", "kept pain", "chess pain",
    "i got chest pain and i can breathe", "me duele mucho el pecho", "mi esposo no respira",
    "me quiero suicidar", "se tomo todas las pastillas", "se le hincho la cara y no puede respirar",
]  # fmt: skip


def test_emergency_recall_is_complete(triage: Triage) -> None:
    missed = [t for t in EMERGENCY_PHRASINGS if Triage.urgency(triage.assess(t)) != "emergency"]
    assert missed == []


# Ordinary requests to a practice. Over-triage must stay at or below 5 %.
ROUTINE_REQUESTS = [
    "i need to schedule an appointment", "can i get a refill on my lisinopril",
    "i need a refill of my seizure medication", "i'd like to reschedule my appointment next tuesday",
    "i need to cancel my appointment tomorrow", "what time do you open", "do you take blue cross",
    "i have a question about my bill", "can i talk to the nurse", "i'm calling for my test results",
    "i need to make an appointment for a physical", "is doctor patel in today",
    "can you send my prescription to the cvs on main street", "i need a new patient appointment",
    "what's your fax number", "where do i park", "my blood pressure medication ran out",
    "i'm pregnant and need to schedule blood work", "i had a stroke in 2019 and need my stroke follow up",
    "i need my blood test results", "can i speak to someone in billing",
    "my son needs a school physical", "i need a flu shot", "i want to check my lab results",
    "can you call me back at five five five one two three four", "i need a referral to a cardiologist",
    "i need to update my insurance", "my daughter needs her vaccines", "can i get a note for work",
    "i'd like to leave a message for doctor nguyen", "is there an appointment this friday afternoon",
    "i'm calling to confirm my appointment", "i need my metformin refilled", "i have a sore throat",
    "i have a cough and a runny nose", "my back has been hurting for a week",
    "i need to talk to someone about my medication", "i lost my prescription",
    "can i come in for a covid test", "i need a copy of my records", "hi yes i can talk now",
    "sorry i can't talk long i need a refill", "i'm out of breath mints haha no just kidding i need an appointment",
    "what are the side effects of the new medicine", "i need to schedule my baby's checkup",
    "my baby needs her two month shots", "i'd like an appointment for a skin check",
    "can i get my allergy medicine refilled", "i need a refill of my epilepsy meds",
    "i want to talk about my cholesterol",
    "i need a refill on my heart medication", "can i get a chest x ray order",
    "my chest cold is better but i still have a cough", "can you send my epipen prescription to walgreens",
    "i fell last week and my knee is swollen can i come in", "my baby has a diaper rash",
    "can i bring my baby in for her one month checkup", "i have a rash on my arm that itches",
    "i'm having trouble sleeping", "i have trouble with my insurance",
    "i'm pregnant and need my prenatal vitamins refilled", "my cut is healing well",
    "i can breathe fine now thanks the inhaler worked", "i'm running low on my seizure meds",
    "can i get a referral for physical therapy for my back pain", "my son has a fever can we come in today",
    "my toddler has a temperature of 101 and is eating fine", "i bled a little when i brushed my teeth",
    "i'm on blood thinners and need my inr checked", "my baby is teething",
    "my daughter won't eat her vegetables haha",
]  # fmt: skip


def test_routine_over_triage_at_most_5_percent(triage: Triage) -> None:
    flagged = [t for t in ROUTINE_REQUESTS if triage.assess(t)]
    assert len(flagged) / len(ROUTINE_REQUESTS) <= 0.05, flagged


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (
            "my cut is getting more infected and the red is spreading up my arm",
            "worsening_infection",
        ),
        ("the redness keeps spreading past the line", "worsening_infection"),
        ("I started the antibiotic and now I'm covered in welts", "medication_reaction"),
        ("since I started the new pills I broke out all over", "medication_reaction"),
        ("my dad's face looks lopsided", "stroke"),
        ("all of a sudden she can't talk right", "stroke"),
        ("the bite is hot, swollen and leaking", "worsening_infection"),
    ],
)
def test_signs_described_rather_than_named(triage: Triage, text: str, rule: str) -> None:
    assert rule in flag_ids(triage, text)


def test_urgency_levels(triage: Triage) -> None:
    assert Triage.urgency([]) == "routine"
    assert Triage.urgency(triage.assess("I have a fever and a rash")) == "urgent"
    flags = triage.assess("I have a fever and a rash and I can't breathe")
    assert Triage.urgency(flags) == "emergency"
    assert flags[0].urgency == "emergency"  # emergencies first


def test_spanish_emergency_heard_in_an_english_turn(triage: Triage) -> None:
    # Whisper may label a short Spanish turn as English; emergency rules run in both languages.
    assert "shortness_of_breath" in flag_ids(triage, "no puedo respirar", "en")


# -- packs ---------------------------------------------------------------------------------------


def test_base_pack_always_loaded_and_specialty_only_when_named() -> None:
    base = Triage.load([])
    assert base.packs == ("base",)
    assert "palpitations_with_syncope" not in {r.id for r in base.rules}
    assert flag_ids(base, "my heart was racing and then I passed out") == {"unconscious"}
    cardio = Triage.load(["cardiology"])
    assert cardio.packs == ("base", "cardiology")
    assert "palpitations_with_syncope" in flag_ids(cardio, "my heart was racing and I passed out")
    assert "infant_lethargic" not in {r.id for r in cardio.rules}


def test_every_shipped_pack_loads() -> None:
    names = sorted(p.stem for p in PACK_DIR.glob("*.toml"))
    assert names == ["base", "cardiology", "dermatology", "pediatrics"]
    assert len(Triage.load(names).rules) == len(CASES)


def test_unknown_pack_names_the_available_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown triage pack 'oncology'; available: base, cardiology"
    ):
        Triage.load(["oncology"])


GOOD = """
[[rule]]
id = "chest_pain"
label = "Chest pain"
urgency = "emergency"
phrases = ["chest pain"]
phrases_es = ["dolor de pecho"]
"""


def load_text(text: str) -> Triage:
    return Triage.from_sources([("clinic.toml", text)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace('urgency = "emergency"', 'urgency = "soon"'),
         r"clinic.toml: \[rule chest_pain\]: expected urgency = 'emergency' or 'urgent', got 'soon'"),
        (GOOD + 'phrase = ["oops"]\n',
         r"clinic.toml: \[rule chest_pain\]: unknown key\(s\) 'phrase'; expected: "),
        (GOOD.replace('phrases = ["chest pain"]', "phrases = []").replace(
            'phrases_es = ["dolor de pecho"]', "phrases_es = []"),
         r"clinic.toml: \[rule chest_pain\]: no phrases or patterns: the rule could never match"),
        (GOOD.replace('phrases_es = ["dolor de pecho"]', ""),
         r"\[rule chest_pain\]: an emergency rule needs Spanish phrases_es or patterns_es"),
        (GOOD + "patterns = ['(chest']\n",
         r"\[rule chest_pain.patterns\]: pattern '\(chest' is not a valid regex"),
        (GOOD.replace('"chest pain"', '"* pain"'),
         r"\[rule chest_pain.phrases\]: phrase '\* pain' must start and end with a word"),
        (GOOD.replace('id = "chest_pain"', 'id = "Chest Pain"'),
         r"\[rule #1\]: expected id = a lower-case name like 'chest_pain', got 'Chest Pain'"),
        (GOOD + GOOD, r"\[rule chest_pain\]: rule id 'chest_pain' is already defined in clinic.toml"),
        (GOOD + "[[rule.requires]]\nwords = ['x']\n",
         r"\[rule chest_pain.requires #1\]: unknown key\(s\) 'words'"),
        ("title = 'x'\n" + GOOD, r"clinic.toml: unknown key\(s\) 'title'"),
        ("description = 'nothing'\n", r"clinic.toml: expected at least one \[\[rule\]\] table"),
        ("[[rule]\n", r"clinic.toml: not valid TOML"),
        (GOOD.replace('label = "Chest pain"', ""), r"\[rule chest_pain\]: expected label"),
    ],
)  # fmt: skip
def test_loader_errors_name_file_and_rule(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_text(text)


def test_phrase_syntax_wildcards() -> None:
    t = load_text(
        GOOD.replace('"chest pain"', '"pain in * chest", "bleed*"').replace(
            'urgency = "emergency"', 'urgency = "urgent"'
        )
    )
    assert flag_ids(t, "pain in my chest") == {"chest_pain"}
    assert flag_ids(t, "pain in the middle of my chest") == {"chest_pain"}  # 4 words
    assert flag_ids(t, "pain in the very middle of my chest") == set()  # 5 words: too far
    assert flag_ids(t, "it keeps bleeding") == {"chest_pain"}
    # Every rule runs in both languages: the turn's language label may be wrong.
    assert flag_ids(t, "dolor de pecho", "en") == {"chest_pain"}


def test_phrase_words_heard_one_letter_wrong() -> None:
    t = load_text(
        GOOD.replace('"chest pain"', '"passing clots", "severe bleeding", "bleed*", "stroke"')
    )
    # One long word of a multi-word phrase, one letter changed, added or dropped.
    assert flag_ids(t, "im pregnant and passing cloth") == {"chest_pain"}
    assert flag_ids(t, "severe bleeting from the cut") == {"chest_pain"}
    assert flag_ids(t, "severe bleding") == {"chest_pain"}
    # Two edits, or a word misheard outside a phrase, or a short word: no match.
    assert flag_ids(t, "passing close") == set()
    assert flag_ids(t, "cloths") == set()
    assert flag_ids(t, "I had a strike") == set()  # one-word phrases stay exact
    assert flag_ids(t, "it keeps breeding") == set()  # so do prefixes
    # Both words wrong is not the phrase; neither is a negated sound-alike.
    assert flag_ids(t, "sever bleeting") == set()
    assert flag_ids(t, "no severe bleeting") == set()


def test_phrase_words_heard_as_words_that_sound_like_them() -> None:
    t = load_text(
        GOOD.replace(
            '"chest pain"',
            '"swallowed * pills", "chest pressure", "throat is swelling", "overdose", "stroke"',
        )
    )
    # One long word of a multi-word phrase heard as one or two words that sound like it, the
    # phrase's other words as written.
    for heard in (
        "my toddler swole with some of grandma's pills",
        "there's a chest press sure since lunch",
        "her throat is swell in",
    ):
        (flag,) = t.assess(heard)
        assert flag.rule_id == "chest_pain", heard
    # What the flag shows is what the caller was heard to say.
    (flag,) = t.assess("My son swole with two of my pills.")
    assert flag.matched == "swole with two of my pills" and flag.subject == "other"
    # Not on its own (one-word phrases stay as written), not with a second slip, not negated,
    # not when the sound-alike word lies outside the phrase.
    assert flag_ids(t, "i'm worried about an over those") == set()
    assert flag_ids(t, "swole with some of grandmas bills") == set()
    assert flag_ids(t, "no chest press sure") == set()
    assert flag_ids(t, "he swole with some of it and then took his pills") == set()
    assert flag_ids(t, "i need a refill of my pills") == set()


def test_every_pack_together_keeps_routine_requests_quiet() -> None:
    # The sound-alike variants multiply with the packs: all of them at once, on routine requests.
    everything = Triage.load(sorted(p.stem for p in PACK_DIR.glob("*.toml") if p.stem != "base"))
    flagged = [t for t in ROUTINE_REQUESTS if everything.assess(t)]
    assert len(flagged) / len(ROUTINE_REQUESTS) <= 0.05, flagged


def test_load_from_directory(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(GOOD)
    t = Triage.load([], directory=tmp_path)
    assert [r.id for r in t.rules] == ["chest_pain"]


DEV_SET = Path(__file__).resolve().parents[1] / "data" / "nlu" / "dev.jsonl"


def test_dev_set_recall_and_false_alarms() -> None:
    """The NLU dev set (labelled by the intent work): every emergency caught, few false alarms."""
    if not DEV_SET.is_file():
        pytest.skip(f"{DEV_SET} not present")
    import json

    triage = Triage.load([])
    rows = [json.loads(line) for line in DEV_SET.read_text().splitlines() if line.strip()]
    emergencies = [r for r in rows if r["urgency"] == "emergency"]
    routine = [r for r in rows if r["urgency"] == "routine"]
    missed = [
        r["text"]
        for r in emergencies
        if Triage.urgency(triage.assess(r["text"], r["lang"])) != "emergency"
    ]
    wrong_rule = [
        r["text"]
        for r in rows
        if not set(r["red_flags"]) <= {f.rule_id for f in triage.assess(r["text"], r["lang"])}
    ]
    alarms = [r["text"] for r in routine if triage.assess(r["text"], r["lang"])]
    assert missed == []
    assert wrong_rule == []
    assert len(alarms) / len(routine) <= 0.05, alarms


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_assess_never_raises(triage: Triage, text: str) -> None:
    for flag in triage.assess(text) + triage.assess(text, "es"):
        assert flag.urgency in ("emergency", "urgent")
        assert flag.matched and flag.matched in text
