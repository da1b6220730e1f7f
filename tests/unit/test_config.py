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
        if section.name in ("source", "warnings"):
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


# --------------------------------------------------------------------------------------------------
# Files that are not configuration files: a clear error and exit code 2, never a traceback


def _validate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from agent.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_file_that_is_not_utf8_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "medagent.toml"
    p.write_bytes(b'[practice]\nname = "Caf\xe9 Clinic"\n')  # Latin-1, as an old editor saves it
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(line 2\)"):
        load_config(p)
    code, out = _validate(["config", "validate", str(p)], capsys)
    assert code == 2 and "not UTF-8" in out and "Traceback" not in out


def test_a_directory_as_the_config_path_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a configuration file"):
        load_config(tmp_path)
    for argv in (["config", "validate", str(tmp_path)], ["-c", str(tmp_path), "check"]):
        code, out = _validate(argv, capsys)
        assert code == 2 and "is a directory" in out, argv


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * 3000 + "]" * 3000 + "\n",
        "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
    ],
    ids=["arrays", "inline-tables"],
)
def test_a_deeply_nested_file_is_a_config_error(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(p)
    code, out = _validate(["config", "validate", str(p)], capsys)
    assert code == 2 and "Traceback" not in out


def test_an_endless_or_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="larger than"):
        load_config("/dev/zero")
    big = write(tmp_path, "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than"):
        load_config(big)


# --------------------------------------------------------------------------------------------------
# Numbers outside their domain, each named by its key


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("calls", "max_concurrent", "-1", "expected an integer >= 1, got -1"),
        ("calls", "max_concurrent", "0", "expected an integer >= 1, got 0"),
        ("calls", "health_port", "99999", "expected an integer from 0 to 65535, got 99999"),
        ("ami", "port", "0", "expected an integer from 1 to 65535, got 0"),
        ("agi", "port", "65536", "expected an integer from 1 to 65535, got 65536"),
        ("ari", "request_timeout_s", "0", "expected a number > 0, got 0.0"),
        ("ari", "reconnect_max_s", "-2.5", "expected a number > 0, got -2.5"),
        ("vad", "end_silence_ms", "-600", "expected an integer > 0, got -600"),
        ("vad", "energy_floor_dbfs", "6.0", "expected a number <= 0, got 6.0"),
        ("tts", "peak_dbfs", "3", "expected a number <= 0, got 3.0"),
        ("tts", "workers", "0", "expected an integer >= 1, got 0"),
        ("nlu", "min_confidence", "1.5", "expected a number from 0 to 1, got 1.5"),
        ("stt", "no_speech_threshold", "-0.1", "expected a number from 0 to 1, got -0.1"),
        ("stt", "open_window_s", "45.0", "expected a number > 0 and <= 30, got 45.0"),
        ("stt", "beam_size", "0", "expected an integer >= 1, got 0"),
        ("database", "write_timeout_s", "-1", "expected a number > 0, got -1.0"),
        ("transfer", "ring_timeout_s", "0", "expected an integer >= 1, got 0"),
        ("media", "jitter_delay_ms", "-20", "expected an integer >= 0, got -20"),
        ("calls", "no_input_timeout_s", "nan", "expected a finite number, got nan"),
        ("vad", "max_utterance_s", "inf", "expected a finite number, got inf"),
    ],
)
def test_numbers_outside_their_domain_name_the_key(
    tmp_path: Path, section: str, key: str, value: str, expected: str
) -> None:
    p = write(tmp_path, f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == f"{p}: [{section}.{key}]: {expected}"


def test_every_numeric_setting_has_a_domain() -> None:
    """A new number in a section must say what values make sense (``agent.config.DOMAINS``)."""
    import dataclasses
    import typing

    from agent.config import DOMAINS

    missing = []
    for section in dataclasses.fields(Config):
        cls = type(getattr(Config(), section.name))
        if not dataclasses.is_dataclass(cls):
            continue
        for name, tp in typing.get_type_hints(cls).items():
            if tp in (int, float) and f"{section.name}.{name}" not in DOMAINS:
                missing.append(f"{section.name}.{name}")
    assert missing == []
    # And each domain holds the default (the built-in values are valid).
    load_config(EXAMPLE)


def test_the_edges_of_a_domain_are_accepted() -> None:
    cfg = parse_config(
        {
            "calls": {"health_port": 0, "max_concurrent": 1},
            "ami": {"port": 65535},
            "vad": {"energy_floor_dbfs": 0.0},
            "nlu": {"min_confidence": 1},
            "stt": {"open_window_s": 30},
        }
    )
    assert (cfg.calls.health_port, cfg.ami.port, cfg.stt.open_window_s) == (0, 65535, 30.0)


# --------------------------------------------------------------------------------------------------
# Secrets: the database DSN like the passwords; warnings about where secrets are kept


def test_dsn_from_a_file_or_the_environment(tmp_path: Path) -> None:
    dsn = "postgresql://medagent:pw@db.example/medagent"
    assert (
        parse_config({"database": {"dsn_env": "PG_DSN"}}, env={"PG_DSN": dsn}).database.dsn == dsn
    )
    secret = tmp_path / "dsn.secret"
    secret.write_text(dsn + "\n")
    secret.chmod(0o600)
    assert parse_config({"database": {"dsn_file": str(secret)}}).database.dsn == dsn
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match=r"\[database.dsn_file\]: secret file .* is readable"):
        parse_config({"database": {"dsn_file": str(secret)}})


