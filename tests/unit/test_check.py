"""``medagent check`` against deliberately broken set-ups: the Asterisk stand-in for ARI, the fake
AMI for AMI, real sockets for ports. Each broken set-up must give its own message and fix."""

from __future__ import annotations

import io
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.config import Config, parse_config
from agent.engines.nlu.classifier import META_FILE
from agent.pbxsim.engine import PbxSim, PbxSimConfig
from agent.runtime.check import DEFAULT_DIALPLANS, Problem, Report, run_checks
from tests.fakes.fake_ami import SESSION, FakeAmi

pytestmark = pytest.mark.skipif(not SESSION.exists(), reason="AMI recording not found")

PORT_MIN = 48710
PORT_MAX = 48717


@pytest.fixture
async def sim() -> AsyncIterator[PbxSim]:
    s = PbxSim(PbxSimConfig(username="medagent", password="s3cret", seed=3))
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    fake = FakeAmi(secret="amisecret")
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def setup(tmp_path: Path, sim: PbxSim, ami: FakeAmi) -> dict[str, Any]:
    """A configuration that passes every check: edit a copy of it to break one thing."""
    nlu = tmp_path / "nlu"
    nlu.mkdir()
    (nlu / META_FILE).write_text("{}")
    (nlu / "topics").mkdir()
    (nlu / "topics" / "topics.json").write_text("{}")
    return {
        "ari": {"url": sim.base_url, "username": "medagent", "password": "s3cret"},
        "ami": {"enabled": True, "port": ami.port, "password": "amisecret"},
        "media": {"bind_host": "127.0.0.1", "port_min": PORT_MIN, "port_max": PORT_MAX},
        "calls": {"max_concurrent": 4},
        "database": {
            "embedded_dir": str(tmp_path / "pg"),
            "key_file": str(tmp_path / "record.key"),
        },
        "nlu": {"model_dir": str(nlu)},
    }


def _cfg(data: dict[str, Any], **changes: dict[str, Any]) -> Config:
    merged = {k: dict(v) for k, v in data.items()}
    for section, values in changes.items():
        merged.setdefault(section, {}).update(values)
    return parse_config(merged)


def _only(report: Report, area: str) -> Problem:
    found = [p for p in report.problems if p.area == area]
    assert len(found) == 1, report.problems
    return found[0]


async def test_a_good_setup_has_no_problems(setup: dict[str, Any]) -> None:
    report = await run_checks(_cfg(setup))
    assert report.problems == []
    areas = {area for area, _ in report.ok}
    assert areas >= {"config", "ari", "transfer", "ami", "dialplan", "media", "nlu", "database"}
    assert ("ami", "Originate allowed (originate)") in report.ok
    # Run standalone, the agent's app is not registered: informative, not a problem.
    assert any("not registered: the agent is not running" in msg for _, msg in report.notes)


async def test_wrong_ari_password(setup: dict[str, Any]) -> None:
    report = await run_checks(_cfg(setup, ari={"password": "nope"}))
    p = _only(report, "ari")
    assert p.message.startswith("wrong ari.password for user 'medagent' (Asterisk answered 401")
    assert p.fix.startswith("set ari.password to the password of [medagent] in ari.conf")
    # Nothing else is looked up over ARI once the credentials are wrong.
    assert not any(p.area == "transfer" for p in report.problems)


