"""The stand-in's synthetic callers (``pbxsim.callers``): voice names and levels, checked before
any synthesizer runs."""

from __future__ import annotations

import pytest

from agent.pbxsim.callers import VOICES, caller_voice, synthesize_caller


def test_unknown_voice_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown voice 'robot'; expected one of: joe, joe-high, "):
        synthesize_caller("hello", "robot")
    assert {v.language for v in VOICES.values()} == {"en", "es"}


def test_voices_by_alias_and_by_espeak_name() -> None:
    assert caller_voice("piper") is VOICES["joe"]
    adhoc = caller_voice("espeak:fr+f2")
    assert (adhoc.backend, adhoc.espeak_voice, adhoc.language) == ("espeak", "fr+f2", "fr")
    with pytest.raises(ValueError, match="unknown voice 'espeak:'"):
        caller_voice("espeak:")


def test_hiss_level_is_in_dbfs_and_cannot_be_mistaken_for_an_snr() -> None:
    with pytest.raises(ValueError, match="noise_db is the hiss level in dBFS and must be <= 0"):
        synthesize_caller("hello", "us-male", noise_db=20)
    with pytest.raises(ValueError, match="not both"):
        synthesize_caller("hello", "us-male", noise_db=-40, snr_db=20)