def test_a_secret_file_that_is_not_a_small_regular_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[ari.password_file\]: .* is not a regular file"):
        parse_config({"ari": {"password_file": "/dev/zero"}})
    with pytest.raises(ConfigError, match=r"\[ari.password_file\]: .* is not a regular file"):
        parse_config({"ari": {"password_file": str(tmp_path)}})
    with pytest.raises(ConfigError, match=r"\[ari.password_file\]: cannot read secret file"):
        parse_config({"ari": {"password_file": "bad\0name"}})
    big = tmp_path / "big.secret"
    big.write_text("x" * 100_000)
    big.chmod(0o600)
    with pytest.raises(ConfigError, match="larger than"):
        parse_config({"ari": {"password_file": str(big)}})


def test_a_secret_file_owned_by_someone_else_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "ari.secret"
    secret.write_text("pw")
    secret.chmod(0o600)
    assert parse_config({"ari": {"password_file": str(secret)}}).warnings == ()
    if os.geteuid() == 0:
        os.chown(secret, 4242, 4242)  # as root: give it to a user that is neither us nor root
    else:  # pragma: no cover - the tests usually run as root
        monkeypatch.setattr("agent.config.coercion.os.geteuid", lambda: os.getuid() + 1)
    cfg = parse_config({"ari": {"password_file": str(secret)}})
    owner = secret.stat().st_uid
    assert cfg.warnings == (
        f"<config>: [ari.password_file]: secret file {secret} is owned by uid {owner}, not by "
        f"this user "
        f"(uid {os.geteuid()}) or root; run: chown {os.geteuid()} {secret}",
    )


def test_inline_secrets_in_a_world_readable_file_are_warned_about(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        '[ari]\npassword = "s3cret"\n[database]\ndsn = "postgresql://u:pw@db.example/x"\n'
        '[ami]\npassword = ""\n',
    )
    p.chmod(0o644)
    cfg = load_config(p)
    assert cfg.warnings == (
        f"{p}: [ari.password]: a secret is written in a file every user can read (mode 644); "
        f"move it to password_file (mode 600), or run: chmod 640 {p}",
        f"{p}: [database.dsn]: a secret is written in a file every user can read (mode 644); "
        f"move it to dsn_file (mode 600), or run: chmod 640 {p}",
    )
    # A DSN without a password is not a secret; a file others cannot read is not a leak.
    p.write_text('[database]\ndsn = "postgresql://medagent@/medagent?host=/run/postgresql"\n')
    assert load_config(p).warnings == ()
    p.write_text('[ari]\npassword = "s3cret"\n')
    p.chmod(0o640)
    assert load_config(p).warnings == ()


def test_config_warnings_are_printed_when_a_command_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from agent.commands._config import config_for_command

    p = write(tmp_path, '[ari]\npassword = "s3cret"\n')
    p.chmod(0o644)
    assert config_for_command(argparse.Namespace(config=str(p))) is not None
    err = capsys.readouterr().err
    assert err.startswith(f"medagent: warning: {p}: [ari.password]: a secret is written")
    code, out = _validate(["config", "validate", str(p)], capsys)
    assert code == 0 and "warning:" in out and "s3cret" not in out


# --------------------------------------------------------------------------------------------------
# Plain-text ARI and AMI only on this machine


@pytest.mark.parametrize(
    "url",
    ["http://192.168.1.20:8088/ari", "http://asterisk.lan:8088/ari", "http://[fd00::5]:8088/ari"],
)
def test_plain_http_ari_to_another_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"ari": {"url": url}})
    msg = str(exc.value)
    assert msg.startswith("<config>: [ari.url]: plain http:// to ")
    assert "use https:// " in msg and "ari.allow_insecure_lan = true" in msg


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8088/ari",
        "http://127.0.0.53:8088/ari",
        "http://localhost:8088/ari",
        "http://[::1]:8088/ari",
        "https://192.168.1.20:8089/ari",
    ],
)
def test_ari_on_loopback_or_over_tls_is_accepted(url: str) -> None:
    cfg = parse_config({"ari": {"url": url}})
    assert cfg.ari.url == url and cfg.warnings == ()


def test_allow_insecure_lan_is_accepted_with_a_warning() -> None:
    cfg = parse_config(
        {
            "ari": {"url": "http://192.168.1.20:8088/ari", "allow_insecure_lan": True},
            "ami": {"enabled": True, "host": "192.168.1.20", "allow_insecure_lan": True},
        }
    )
    assert cfg.warnings == (
        "<config>: [ari.url]: plain http:// to 192.168.1.20 (ari.allow_insecure_lan = true): "
        "the ARI password and call control cross the network unencrypted",
        "<config>: [ami.host]: plain AMI to 192.168.1.20 (ami.allow_insecure_lan = true): the AMI secret "
        "crosses the network unencrypted",
    )


def test_plain_ami_to_another_host_is_refused_when_enabled() -> None:
    with pytest.raises(ConfigError, match=r"\[ami.host\]: plain AMI to 10.0.0.7 would send"):
        parse_config({"ami": {"enabled": True, "host": "10.0.0.7"}})
    assert parse_config({"ami": {"enabled": False, "host": "10.0.0.7"}}).warnings == ()


# --------------------------------------------------------------------------------------------------
# The patient-data key lives apart from the data


def test_the_key_defaults_to_a_path_outside_the_data_directory() -> None:
    assert Config().database.key_file == "/etc/medagent/record.key"
    # No file at all is a developer's checkout (`make demo`): everything stays in ./.medagent.
    assert load_config(None).database.key_file == ".medagent/record.key"