async def test_wrong_ari_port(setup: dict[str, Any]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    url = f"http://127.0.0.1:{closed}/ari"
    p = _only(await run_checks(_cfg(setup, ari={"url": url})), "ari")
    assert p.message.startswith(f"cannot reach ARI at {url} (")
    assert "http.conf set enabled = yes" in p.fix


async def test_ari_url_without_the_ari_suffix(setup: dict[str, Any], sim: PbxSim) -> None:
    url = sim.base_url.removesuffix("/ari")
    p = _only(await run_checks(_cfg(setup, ari={"url": url})), "ari")
    assert p.message == f"{url} answers HTTP but is not ARI (404 on /asterisk/info)"
    assert "the /ari suffix matters" in p.fix


async def test_unknown_transfer_endpoint(setup: dict[str, Any]) -> None:
    report = await run_checks(_cfg(setup, transfer={"billing": "PJSIP/accounts"}))
    p = _only(report, "transfer")
    assert (
        p.message == "transfer.billing = 'PJSIP/accounts': Asterisk has no endpoint PJSIP/accounts"
    )
    assert p.fix.startswith("define [accounts] (type = endpoint) in pjsip.conf")


async def test_wrong_ami_password(setup: dict[str, Any]) -> None:
    p = _only(await run_checks(_cfg(setup, ami={"password": "old"})), "ami")
    assert p.message == "AMI login refused for user 'medagent' (Authentication failed)"
    assert p.fix.startswith("set ami.password to the secret of [medagent] in manager.conf")


async def test_ami_user_without_the_originate_right(setup: dict[str, Any], ami: FakeAmi) -> None:
    ami.denied = {"originate"}
    p = _only(await run_checks(_cfg(setup)), "ami")
    assert p.message == "user 'medagent' may not use Originate (Permission denied)"
    assert p.fix.startswith("add originate to write = in [medagent] of manager.conf")


async def test_ami_not_listening(setup: dict[str, Any], ami: FakeAmi) -> None:
    await ami.stop()
    p = _only(await run_checks(_cfg(setup)), "ami")
    assert p.message.startswith(f"cannot reach AMI at 127.0.0.1:{ami.port}")
    assert "manager.conf set [general] enabled = yes" in p.fix


@pytest.fixture
def ports_taken() -> Iterator[None]:
    held = []
    for port in range(PORT_MIN, PORT_MAX):  # all but one
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        held.append(s)
    yield
    for s in held:
        s.close()


async def test_rtp_port_range_in_use(setup: dict[str, Any], ports_taken: None) -> None:
    p = _only(await run_checks(_cfg(setup)), "media")
    assert p.message.startswith(
        f"only 1 of the 8 UDP ports {PORT_MIN}-{PORT_MAX} are free on 127.0.0.1 (in use: "
        f"{PORT_MIN}, {PORT_MIN + 1},"
    )
    assert p.message.endswith("4 needed for calls.max_concurrent = 4")
    assert "ss -ulpn" in p.fix


async def test_bind_host_not_on_this_machine(setup: dict[str, Any]) -> None:
    p = _only(await run_checks(_cfg(setup, media={"bind_host": "192.0.2.10"})), "media")
    assert p.message.startswith("cannot bind 192.0.2.10:")
    assert p.fix.startswith("media.bind_host = '192.0.2.10' is not an address of this machine")


async def test_missing_nlu_model(setup: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "never-trained"
    report = await run_checks(_cfg(setup, nlu={"model_dir": str(missing)}))
    p = _only(report, "nlu")
    assert "medagent nlu train" in next(x for x in report.problems if x.area == "protocols").fix
    assert p.message == f"no trained intent model in {missing}"
    assert p.fix.startswith("run `medagent nlu train`")


async def test_missing_fallback_context(setup: dict[str, Any]) -> None:
    report = await run_checks(_cfg(setup, transfer={"fallback_context": "medagent-fallbak"}))
    p = _only(report, "dialplan")
    assert p.message == "fallback context 'medagent-fallbak' is not defined"
    assert p.fix.startswith("define medagent-fallbak,s,1 in the dialplan")


async def test_dialplan_jumping_to_a_missing_context(setup: dict[str, Any], tmp_path: Path) -> None:
    broken = tmp_path / "medagent.conf"
    text = DEFAULT_DIALPLANS[1].read_text()
    assert "[medagent-agent]" in text
    broken.write_text(text.replace("[medagent-agent]", "[medagent-agents]"))
    report = await run_checks(_cfg(setup), dialplans=[DEFAULT_DIALPLANS[0], broken])
    messages = [p.message for p in report.problems if p.area == "dialplan"]
    assert messages and all("unknown context 'medagent-agent'" in m for m in messages)


async def test_stasis_app_differs_between_dialplan_and_config(setup: dict[str, Any]) -> None:
    report = await run_checks(_cfg(setup, ari={"app": "front-office-agent"}))
    p = _only(report, "dialplan")
    assert p.message == (
        "MEDAGENT_APP is 'medical-agent' in the dialplan but ari.app is 'front-office-agent'"
    )
    assert p.fix.startswith("set __MEDAGENT_APP=front-office-agent in medagent-settings.conf")


async def test_media_round_trip_through_external_media(setup: dict[str, Any]) -> None:
    report = await run_checks(_cfg(setup), media_test=True)
    assert report.problems == []
    assert any(
        area == "media" and msg.startswith("Asterisk's RTP reached 127.0.0.1:")
        for area, msg in report.ok
    )


def test_bad_config_key_exits_2_with_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "medagent.toml"
    cfg.write_text('[ari]\nurl = "http://127.0.0.1:8088/ari"\npasword = "x"\n')
    assert main(["-c", str(cfg), "check"]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"PROBLEM  config: {cfg}: [ari.pasword]: unknown key 'pasword'")
    assert "fix: correct that key in the file" in out


def test_report_prints_each_problem_with_its_fix() -> None:
    report = Report()
    report.good("ari", "Asterisk 23.4.1")
    report.problem("nlu", "no trained intent model in x", "run `medagent nlu train`")
    out = io.StringIO()
    report.print(out)
    assert out.getvalue() == (
        "ok       ari: Asterisk 23.4.1\n"
        "PROBLEM  nlu: no trained intent model in x\n"
        "         fix: run `medagent nlu train`\n"
        "1 problem found\n"
    )


async def test_a_second_model_that_cannot_load_is_named_with_its_key(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    report = await run_checks(_cfg(setup, stt={"second_model": str(tmp_path / "no-model")}))
    p = _only(report, "stt")
    assert p.message.startswith("stt.second_model: Whisper model ")
    assert "stt.second_model" in p.fix
    report = await run_checks(_cfg(setup, stt={"second_languages": ["en", "spanish"]}))
    p = _only(report, "stt")
    assert p.message.startswith("stt.second_languages: 'spanish' not a Whisper language code")
    # Off is a valid choice: nothing to check, nothing reported.
    report = await run_checks(_cfg(setup, stt={"second_model": ""}))
    assert not [p for p in report.problems if p.area == "stt"]
    assert not any("stt.second_model" in msg for _, msg in report.ok)


async def test_a_base_model_cache_the_service_cannot_write_is_reported(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The base model is joined from its two packages into stt.model_cache_dir on first load.
    import agent.runtime.check as check

    cache = tmp_path / "models"
    monkeypatch.setattr(check.os, "access", lambda path, mode: False)  # as the service user
    p = _only(await run_checks(_cfg(setup, stt={"model_cache_dir": str(cache)})), "stt")
    assert p.message == (
        f"stt.second_model = 'base' is assembled into {cache} on first load, but {tmp_path} is "
        "not writable by this user"
    )
    assert p.fix.startswith(f"create it for the service user: install -d -o medagent {cache}")
    # Once assembled, nothing more is written there.
    (cache / "whisper-base-ct2").mkdir(parents=True)
    (cache / "whisper-base-ct2" / "model.bin").write_bytes(b"\0")
    report = await run_checks(_cfg(setup, stt={"model_cache_dir": str(cache)}))
    assert not [p for p in report.problems if p.area == "stt"]


# --------------------------------------------------------------------------------------------------
# Warnings: allowed, but the admin should know (the exit code stays 0)


def test_report_prints_warnings_with_their_fix_and_they_do_not_fail_the_check() -> None:
    report = Report()
    report.good("ari", "Asterisk 23.4.1")
    report.warn("database", "the key shares a filesystem with the data", "move the key")
    report.warn("config", "x.toml: [ari.password]: a secret is written in a file ...")
    out = io.StringIO()
    report.print(out)
    assert out.getvalue() == (
        "ok       ari: Asterisk 23.4.1\n"
        "WARNING  database: the key shares a filesystem with the data\n"
        "         fix: move the key\n"
        "WARNING  config: x.toml: [ari.password]: a secret is written in a file ...\n"
        "all checks passed, 2 warnings\n"
    )
    assert report.problems == []


async def test_a_key_on_the_data_filesystem_is_warned_about(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.runtime.check as check

    report = await run_checks(_cfg(setup))
    assert report.problems == []
    [w] = [w for w in report.warnings if w.area == "database"]
    key = tmp_path / "record.key"
    assert w.message == (
        f"the patient-data key {key} is on the same filesystem as the data in "
        f"{tmp_path / 'pg'}: a copy of that volume (or its backup) holds both"
    )
    assert w.fix.startswith("set database.key_file to a path on another filesystem")
    # Another filesystem (a mounted secret, /etc on its own volume): nothing to say.
    real = check._device_of
    monkeypatch.setattr(check, "_device_of", lambda p: -1 if p == key else real(p))
    report = await run_checks(_cfg(setup))
    assert not [w for w in report.warnings if w.area == "database"]


async def test_a_key_owned_by_another_user_is_warned_about(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    key = tmp_path / "record.key"
    key.write_text("k1 AAAA\n")
    key.chmod(0o600)
    os.chown(key, 4242, 4242)  # the tests run as root; a uid that is neither root nor us
    report = await run_checks(_cfg(setup))
    assert any(
        w.area == "database" and w.message.startswith(f"{key} (the patient-data key) is owned by")
        for w in report.warnings
    ), report.warnings


async def test_a_missing_key_that_the_agent_cannot_create_is_a_problem(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.runtime.check as check

    key = tmp_path / "etc" / "record.key"
    (tmp_path / "etc").mkdir()
    real_access = check.os.access
    monkeypatch.setattr(
        check.os, "access", lambda p, mode: False if Path(p) == key.parent else real_access(p, mode)
    )
    p = _only(await run_checks(_cfg(setup, database={"key_file": str(key)})), "database")
    assert p.message == (
        f"the patient-data key {key} does not exist and this user cannot create it"
    )
    assert "medagent -c FILE rekey add-key" in p.fix


async def test_config_warnings_are_part_of_the_report(
    setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    lines = []
    for section, values in setup.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    config = tmp_path / "medagent.toml"
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o644)  # with the ARI and AMI passwords inline
    code = await asyncio.to_thread(main, ["-c", str(config), "check"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"WARNING  config: {config}: [ari.password]: a secret is written in a file" in out
    assert f"WARNING  config: {config}: [ami.password]: a secret is written in a file" in out
    assert "s3cret" not in out and "amisecret" not in out
