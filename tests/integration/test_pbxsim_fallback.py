"""The stand-in running our own dialplan (dialplans/*.conf through agent/pbxsim/dialplan_import.py):
calls follow the practice's fallback path as on the real Asterisk (tests/asterisk/
test_dialplan_fallback.py and test_agent_fallback.py show the same cases there)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.adapters.ari.client import AriClient
from agent.config import AriConfig, Config, MediaConfig, TransferConfig
from agent.pbxsim import PbxSim, PbxSimConfig, PhoneConfig
from agent.pbxsim.dialplan import Dialplan
from agent.pbxsim.dialplan_import import import_dialplan, import_our_dialplan
from agent.pbxsim.handsets import Behaviour, SimLeg
from agent.pbxsim.testing import AriProbe
from agent.runtime.fallback import ORPHAN_MARGIN, OUR_CHANNEL_PREFIX, recover_stranded
from agent.runtime.supervisor import Supervisor
from tests.fakes.engines import fake_engines

ROOT = Path(__file__).resolve().parents[2]
APP = "medical-agent"
DID = "5551230000"
FAST = {"MEDAGENT_FRONTDESK_RING_S": "1", "MEDAGENT_ONCALL_RING_S": "1"}


def ours() -> Dialplan:
    return import_our_dialplan(ROOT, dids=[DID], variables=FAST)


async def start_sim(dialplan: Dialplan, frontdesk: Behaviour = "answer") -> PbxSim:
    sim = PbxSim(
        PbxSimConfig(
            dialplan=dialplan,
            inbound_context="medagent-inbound",
            phones=(
                PhoneConfig("frontdesk", frontdesk, ring_delay_s=0.1),
                PhoneConfig("clinician100", ring_delay_s=0.1),
                PhoneConfig("clinician101", "unavailable"),
            ),
            seed=11,
        )
    )
    await sim.start()
    return sim


@pytest.fixture
async def sim() -> AsyncIterator[PbxSim]:
    s = await start_sim(ours())
    yield s
    await s.stop()


async def wait_path(leg: SimLeg, text: str, timeout_s: float = 5.0) -> list[str]:
    for _ in range(int(timeout_s / 0.02)):
        if any(text in step for step in leg.path):
            return leg.path
        await asyncio.sleep(0.02)
    raise AssertionError(f"{text!r} never in the call's path: {leg.path}")


# -- the import itself ------------------------------------------------------------------------------


def test_our_dialplan_flattens_to_the_stand_ins_steps() -> None:
    dp = import_our_dialplan(ROOT, dids=[DID])
    steps = [f"{s.app}({s.data})" for s in dp.contexts["medagent-inbound"][DID] if s.app != "NoOp"]
    # Dial(Local/agent@medagent-agent/n,…) → Stasis on the caller's channel; its fallback kept.
    assert steps == [f"Stasis({APP},{DID})", "Goto(medagent-fallback,s,1)"]
    fallback = [
        f"{s.app}({s.data})" for s in dp.contexts["medagent-fallback"]["s"] if s.app != "NoOp"
    ]
    assert fallback == ["Dial(PJSIP/frontdesk,25)", "VoiceMail(100@default)"]
    oncall = [f"{s.app}({s.data})" for s in dp.contexts["medagent-oncall"]["s"] if s.app != "NoOp"]
    assert oncall == [
        "Dial(PJSIP/clinician100,20)",
        "Dial(PJSIP/clinician101,20)",
        "VoiceMail(101@default)",
    ]
    transfer = TransferConfig()
    assert dp.step(transfer.fallback_context, transfer.fallback_extension, 1) is not None


def test_after_hours_only_mode_follows_the_office_hours() -> None:
    mode = {"MEDAGENT_MODE": "after_hours_only"}
    with pytest.raises(
        ValueError, match=r"medagent-settings\.conf:\d+: GotoIfTime needs office_open"
    ):
        import_our_dialplan(ROOT, dids=[DID], variables=mode)
    open_ = import_our_dialplan(ROOT, dids=[DID], variables=mode, office_open=True)
    closed = import_our_dialplan(ROOT, dids=[DID], variables=mode, office_open=False)
    assert [s.app for s in open_.contexts["medagent-inbound"][DID] if s.app != "NoOp"] == ["Goto"]
    assert [s.app for s in closed.contexts["medagent-inbound"][DID] if s.app != "NoOp"] == [
        "Stasis",
        "Goto",
    ]


def test_what_the_stand_in_cannot_run_is_refused_at_import(tmp_path: Path) -> None:
    conf = tmp_path / "extensions.conf"
    conf.write_text("[medagent-inbound]\nexten => s,1,MixMonitor(x.wav)\n same => n,Hangup()\n")
    with pytest.raises(ValueError, match=r"extensions\.conf:2: MixMonitor\(\) is not modelled"):
        import_dialplan([conf], entry_contexts=["medagent-inbound"])
    conf.write_text("[medagent-inbound]\nexten => s,1,GotoIf($[${RAND(1,2)} = 1]?2)\n")
    with pytest.raises(ValueError, match=r"extensions\.conf:2: cannot"):
        import_dialplan([conf], entry_contexts=["medagent-inbound"])


@pytest.mark.parametrize(
    ("pattern", "exten", "matches"),
    [
        ("_X.", "5551230000", True),
        ("_X.", "+15551230000", False),
        ("_+X.", "+15551230000", True),
        ("_NXX", "555", True),
        ("_NXX", "155", False),
        ("_[15]00", "500", True),
        ("_[15]00", "300", False),
        ("_X.", "5", False),  # "." is one or more
    ],
)
def test_did_extension_patterns(tmp_path: Path, pattern: str, exten: str, matches: bool) -> None:
    conf = tmp_path / "extensions.conf"
    conf.write_text(f"[medagent-inbound]\nexten => {pattern},1,Playback(hello-world)\n")
    dp = import_dialplan([conf], dids=[exten], entry_contexts=["medagent-inbound"])
    assert dp.has_extension("medagent-inbound", exten) is matches


def test_gosub_arguments_return_values_and_expressions(tmp_path: Path) -> None:
    conf = tmp_path / "extensions.conf"
    conf.write_text(
        "[medagent-inbound]\n"
        "exten => s,1,Set(__BOX=7@default)\n"
        " same => n,Gosub(pick,s,1(${BOX},3))\n"
        ' same => n,GotoIf($["${GOSUB_RETVAL}" = "long"]?long)\n'
        " same => n,Playback(short)\n"
        " same => n,Hangup()\n"
        " same => n(long),Wait(${IF($[${LEN(${BOX})} >= 9]?9:1)})\n"
        " same => n,VoiceMail(${BOX},u)\n"
        "[pick]\n"
        "exten => s,1,GotoIf($[${LEN(${ARG1})} > ${ARG2}]?big)\n"
        " same => n,Return(short)\n"
        " same => n(big),Return(long)\n"
    )
    dp = import_dialplan([conf], entry_contexts=["medagent-inbound"])
    steps = [f"{s.app}({s.data})" for s in dp.contexts["medagent-inbound"]["s"]]
    assert steps == ["Wait(9)", "VoiceMail(7@default)"]


# -- calls on the stand-in ----------------------------------------------------------------------------


async def test_agent_not_connected_goes_to_the_front_desk(sim: PbxSim) -> None:
    caller = await sim.place_call(DID, caller_number="5550001234")
    path = await wait_path(caller, "answered(PJSIP/frontdesk)")
    assert f"Stasis({APP}) not registered" in path
    assert path.index("Goto(medagent-fallback,s,1)") < path.index("Dial(PJSIP/frontdesk,1)")
    await caller.hangup()


async def test_front_desk_not_answering_goes_to_voicemail() -> None:
    sim = await start_sim(ours(), frontdesk="noanswer")
    try:
        caller = await sim.place_call(DID, caller_number="5550001234")
        path = await wait_path(caller, "VoiceMail(100@default)", 5)
        assert "NOANSWER" in path
        await caller.wait_answered(5)
        for _ in range(100):
            if sim.voicemails.get("100"):
                break
            await asyncio.sleep(0.05)
        assert [v.caller_number for v in sim.voicemails["100"]] == ["5550001234"]
        await caller.hangup()
    finally:
        await sim.stop()


async def test_agent_hand_back_reaches_the_front_desk(sim: PbxSim) -> None:
    probe = AriProbe(sim.base_url)
    await probe.connect(APP)
    try:
        caller = await sim.place_call(DID, caller_number="5550001234")
        start = await probe.event("StasisStart")
        assert start["args"] == [DID]
        channel = start["channel"]["id"]
        assert (await probe.request("POST", f"/channels/{channel}/answer"))[0] == 204
        t = TransferConfig()
        status, _ = await probe.request(
            "POST",
            f"/channels/{channel}/continue",
            context=t.fallback_context,
            extension=t.fallback_extension,
            priority=t.fallback_priority,
        )
        assert status == 204
        await wait_path(caller, "answered(PJSIP/frontdesk)")
        await caller.hangup()
    finally:
        await probe.close()


async def test_agent_killed_mid_call_strands_the_caller_as_asterisk_does(sim: PbxSim) -> None:
    """Measured on Asterisk 23 (tests/asterisk/test_agent_fallback.py): the channel stays in
    Stasis when the app's websocket dies, and the dialplan's fallback does not run. An ARI client
    (a restarted agent) can still continue it to the front desk; new calls go there at once."""
    probe = AriProbe(sim.base_url)
    await probe.connect(APP)
    caller = await sim.place_call(DID, caller_number="5550001234")
    start = await probe.event("StasisStart")
    channel = start["channel"]["id"]
    assert (await probe.request("POST", f"/channels/{channel}/answer"))[0] == 204
    await sim.drop_websockets(close_frame=False)  # the process died: no close frame
    await probe.close()

    await asyncio.sleep(1.5)
    assert not any("frontdesk" in step for step in caller.path), caller.path
    assert caller.state == "Up"
    restarted = AriProbe(sim.base_url)
    try:
        status, app = await restarted.request("GET", f"/applications/{APP}")
        assert status == 200 and channel in app["channel_ids"]
        status, _ = await restarted.request(
            "POST", f"/channels/{channel}/continue", context="medagent-fallback", extension="s"
        )
        assert status == 204
        await wait_path(caller, "answered(PJSIP/frontdesk)")
        await caller.hangup()

        # With no app connected, the next call goes straight to the front desk.
        second = await sim.place_call(DID, caller_number="5550009999")
        path = await wait_path(second, "answered(PJSIP/frontdesk)")
        assert f"Stasis({APP}) not registered" in path
        await second.hangup()
    finally:
        await restarted.close()


async def test_restarted_agent_hands_the_stranded_caller_to_the_front_desk(
    sim: PbxSim, tmp_path: Path
) -> None:
    """The same kill, then our own agent (Supervisor + AriClient, fake engines) starts again: it
    finds the caller its predecessor left in Stasis and continues it into our fallback."""
    probe = AriProbe(sim.base_url)
    await probe.connect(APP)
    caller = await sim.place_call(DID, caller_number="5550001234")
    start = await probe.event("StasisStart")
    assert (await probe.request("POST", f"/channels/{start['channel']['id']}/answer"))[0] == 204
    await sim.drop_websockets(close_frame=False)
    await probe.close()
    # The restart comes later than the supervisor's margin for calls whose StasisStart may still
    # be in flight (a restarted service takes seconds anyway).
    await asyncio.sleep(ORPHAN_MARGIN.total_seconds() + 0.3)
    assert not any("frontdesk" in step for step in caller.path)

    cfg = Config(
        ari=AriConfig(url=sim.base_url, username="medagent", password="secret", app=APP),
        media=MediaConfig(port_min=42000, port_max=42999),
    )
    engines, _ = await fake_engines(cfg, [], tmp_cache=str(tmp_path))
    ari = AriClient(cfg.ari)
    ari.start()
    sup = Supervisor(cfg, ari, engines)
    runner = asyncio.create_task(sup.run(), name="supervisor")
    try:
        await ari.wait_connected(5)
        path = await wait_path(caller, "answered(PJSIP/frontdesk)")
        assert "continue(medagent-fallback,s,1)" in path
        assert sup.sessions == {}, "the stranded caller is handed on, not taken as a new call"
        await caller.hangup()
    finally:
        await sup.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await ari.close()
        await engines.aclose()


async def test_start_up_recovery_hands_on_the_caller_and_removes_what_the_dead_agent_left(
    sim: PbxSim,
) -> None:
    """What ``medagent run`` does before it loads its models: the caller a killed agent left in
    Stasis goes to the front desk, and that agent's bridge is destroyed (one was left behind)."""
    probe = AriProbe(sim.base_url)
    await probe.connect(APP)
    caller = await sim.place_call(DID, caller_number="5550001234")
    start = await probe.event("StasisStart")
    channel = start["channel"]["id"]
    assert (await probe.request("POST", f"/channels/{channel}/answer"))[0] == 204
    status, _ = await probe.request(
        "POST", "/bridges", type="mixing", bridgeId=f"{OUR_CHANNEL_PREFIX}br-dead1"
    )
    assert status == 200
    assert (
        await probe.request(
            "POST", f"/bridges/{OUR_CHANNEL_PREFIX}br-dead1/addChannel", channel=channel
        )
    )[0] == 204
    await sim.drop_websockets(close_frame=False)  # the agent is killed
    await probe.close()
    await asyncio.sleep(ORPHAN_MARGIN.total_seconds() + 0.3)

    cfg = AriConfig(url=sim.base_url, username="medagent", password="secret", app=APP)
    ari = AriClient(cfg)  # REST only: no events websocket yet, as in the start-up pass
    try:
        done = await recover_stranded(ari, APP, TransferConfig(), before=datetime.now(UTC))
        assert (done.callers, done.bridges) == (1, 1)
        path = await wait_path(caller, "answered(PJSIP/frontdesk)")
        assert "continue(medagent-fallback,s,1)" in path
        assert not [b for b in await ari.list_bridges() if b.id.startswith(OUR_CHANNEL_PREFIX)]
        await caller.hangup()
    finally:
        await ari.close()
