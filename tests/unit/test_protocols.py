"""The protocol files: every one reads and checks, the list covers what a nurse line needs, and a
clinician's mistake is named with its file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.core.protocols import DISPOSITIONS, PACKS, ProtocolBook, parse_protocol
from agent.core.triage import Triage
from agent.engines.nlu.protocol_files import (
    PROTOCOL_DIR,
    all_protocols,
    load_book,
    protocol_sources,
)
from agent.errors import ConfigError

LIST = Path(__file__).resolve().parents[1] / "data" / "triage_blind" / "PROTOCOLS.md"
LISTED = {
    m.group(1)
    for m in re.finditer(r"^\| ([a-z_]+) \|", LIST.read_text(), flags=re.M)
    if m.group(1) not in ("id", "none")
}

UTI = (PROTOCOL_DIR / "base" / "urinary_symptoms.toml").read_text()


def test_every_file_reads_and_every_listed_topic_has_a_protocol() -> None:
    every = all_protocols()
    base = {p.id for p in every if p.pack == "base"}
    assert len(base) >= 60
    assert LISTED <= base, sorted(LISTED - base)
    for p in every:
        assert p.questions and len(p.examples) >= 20 and p.examples_es, p.id
        ranks = [DISPOSITIONS.index(q.disposition) for q in p.questions]
        assert ranks == sorted(ranks), p.id
        # A topic that can be dangerous asks about the danger.
        assert any(q.disposition in ("911", "see_now") for q in p.questions), p.id


def test_the_specialty_packs_replace_their_base_protocols() -> None:
    base = load_book()
    assert base.packs == ("base",)
    for pack in PACKS[1:]:
        book = load_book([pack])
        replaced = [pid for pid in book.ids() if book[pid].pack == pack]
        assert replaced, pack
        for pid in replaced:
            assert book[pid].file != base[pid].file
    with pytest.raises(ConfigError, match="unknown protocol pack 'oncology'"):
        load_book(["oncology"])


def test_signs_are_matched_like_the_triage_rules_negation_included() -> None:
    book = ProtocolBook.from_sources([("urinary_symptoms.toml", UTI)])
    rules = book.rules("urinary_symptoms")
    said = {f.rule_id for f in Triage.flags_of(rules, "it burns when I pee and I have a fever")}
    assert said == {"urinary_symptoms.kidney", "urinary_symptoms.symptoms_now"}
    denied = {f.rule_id for f in Triage.flags_of(rules, "it burns when I pee, no fever")}
    assert denied == {"urinary_symptoms.symptoms_now"}
    spanish = {f.rule_id for f in Triage.flags_of(rules, "me arde y tengo fiebre", "es")}
    assert "urinary_symptoms.kidney" in spanish
    assert book.find_question("urinary_symptoms.kidney")[1].disposition == "see_now"  # type: ignore[index]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace('disposition = "911"', 'disposition = "asap"', 1),
            "disposition 'asap'",
        ),
        (lambda t: t.replace('id = "shock"', 'id = "Shock!"', 1), "id 'Shock!'"),
        (
            lambda t: t.replace('"cant stand", ', '"Can\'t stand", ', 1),
            "lower case without accents",
        ),
        (lambda t: 'notes = "x"\n' + t, "unknown key(s) 'notes'"),
        (lambda t: t.replace("[routine]", "[other]", 1), "unknown key(s) 'other'"),
        (
            # The see-now question moved above the 911 one.
            lambda t: t.replace('disposition = "911"', 'disposition = "same_day"', 1),
            "comes after a less severe one",
        ),
        (lambda t: t.replace("examples_es = [", "examples_es = 3 #", 1), "not valid TOML"),
    ],
)
def test_a_mistake_names_the_file_and_what_is_wrong(edit, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        ProtocolBook.from_sources([("base/urinary_symptoms.toml", edit(UTI))])
    assert "base/urinary_symptoms.toml" in str(err.value)


def test_files_outside_a_pack_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "urinary_symptoms.toml").write_text(UTI)
    assert len(protocol_sources(tmp_path)) == 1
    (tmp_path / "oncology").mkdir()
    (tmp_path / "oncology" / "x.toml").write_text(UTI)
    with pytest.raises(ConfigError, match="outside a pack folder"):
        protocol_sources(tmp_path)


def test_parse_keeps_what_the_dialog_needs() -> None:
    import tomllib

    p = parse_protocol(tomllib.loads(UTI), file="uti.toml")
    assert [q.disposition for q in p.questions][0] == "911"
    assert p.question("kidney").text("es").startswith("¿")
    assert p.details and p.advice and p.advice_es


def test_no_sign_fires_on_ordinary_requests() -> None:
    """A sign is the caller's words for a yes to a safety question: it must not be a word that
    ordinary business uses ("this week", "change", "ran out of my..." in a refill). Checked on
    the intent model's training requests that are not about health (ours, not the blind set)."""
    from agent.engines.nlu import train

    ordinary = sorted({t for t, intent in train.expand(train.load_data()) if intent != "symptoms"})
    noisy = []
    for protocol in all_protocols():
        book = ProtocolBook.from_sources(
            [(protocol.file, Path(protocol.file).read_text())], [protocol.pack]
        )
        for rule in book.rules(protocol.id):
            fired = [t for t in ordinary if Triage.flags_of([rule], t)]
            if len(fired) > MAX_ORDINARY_HITS:
                noisy.append(f"{protocol.pack}/{rule.id}: {len(fired)}, e.g. {fired[0]!r}")
    assert not noisy, "\n".join(noisy)


MAX_ORDINARY_HITS = 3
"""The ordinary requests include mixed ones ("a refill, and my cut is red and swollen"): a few
hits are words that really are about health."""
