"""Websocket faults and an Asterisk restart, as recorded in ``traces/ari_errors.jsonl``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from agent.pbxsim import PbxSim, PbxSimConfig
from agent.pbxsim.testing import AriProbe

APP = "medical-agent"


@pytest.fixture
async def sim() -> AsyncIterator[PbxSim]:
    s = PbxSim(PbxSimConfig(seed=1))
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def probe(sim: PbxSim) -> AsyncIterator[AriProbe]:
    p = AriProbe(sim.base_url)
    await p.connect(APP)
    yield p
    await p.close()


@pytest.mark.parametrize(("close_frame", "code"), [(True, 1000), (False, 1006)])
async def test_dropped_websocket_keeps_channel_in_stasis_and_loses_gap_events(
    sim: PbxSim, probe: AriProbe, close_frame: bool, code: int
) -> None:
    caller = await sim.place_call()
    cid = (await probe.event("StasisStart"))["channel"]["id"]
    await probe.request("POST", f"/channels/{cid}/answer")
    await sim.drop_websockets(close_frame=close_frame)
    await asyncio.wait_for(probe.closed.wait(), 2)
    assert probe.close_code == code
    _, app = await probe.request("GET", f"/applications/{APP}")
    assert app["channel_ids"] == [cid]
    await caller.send_dtmf("7")  # during the gap: lost, not replayed
    await probe.connect(APP)
    await probe.request("POST", f"/channels/{cid}/play", media="sound:beep", playbackId="pb-after")
    finished = await probe.event("PlaybackFinished")
    assert finished["playback"]["id"] == "pb-after"
    await caller.hangup()
    await probe.event("StasisEnd", id=cid)
    types = [e["type"] for e in probe.all_events]
    assert types.count("StasisStart") == 1 and "ChannelDtmfReceived" not in types


async def test_stasis_app_unregistered_while_websocket_gone_falls_to_dialplan(
    sim: PbxSim, probe: AriProbe
) -> None:
    await sim.drop_websockets(close_frame=True)
    await asyncio.wait_for(probe.closed.wait(), 2)
    caller = await sim.place_call()
    leg = await sim.phone("frontdesk").wait_answered_call(3)
    assert "Stasis(medical-agent) not registered" in caller.path
    await leg.hangup()
    await caller.wait_ended(1)
    assert caller.hangup_by == "phone"


async def test_restart_hangs_up_drops_without_close_frame_and_comes_back_empty(
    sim: PbxSim, probe: AriProbe
) -> None:
    caller = await sim.place_call()
    cid = (await probe.event("StasisStart"))["channel"]["id"]
    await probe.request("POST", f"/channels/{cid}/answer")
    _, br = await probe.request("POST", "/bridges", type="mixing")
    port = sim.base_url
    await sim.stop()
    hangup = await probe.event("ChannelHangupRequest", id=cid)
    assert (hangup["cause"], hangup["soft"]) == (4, True)
    await probe.event("StasisEnd", id=cid)
    await asyncio.wait_for(probe.closed.wait(), 2)
    assert probe.close_code == 1006
    assert caller.hangup_by == "asterisk"
    with pytest.raises(aiohttp.ClientConnectionError):
        await probe.request("GET", "/channels")  # refused while it is down
    assert await sim.start() == port
    await probe.connect(APP)
    assert await probe.request("GET", "/channels") == (200, [])
    assert await probe.request("GET", f"/bridges/{br['id']}") == (
        404,
        {"message": "Bridge not found"},
    )


async def test_a_second_websocket_for_the_app_replaces_the_first(
    sim: PbxSim, probe: AriProbe
) -> None:
    newer = AriProbe(sim.base_url)
    await newer.connect(APP)
    try:
        replaced = await probe.event("ApplicationReplaced")
        assert replaced["application"] == APP
        await sim.place_call()
        await newer.event("StasisStart")
        await asyncio.sleep(0.05)
        assert [e["type"] for e in probe.all_events] == ["ApplicationReplaced"]
    finally:
        await newer.close()


async def test_httpx_and_websockets_clients_see_the_same_server(sim: PbxSim) -> None:
    # The agent's own client is built on httpx + websockets; check the stand-in with both.
    import base64
    import json

    import httpx
    import websockets

    token = base64.b64encode(b"medagent:secret").decode()
    ws_url = sim.base_url.replace("http://", "ws://") + f"/events?app={APP}"
    async with (
        websockets.connect(ws_url, additional_headers={"Authorization": f"Basic {token}"}) as ws,
        httpx.AsyncClient(base_url=sim.base_url, auth=("medagent", "secret")) as http,
    ):
        await sim.place_call()
        start = json.loads(await asyncio.wait_for(ws.recv(), 2))
        assert start["type"] == "StasisStart"
        resp = await http.post(f"/channels/{start['channel']['id']}/answer")
        assert resp.status_code == 204 and resp.content == b""
        resp = await http.get("/channels")
        assert resp.headers["content-type"] == "application/json"
        assert json.loads(await asyncio.wait_for(ws.recv(), 2))["type"] == "ChannelStateChange"
        assert (await http.get("/nope")).json() == {"message": "Resource not found"}
        await sim.drop_websockets(close_frame=False)
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 2)
        assert closed.value.rcvd is None  # no close frame: the client reports 1006
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(ws_url):
            pass
    assert refused.value.response.status_code == 401
