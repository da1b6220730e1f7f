from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config import Config, load_config, parse_config
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "agent" / "medagent.toml.example"


def test_example_file_is_valid_and_equals_the_defaults() -> None:
    cfg = load_config(EXAMPLE)
    defaults = Config()
    for section in (
        "ari",
        "ami",
        "agi",
        "media",
        "vad",
        "database",
        "stt",
        "nlu",
        "tts",
        "transfer",
        "calls",
        "logging",
    ):
        assert getattr(cfg, section) == getattr(defaults, section), section
    assert cfg.practice.providers == defaults.practice.providers
    assert cfg.practice.office_hours == defaults.practice.office_hours


def test_example_file_mentions_every_key() -> None:
    import dataclasses

    text = EXAMPLE.read_text()
    for section in dataclasses.fields(Config):
        if section.name == "source":
            continue
        assert f"[{section.name}]" in text
        for f in dataclasses.fields(
            section.type
            if isinstance(section.type, type)
            else type(getattr(Config(), section.name))
        ):
            assert (
                f"{f.name} =" in text
                or f"[{section.name}.{f.name}]" in text
                or f"[[{section.name}.{f.name}]]" in text
            ), f"{section.name}.{f.name} missing from the example"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "medagent.toml"
    p.write_text(text)
    return p


def test_unknown_key_names_file_key_and_expected(tmp_path: Path) -> None:
    p = write(tmp_path, "[ari]\nurll = 'http://x/ari'\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert str(p) in msg and "[ari.urll]" in msg and "unknown key 'urll'" in msg and "url" in msg


def test_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path, "[media]\nport_min = 'forty thousand'\n")
    with pytest.raises(ConfigError, match=r"\[media.port_min\]: expected an integer, got a string"):
        load_config(p)


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[medai\]: unknown key 'medai'"):
        load_config(write(tmp_path, "[medai]\nx = 1\n"))


def test_bad_literal_and_nested_list(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"\[practice.mode\]: expected one of '24x7', 'after_hours_only'"
    ):
        load_config(write(tmp_path, "[practice]\nmode = 'always'\n"))
    with pytest.raises(
        ConfigError, match=r"\[practice.providers\[0\]\]: missing required key\(s\): name"
    ):
        load_config(write(tmp_path, "[[practice.providers]]\nid = 'x'\n"))


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[ari\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_semantic_checks() -> None:
    with pytest.raises(ConfigError, match="port_min <= port_max"):
        parse_config({"media": {"port_min": 50000, "port_max": 40000}})
    with pytest.raises(ConfigError, match="unknown time zone"):
        parse_config({"practice": {"timezone": "Mars/Olympus"}})


def test_secret_from_env_and_file(tmp_path: Path) -> None:
    cfg = parse_config({"ari": {"password_env": "ARI_PW"}}, env={"ARI_PW": "s3cret"})
    assert cfg.ari.password == "s3cret"
    with pytest.raises(ConfigError, match="ARI_PW is not set"):
        parse_config({"ari": {"password_env": "ARI_PW"}}, env={})
    secret = tmp_path / "ari.secret"
    secret.write_text("filepw\n")
    os.chmod(secret, 0o600)
    assert parse_config({"ari": {"password_file": str(secret)}}).ari.password == "filepw"
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match="readable by others; run: chmod 600"):
        parse_config({"ari": {"password_file": str(secret)}})


def test_config_validate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    assert main(["config", "validate", str(EXAMPLE)]) == 0
    bad = write(tmp_path, "[ari]\nport = 1\n")
    assert main(["config", "validate", str(bad)]) == 2
    assert "unknown key 'port'" in capsys.readouterr().err


def test_office_hours_and_holidays_are_checked() -> None:
    with pytest.raises(
        ConfigError, match=r"\[practice.office_hours.mon\]: office hours must look like"
    ):
        parse_config({"practice": {"office_hours": {"mon": "9 to 5"}}})
    with pytest.raises(ConfigError, match=r"\[practice.office_hours.monday\]: expected a weekday"):
        parse_config({"practice": {"office_hours": {"monday": "09:00-17:00"}}})
    with pytest.raises(ConfigError, match=r"\[practice.holidays\[0\]\]: expected an ISO date"):
        parse_config({"practice": {"holidays": ["Dec 25"]}})
