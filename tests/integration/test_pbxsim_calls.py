"""Whole calls through the stand-in, driven by a bare ARI probe (not the agent's client)."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from agent.core.g711 import ulaw_decode, ulaw_encode
from agent.core.rtp import PT_PCMU, RtpPacket
from agent.pbxsim import PbxSim, PbxSimConfig, PhoneConfig
from agent.pbxsim.testing import AriProbe, RtpPeer

APP = "medical-agent"


def tone(freq: float, seconds: float, level: float = 0.3) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    return ulaw_encode((np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16))


def zero_crossings(ulaw: bytes) -> int:
    pcm = ulaw_decode(ulaw).astype(np.int32)
    return int(np.count_nonzero(np.diff(np.signbit(pcm))))


@pytest.fixture
async def sim() -> AsyncIterator[PbxSim]:
    s = PbxSim(
        PbxSimConfig(
            phones=(
                PhoneConfig("frontdesk", ring_delay_s=0.1),
                PhoneConfig("clinician100", ring_delay_s=0.1),
                PhoneConfig("clinician101", "unavailable"),
                PhoneConfig("billing", "busy"),
                PhoneConfig("nurse", "noanswer"),
            ),
            seed=7,
        )
    )
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def probe(sim: PbxSim) -> AsyncIterator[AriProbe]:
    p = AriProbe(sim.base_url)
    await p.connect(APP)
    yield p
    await p.close()


async def answer_and_bridge(
    probe: AriProbe, peer: RtpPeer, caller_id: str
) -> tuple[str, str, tuple[str, int]]:
    assert (await probe.request("POST", f"/channels/{caller_id}/answer"))[0] == 204
    status, em = await probe.request(
        "POST",
        "/channels/externalMedia",
        app=APP,
        external_host="{}:{}".format(*peer.address),
        format="ulaw",
        encapsulation="rtp",
        transport="udp",
        direction="both",
    )
    assert status == 200 and em["state"] == "Down"
    await probe.event("StasisStart", id=em["id"])
    status, br = await probe.request("POST", "/bridges", type="mixing", name=f"call-{caller_id}")
    assert status == 200
    status, _ = await probe.request(
        "POST", f"/bridges/{br['id']}/addChannel", channel=f"{caller_id},{em['id']}"
    )
    assert status == 204
    vars_ = em["channelvars"]
    return (
        em["id"],
        br["id"],
        (vars_["UNICASTRTP_LOCAL_ADDRESS"], int(vars_["UNICASTRTP_LOCAL_PORT"])),
    )


async def test_inbound_call_media_both_ways_and_caller_hangup(sim: PbxSim, probe: AriProbe) -> None:
    caller = await sim.place_call(exten="100", caller_number="5551234", caller_name="Test Patient")
    start = await probe.event("StasisStart")
    assert start["channel"]["state"] == "Ring"
    assert start["channel"]["dialplan"]["app_name"] == "Stasis"
    cid = start["channel"]["id"]
    peer = await RtpPeer.open()
    try:
        em_id, br_id, ast = await answer_and_bridge(probe, peer, cid)
        # caller → agent: 0.4 s of 440 Hz arrives as PT 0 / 160-byte frames from the advertised port
        await caller.play(tone(440, 0.4))
        await asyncio.sleep(0.05)
        pkts = [p for _, p, addr in peer.received]
        assert len(pkts) == 20
        assert {p.payload_type for p in pkts} == {PT_PCMU}
        assert {len(p.serialize()) for p in pkts} == {172}
        assert {addr for _, _, addr in peer.received} == {ast}
        assert all(
            (b.sequence_number - a.sequence_number) % 65536 == 1
            for a, b in zip(pkts, pkts[1:], strict=False)
        )
        assert all(
            (b.timestamp - a.timestamp) % 2**32 == 160 for a, b in zip(pkts, pkts[1:], strict=False)
        )
        # agent → caller: 700 Hz, heard on the caller's timeline
        t0 = asyncio.get_running_loop().time()
        for i, chunk in enumerate(range(0, 3200, 160)):
            peer.send(
                RtpPacket(
                    0, 100 + i, 1000 + 160 * i, 0x5EED0001, tone(700, 0.4)[chunk : chunk + 160]
                ),
                ast,
            )
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        first = caller.first_audio_after(t0)
        assert first is not None and first - t0 < 0.1
        at = int((first - caller.timeline.start_s) * 8000)
        heard = ulaw_decode(caller.heard_ulaw()[at : at + 3200]).astype(np.float64)
        peak = np.fft.rfftfreq(len(heard), 1 / 8000)[int(np.argmax(np.abs(np.fft.rfft(heard))))]
        assert abs(peak - 700) < 30  # the agent's 700 Hz, not the caller's own 440 Hz
        # DTMF from the caller is an ARI event, not audio
        await caller.send_dtmf("1")
        dtmf = await probe.event("ChannelDtmfReceived")
        assert (dtmf["digit"], dtmf["duration_ms"]) == ("1", 100)
        # caller BYE while bridged: HangupRequest → LeftBridge → StasisEnd, then nothing more
        await caller.hangup()
        types = [(await probe.events.get())["type"] for _ in range(3)]
        assert types == ["ChannelHangupRequest", "ChannelLeftBridge", "StasisEnd"]
        assert caller.hangup_by == "caller"
        assert (await probe.request("DELETE", f"/channels/{em_id}"))[0] == 204
        assert (await probe.request("DELETE", f"/bridges/{br_id}"))[0] == 204
    finally:
        peer.close()


async def test_no_agent_connected_falls_back_to_front_desk(sim: PbxSim, tmp_path: Path) -> None:
    caller = await sim.place_call(exten="100", caller_number="5551234")
    desk = sim.phone("frontdesk")
    leg = await desk.wait_answered_call(2.0)
    await leg.play(tone(500, 0.2))
    await asyncio.sleep(0.05)
    assert len(caller.heard_ulaw()) > 0
    await leg.hangup()
    await caller.wait_ended(2.0)
    assert "Stasis(medical-agent) not registered" in caller.path
    assert "answered(PJSIP/frontdesk)" in caller.path
    assert caller.answered_at is not None
    caller.save_wav(tmp_path / "caller.wav")
    with wave.open(str(tmp_path / "caller.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() == len(caller.heard_ulaw())


async def test_continue_goes_through_fallback_to_voicemail(sim: PbxSim, probe: AriProbe) -> None:
    sim.phone("frontdesk").behaviour = "busy"
    caller = await sim.place_call(exten="100", caller_number="5551234")
    cid = (await probe.event("StasisStart"))["channel"]["id"]
    status, _ = await probe.request(
        "POST", f"/channels/{cid}/continue", context="medagent-fallback", extension="s", priority=1
    )
    assert status == 204
    assert [(await probe.events.get())["type"] for _ in range(2)] == [
        "StasisEnd",
        "ChannelDialplan",
    ]
    await asyncio.sleep(0.2)
    assert "BUSY" in caller.path
    for _ in range(100):
        if sim.voicemails.get("100"):
            break
        await asyncio.sleep(0.05)
    await caller.play(tone(300, 0.2))
    await caller.hangup()
    vm = sim.voicemails["100"][0]
    assert vm.caller_number == "5551234" and len(vm.audio) >= 1600
    assert caller.path[:2] == ["Stasis(medical-agent)", "continue(medagent-fallback,s,1)"]


async def test_caller_giving_up_while_the_desk_rings_ends_the_dial(sim: PbxSim) -> None:
    sim.phone("frontdesk").behaviour = "noanswer"
    caller = await sim.place_call(exten="100")
    await asyncio.sleep(0.1)
    desk_leg = sim.phone("frontdesk").calls[-1]
    assert desk_leg.state == "Ringing"
    assert sim.phone("frontdesk").device_state() == "RINGING"
    await caller.hangup()
    await desk_leg.wait_ended(0.5)  # not after the 20 s dial timeout
    assert sim.phone("frontdesk").device_state() == "NOT_INUSE"


async def test_bridge_play_to_a_lone_caller_and_stopping_playbacks(
    sim: PbxSim, probe: AriProbe
) -> None:
    caller = await sim.place_call()
    cid = (await probe.event("StasisStart"))["channel"]["id"]
    await probe.request("POST", f"/channels/{cid}/answer")
    _, br = await probe.request("POST", "/bridges", type="mixing")
    await probe.request("POST", f"/bridges/{br['id']}/addChannel", channel=cid)
    t = asyncio.get_running_loop().time()
    await probe.request("POST", f"/bridges/{br['id']}/play", media="sound:beep")
    assert (await probe.event("PlaybackFinished"))["playback"]["state"] == "done"
    first = caller.first_audio_after(t)
    assert first is not None and first - t < 0.15
    status, pb = await probe.request(
        "POST", f"/channels/{cid}/play", media="sound:hello-world", playbackId="long"
    )
    assert (status, pb["state"]) == (201, "queued")
    await probe.event("PlaybackStarted")
    assert (await probe.request("GET", "/playbacks/long"))[1]["state"] == "playing"
    assert (await probe.request("DELETE", "/playbacks/long"))[0] == 204
    await probe.event("PlaybackFinished")
    await asyncio.sleep(0.1)
    assert [e["type"] for e in probe.all_events].count("PlaybackFinished") == 2
    assert (await probe.request("GET", "/playbacks/long"))[0] == 404
    await probe.request("POST", f"/channels/{cid}/dtmf", dtmf="12#")
    assert caller.dtmf_heard == ["1", "2", "#"]
