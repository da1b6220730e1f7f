"""The sound key and the sound-alike lookup that triage uses for words heard as other words."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.core.negation import fold
from agent.core.soundalike import SoundAlikes, sound_key, within_one_edit


def test_sound_key_spells_sounds_not_letters() -> None:
    # Spellings of one sound share a key.
    assert sound_key("bleeding") == sound_key("bleating")
    assert sound_key("phone") == sound_key("fone")
    assert sound_key("knee") == sound_key("nee")
    assert sound_key("cyst") == sound_key("sist")
    assert sound_key("chest") == sound_key("chesst")
    # Two words written together sound like one.
    assert sound_key("press sure") == sound_key("pressure")
    # A leading vowel is kept as one sound; th, sh/ch have their own signs.
    assert sound_key("over") == "afr"
    assert sound_key("throat") == "0rt"
    assert sound_key("shock") == "9k"
    assert sound_key("") == sound_key("123") == ""


def test_within_one_edit() -> None:
    assert within_one_edit("swlwt", "swlwt")
    assert within_one_edit("swlwt", "swlw0")  # changed
    assert within_one_edit("swlt", "swlwt")  # added
    assert within_one_edit("swlwtk", "swlwt")  # dropped
    assert not within_one_edit("swlwt", "slwtk")
    assert not within_one_edit("ab", "abcd")


@given(st.text(alphabet="abcdefghij", max_size=8), st.text(alphabet="abcdefghij", max_size=8))
def test_within_one_edit_agrees_with_levenshtein(a: str, b: str) -> None:
    rows = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, rows[0] = rows[0], i
        for j, cb in enumerate(b, 1):
            prev, rows[j] = rows[j], min(rows[j] + 1, rows[j - 1] + 1, prev + (ca != cb))
    assert within_one_edit(a, b) == (rows[-1] <= 1)


KNOWN = SoundAlikes(["swallowed", "pressure", "swelling", "bleeding", "pills", "unresponsive"])


def test_short_words_are_not_known() -> None:
    assert "pills" not in KNOWN.words  # five letters: too many neighbours
    assert KNOWN.sounds_like("pill") == ()


def test_one_or_two_heard_words_that_sound_like_a_known_word() -> None:
    assert KNOWN.sounds_like("swole with") == ("swallowed",)
    assert KNOWN.sounds_like("press sure") == ("pressure",)
    assert KNOWN.sounds_like("swell in") == ("swelling",)
    assert KNOWN.sounds_like("bleating") == ("bleeding",)
    # The word itself is no sound-alike; neither is a word that starts with another sound or
    # is too far from it in sound or in length.
    assert KNOWN.sounds_like("swallowed") == ()
    assert KNOWN.sounds_like("wallowed") == ()
    assert KNOWN.sounds_like("swallows") == ()
    assert KNOWN.sounds_like("press") == ()
    assert KNOWN.sounds_like("responsive") == ()
    # A known word heard as two is that word.
    assert KNOWN.sounds_like("un responsive") == ("unresponsive",)


def test_every_known_word_it_sounds_like() -> None:
    # Each is tried in its phrase; the phrase's other words decide.
    known = SoundAlikes(["swelling", "swallowing", "swollen"])
    assert known.sounds_like("swell in") == ("swelling", "swollen")
    assert known.sounds_like("swallow in") == ("swallowing", "swollen")
    assert known.sounds_like("swollen") == ()


def test_respellings_put_the_known_word_back_and_map_to_what_was_heard() -> None:
    folded = fold("My toddler swole with some of Grandma's pills.")
    (r,) = list(KNOWN.respellings(folded))
    assert r.word == "swallowed" and r.heard == "swole with"
    assert r.folded.text == " my toddler swallowed some of grandmas pills "
    assert r.folded.text[r.start : r.end] == "swallowed"
    # The original words behind the respelled text are what the caller was heard to say.
    assert r.folded.original(r.start, r.end) == "swole with"
    assert r.folded.original(0, len(r.folded.text)) == folded.source.rstrip(".")
    assert list(KNOWN.respellings(fold("I need a refill on my pills"))) == []
