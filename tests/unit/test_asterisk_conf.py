"""The Asterisk config parser, and the static check of the admin's files in asterisk-conf/ and
dialplans/ against what the agent's configuration expects."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.adapters.asterisk_conf import (
    ConfigFile,
    Context,
    dialplan,
    dialplan_problems,
    fill_in,
    load,
    parse,
    resolved,
    security_problems,
    set_dialplan_variables,
)
from agent.config import AmiConfig, AriConfig, Config, TransferConfig, load_config
from agent.runtime.check import transfer_targets

ROOT = Path(__file__).resolve().parents[2]
CONF_FILES = sorted((ROOT / "asterisk-conf").glob("*.conf"))
DIALPLAN_FILES = sorted((ROOT / "dialplans").glob("*.conf"))
EXAMPLE = ROOT / "agent" / "medagent.toml.example"

# --------------------------------------------------------------------------------------------------
# Parser


def test_sections_templates_and_options() -> None:
    cfg = parse(
        "; header comment\n"
        "[phone](!)\n"
        "type = endpoint\n"
        "allow = ulaw ; trailing comment\n"
        "allow = alaw\n"
        "[desk](phone)\n"
        "note = semi\\;colon\n"
        "context => inbound\n"
        "[desk](+)\n"
        "extra = 1\n",
        source="pjsip.conf",
    )
    tpl, desk, more = cfg.sections
    assert (tpl.name, tpl.template, tpl.line) == ("phone", True, 2)
    assert tpl.values("allow") == ["ulaw", "alaw"]
    assert tpl.get("allow") == "alaw"
    assert desk.inherits == ("phone",)
    assert desk.get("note") == "semi;colon"
    assert desk.options[1].arrow
    assert more.append and cfg.named("desk") == [desk, more]
    assert resolved(cfg, desk) == {
        "type": "endpoint",
        "allow": "alaw",
        "note": "semi;colon",
        "context": "inbound",
    }


def test_block_comments_and_includes() -> None:
    cfg = parse(
        "#include common.conf\n"
        '#tryinclude "local.conf"\n'
        "[a]\n"
        "x = 1 ;-- inline --; \n"
        ";-- spans\n"
        "y = 2\n"
        "--;\n"
        "z = 3\n"
    )
    assert [(i.target, i.optional) for i in cfg.includes] == [
        ("common.conf", False),
        ("local.conf", True),
    ]
    assert [(o.key, o.value) for o in cfg.section("a").options] == [("x", "1"), ("z", "3")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\n", "f.conf:1: option 'x' before any [section]"),
        ("[a\n", "f.conf:1: malformed section header '[a'"),
        ("[a]\njunk\n", "f.conf:2: expected 'key = value', got 'junk'"),
        (
            "[a]\n#exec /bin/true\n",
            "f.conf:2: #exec runs a program on every reload; not allowed here",
        ),
        ("[a]\n#incldue x\n", "f.conf:2: unknown directive '#incldue'"),
        ("[b](nope)\n", "f.conf:1: [b] inherits unknown template 'nope'"),
        ("[b](+)\n", "f.conf:1: [b](+) appends to a section that is not defined above"),
        ("[a]\n;-- never closed\n", "f.conf:2: block comment ';--' is never closed"),
    ],
)
def test_parse_errors_name_file_line_and_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse(text, source="f.conf")
    assert str(err.value) == message


def test_load_follows_includes_and_reports_missing(tmp_path: Path) -> None:
    (tmp_path / "extensions.conf").write_text("#include sub.conf\n[general]\nstatic = yes\n")
    (tmp_path / "sub.conf").write_text("[ctx]\nexten => 1,1,NoOp()\n")
    assert [Path(c.source).name for c in load(tmp_path / "extensions.conf")] == [
        "extensions.conf",
        "sub.conf",
    ]
    (tmp_path / "broken.conf").write_text("#include gone.conf\n")
    with pytest.raises(ValueError, match=r"broken.conf:1: #include 'gone.conf' not found"):
        load(tmp_path / "broken.conf")


_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
_VALUE = st.from_regex(r"[A-Za-z0-9/@.,_()$-]{0,20}", fullmatch=True)


@given(st.lists(st.tuples(_KEY, _VALUE), max_size=8), st.booleans())
def test_written_options_parse_back(options: list[tuple[str, str]], arrow: bool) -> None:
    op = "=>" if arrow else "="
    text = "[s]\n" + "".join(f"{k} {op} {v}\n" for k, v in options)
    assert [(o.key, o.value) for o in parse(text).section("s").options] == options


# --------------------------------------------------------------------------------------------------
# Dialplan


def test_dialplan_priorities_labels_and_hints() -> None:
    plan = dialplan(
        [
            parse(
                "[globals]\nX = 1\n"
                "[ctx]\n"
                "include => other\n"
                "exten => 100,hint,PJSIP/desk\n"
                "exten => 100,1,NoOp(start)\n"
                " same => n(retry),Dial(PJSIP/desk,20)\n"
                " same => n,GotoIf($[${X} = 1]?retry)\n"
                "exten => _X.,1,Goto(100,1)\n"
            )
        ]
    )
    ctx = plan["ctx"]
    assert list(plan) == ["ctx"] and ctx.includes == ["other"]
    steps = ctx.extensions["100"]
    assert [(s.priority, s.number, s.label, s.app) for s in steps] == [
        ("hint", 0, None, "hint"),
        ("1", 1, None, "NoOp"),
        ("n", 2, "retry", "Dial"),
        ("n", 3, None, "GotoIf"),
    ]
    assert steps[2].args == "PJSIP/desk,20"
    assert ctx.has("_X.", 1) and not ctx.has("100", 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[c]\nsame => n,NoOp()\n", "<string>:2: 'same =>' with no extension above it"),
        ("[c]\nexten => 1,1\n", "<string>:2: expected 'exten => name,priority,App(args)'"),
        ("[c]\nexten => 1,x,NoOp()\n", "<string>:2: bad priority 'x'"),
        (
            "[c]\nexten => 1,1,NoOp()\nexten => 1,1,NoOp()\n",
            "<string>:3: 1 priority 1 defined twice",
        ),
        ("[c]\nexten => 1,1,9bad\n", "<string>:2: expected App(args), got '9bad'"),
        ("[c]\nfoo = bar\n", "<string>:2: unexpected 'foo' in dialplan context"),
    ],
)
def test_dialplan_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        dialplan([parse(text)])
    assert str(err.value) == message


def test_fill_in_replaces_uncomments_or_adds() -> None:
    text = "[general]\nport = 5038 ; CHANGE\n[medagent]\n; comment kept\n;secret =\nread = call\n"
    out = fill_in(
        text,
        {("general", "port"): "6000", ("medagent", "secret"): "s3", ("medagent", "deny"): "x"},
    )
    assert out == (
        "[general]\nport = 6000\n[medagent]\ndeny = x\n; comment kept\nsecret = s3\nread = call\n"
    )
    with pytest.raises(ValueError, match=r"no section \[nope\]"):
        fill_in(text, {("nope", "x"): "1"})


def test_set_dialplan_variables() -> None:
    text = "[s]\nexten => s,1,Set(__A=1)\n same => n,Set(B=2)\n"
    assert set_dialplan_variables(text, {"A": "x", "B": "y"}) == (
        "[s]\nexten => s,1,Set(__A=x)\n same => n,Set(B=y)\n"
    )
    with pytest.raises(ValueError, match="no Set\\(\\) of C in the dialplan"):
        set_dialplan_variables(text, {"C": "1"})


# --------------------------------------------------------------------------------------------------
# The static check of our files


def test_our_files_exist() -> None:
    names = {p.name for p in CONF_FILES}
    assert {
        "ari.conf",
        "http.conf",
        "manager.conf",
        "pjsip.conf",
        "rtp.conf",
        "modules.conf",
    } <= names
    assert {"medagent.conf", "medagent-settings.conf"} <= {p.name for p in DIALPLAN_FILES}


@pytest.mark.parametrize("path", CONF_FILES + DIALPLAN_FILES, ids=lambda p: p.name)
def test_every_file_parses(path: Path) -> None:
    assert parse(path.read_text(), source=str(path)).sections


def ours() -> dict[str, ConfigFile]:
    return {p.name: parse(p.read_text(), source=str(p)) for p in CONF_FILES}


def our_dialplan() -> dict[str, Context]:
    return dialplan([parse(p.read_text(), source=str(p)) for p in DIALPLAN_FILES])


def test_no_wildcard_bind_no_default_password_no_broad_ami_rights() -> None:
    files = [parse(p.read_text(), source=str(p)) for p in CONF_FILES + DIALPLAN_FILES]
    assert security_problems(files) == []


def test_security_check_catches_what_it_is_for() -> None:
    bad = [
        parse("[general]\nbindaddr = 0.0.0.0\n[medagent]\npassword = secret\n", source="ari.conf"),
        parse("[t]\nbind = [::]:5060\n", source="pjsip.conf"),
        parse("[medagent]\nsecret = x\nread = all\nwrite = call,system\n", source="manager.conf"),
    ]
    assert security_problems(bad) == [
        "ari.conf:2: bindaddr = 0.0.0.0 listens on every address",
        "ari.conf:4: [medagent] password has a value; ship it empty so that no default credential works",
        "pjsip.conf:2: bind = [::]:5060 listens on every address",
        "manager.conf:2: [medagent] secret has a value; ship it empty so that no default credential works",
        "manager.conf:3: [medagent] read grants all",
        "manager.conf:4: [medagent] write grants system",
    ]


def test_dialplan_has_what_the_agent_refers_to() -> None:
    transfer, ari = TransferConfig(), AriConfig()
    plan = our_dialplan()
    fallback = (transfer.fallback_context, transfer.fallback_extension, transfer.fallback_priority)
    assert dialplan_problems(plan, app=ari.app, fallback=fallback) == []
    settings = (ROOT / "dialplans" / "medagent-settings.conf").read_text()
    assert f"Set(__MEDAGENT_APP={ari.app})" in settings


def test_dialplan_check_catches_what_it_is_for() -> None:
    plan = dialplan(
        [
            parse(
                "[in]\nexten => s,1,Goto(nowhere,s,1)\n same => n,Dial(Local/a@gone/n)\n"
                " same => n,Stasis(other-app)\n"
            )
        ]
    )
    assert dialplan_problems(plan, app="medical-agent", fallback=("medagent-fallback", "s", 1)) == [
        "fallback context 'medagent-fallback' is not defined",
        "in,s,1: Goto to unknown context 'nowhere'",
        "in,s,2: Dial to unknown context 'gone'",
        "in,s,3: Stasis(other-app) but the agent's app is 'medical-agent'",
    ]


def test_users_and_ports_match_the_agent_defaults() -> None:
    files = ours()
    ari_conf, http, manager = files["ari.conf"], files["http.conf"], files["manager.conf"]
    ari, ami = AriConfig(), AmiConfig()
    assert ari_conf.section(ari.username).get("type") == "user"
    url = urlsplit(ari.url)
    general = http.section("general")
    assert (general.get("bindaddr"), int(general.get("bindport") or 0)) == (url.hostname, url.port)
    assert manager.section(ami.username) is not None
    assert int(manager.section("general").get("port") or 0) == ami.port
    assert manager.section("general").get("bindaddr") == ami.host


def pjsip_endpoints() -> set[str]:
    pjsip = ours()["pjsip.conf"]
    return {
        s.name
        for s in pjsip.sections
        if not s.template and resolved(pjsip, s).get("type") == "endpoint"
    }


def undefined_endpoints(dial_string: str, endpoints: set[str]) -> list[str]:
    """The parts of a dial string (``&`` rings several together) that name no endpoint of ours;
    ``Local/`` targets are dialplan, which the dialplan checks cover."""
    return [
        part
        for part in dial_string.split("&")
        if not part.startswith("Local/") and part not in {f"PJSIP/{n}" for n in endpoints}
    ]


@pytest.mark.parametrize("source", ["example", "defaults"])
def test_every_transfer_target_is_an_endpoint_of_our_pjsip_conf(source: str) -> None:
    # What `medagent check` looks up over ARI, here without Asterisk: the example configuration
    # (and the built-in defaults it shows) must pass check against the example snippets as shipped.
    cfg = load_config(EXAMPLE) if source == "example" else Config()
    endpoints = pjsip_endpoints()
    missing = [
        f"{key} = {target!r}: {part}"
        for key, target in transfer_targets(cfg)
        for part in undefined_endpoints(target, endpoints)
    ]
    assert missing == [], "not defined in asterisk-conf/pjsip.conf"
    pjsip = ours()["pjsip.conf"]
    for name in endpoints:
        assert resolved(pjsip, pjsip.section(name)).get("allow") is not None, name


def test_every_phone_our_dialplan_dials_is_an_endpoint_of_our_pjsip_conf() -> None:
    endpoints = pjsip_endpoints()
    named = {
        f"{ctx.name},{exten},{step.number}: {target}"
        for ctx in our_dialplan().values()
        for exten, steps in ctx.extensions.items()
        for step in steps
        for target in re.findall(r"PJSIP/[\w.-]+", step.args)
        if undefined_endpoints(target, endpoints)
    }
    assert named == set()


def test_every_provider_of_the_example_has_a_phone_in_our_dialplan() -> None:
    clinicians = our_dialplan()["medagent-clinicians"]
    ids = [p.id for p in load_config(EXAMPLE).practice.providers]
    assert ids and [i for i in ids if not clinicians.has(i)] == []
