"""The stand-in against Asterisk 23.4.1's own documents and recordings.

* every route and parameter it serves is in ``ari-api-docs`` with the same method and name;
* every event it emits during scripted calls validates against the Swagger models;
* replaying the REST requests of ``traces/ari_call_lifecycle.jsonl`` and the error part of
  ``traces/ari_errors.jsonl`` gives the recorded statuses, bodies and event-type sequence.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from agent.core.g711 import ulaw_encode
from agent.pbxsim import PbxSim, PbxSimConfig, PhoneConfig
from agent.pbxsim.ari import ROUTES, AriServer
from agent.pbxsim.model import next_channel_state
from agent.pbxsim.swagger import Models, operations
from agent.pbxsim.testing import AriProbe, RtpPeer

APP = "medical-agent"
# Events a client must ignore and the stand-in does not produce (README: "A fake can emit them
# or not"), plus RTCP-derived variables.
NOT_MODELLED = {"ChannelVarset"}


def tone_ulaw(freq: float, seconds: float) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    return ulaw_encode((np.sin(2 * np.pi * freq * t) * 0.3 * 32767).astype(np.int16))


def load_trace(ref: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (ref / "traces" / name).read_text().splitlines() if line]


@pytest.fixture
async def sim() -> AsyncIterator[PbxSim]:
    s = PbxSim(
        PbxSimConfig(
            phones=(
                PhoneConfig("clinician100", ring_delay_s=0.2),
                PhoneConfig("clinician101", "unavailable"),
            ),
            seed=3,
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


def test_routes_and_parameters_exist_in_api_docs(asterisk_reference: Path) -> None:
    ops = operations(asterisk_reference / "ari-api-docs")
    for route in ROUTES:
        documented = ops.get((route.method, route.path))
        assert documented is not None, f"{route.method} {route.path} is not an ARI operation"
        unknown = set(route.params) - documented
        assert not unknown, f"{route.method} {route.path}: parameters {unknown} not in the api-docs"


async def test_router_serves_exactly_the_route_table() -> None:
    server = AriServer(PbxSim())
    served = {
        (r.method, r.resource.canonical)
        for r in server.app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    assert served == {(r.method, "/ari" + r.path) for r in ROUTES}


async def test_replay_call_lifecycle(
    sim: PbxSim, probe: AriProbe, asterisk_reference: Path
) -> None:
    trace = load_trace(asterisk_reference, "ari_call_lifecycle.jsonl")
    recorded_types = [
        r["event"]["type"]
        for r in trace
        if r["kind"] == "event" and r["event"]["type"] not in NOT_MODELLED
    ]
    rest = [r for r in trace if r["kind"] == "rest"]
    ids: dict[str, str] = {}
    peer = await RtpPeer.open()
    caller = await sim.place_call(exten="100", caller_number="caller", caller_name="Test Patient")
    start = await probe.event("StasisStart")
    recorded_caller = next(r["event"]["channel"]["id"] for r in trace if r["kind"] == "event")
    ids[recorded_caller] = start["channel"]["id"]

    def mapped(text: str) -> str:
        for old, new in ids.items():
            text = text.replace(old, new)
        return text

    statuses: list[int] = []
    em_port = 0
    try:
        for r in rest:
            path = mapped(r["path"])
            query = {k: mapped(str(v)) for k, v in (r["query"] or {}).items()}
            if r["path"] == "/channels/externalMedia":
                query["external_host"] = "{}:{}".format(*peer.address)
            if r["method"] == "DELETE" and r["path"].startswith("/channels/"):
                await caller.hangup()
                await probe.event("StasisEnd", id=ids[recorded_caller])
            if r["path"] == "/channels":  # 3 s of RTP both ways happened here in the recording
                await caller.play(tone_ulaw(440, 0.2))
                await asyncio.sleep(0.05)
            status, body = await probe.request(r["method"], path, **query)
            statuses.append(status)
            if r["path"] in ("/channels/externalMedia", "/bridges") and r["method"] == "POST":
                ids[r["response_body"]["id"]] = body["id"]
                if r["path"] == "/channels/externalMedia":
                    await probe.event("StasisStart", id=body["id"])
                    em_port = int(body["channelvars"]["UNICASTRTP_LOCAL_PORT"])
            if r["path"].endswith("/play"):
                if r["path"].startswith("/channels/"):
                    await caller.send_dtmf("1")
                await probe.event("PlaybackFinished", timeout_s=4)
        await probe.event("BridgeDestroyed")
    finally:
        peer.close()
    assert statuses == [r["status"] for r in rest]
    ours = [e["type"] for e in probe.all_events if e["type"] not in NOT_MODELLED]
    assert ours == recorded_types
    # The externalMedia RTP has the recorded shape.
    rx = [
        json.loads(line)
        for line in (asterisk_reference / "rtp" / "externalmedia_rx.jsonl").read_text().splitlines()
    ]
    pkts = [p for _, p, _ in peer.received]
    assert len(pkts) >= 10  # the caller's 0.2 s, then the bridge playback mixed by softmix
    assert {(p.payload_type, len(p.serialize()), len(p.payload), p.version) for p in pkts} == {
        (r["pt"], r["len"], r["payload_len"], r["v"]) for r in rx
    }
    assert not any(p.padding or p.extension or p.csrc for p in pkts) and not any(
        r["x"] or r["cc"] for r in rx
    )
    steps = {
        ((b.sequence_number - a.sequence_number) % 65536, (b.timestamp - a.timestamp) % 2**32)
        for a, b in zip(pkts[:9], pkts[1:10], strict=True)
    }
    assert steps == {(1, 160)}
    assert {(peer_addr[0], peer_addr[1]) for _, _, peer_addr in peer.received} == {
        ("127.0.0.1", em_port)
    }


async def test_replay_error_responses(sim: PbxSim, asterisk_reference: Path) -> None:
    trace = load_trace(asterisk_reference, "ari_errors.jsonl")
    parts: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    part = 0
    for r in trace:
        if r["kind"] == "note" and r["text"].startswith("part "):
            part = int(r["text"][5])
        elif r["kind"] == "rest" and part in parts:
            parts[part].append(r)
    probe = AriProbe(sim.base_url)
    await probe.connect(APP)
    ids: dict[str, str] = {}
    try:
        for r in parts[1] + parts[2]:
            if r is parts[2][0]:
                # part 2: a caller in the dialplan (ext 300: Playback, Wait), never in Stasis
                caller = await sim.place_call(exten="300")
                await caller.wait_answered(1)
            if r["path"] == "/channels" and r["method"] == "GET":
                if r["response_body"]:
                    ids[r["response_body"][0]["id"]] = caller.channel_id
                continue  # the recording polled until the call arrived
            path = r["path"]
            query = dict(r["query"]) if isinstance(r.get("query"), dict) else {}
            for old, new in ids.items():
                path = path.replace(old, new)
                query = {k: v.replace(old, new) for k, v in query.items()}
            if r["status"] == 401:
                query = r.get("query")
                params = {"api_key": "medagent:wrong"} if isinstance(query, str) else {}
                async with (
                    aiohttp.ClientSession() as s,
                    s.get(sim.base_url + path, params=params) as resp,
                ):
                    assert resp.status == 401
                    assert (
                        resp.headers["WWW-Authenticate"] == 'Basic realm="Asterisk REST Interface"'
                    )
                    assert await resp.json() == {"message": "Authentication required"}
                continue
            status, body = await probe.request(r["method"], path, **query)
            assert status == r["status"], (r["method"], r["path"], r["query"], body)
            if status >= 400 or status == 204 or "variable" in r["path"]:
                assert body == r["response_body"], (r["path"], body)
            if r["path"] == "/bridges" and status == 200:
                ids[r["response_body"]["id"]] = body["id"]
            elif status == 200 and isinstance(r["response_body"], dict):
                assert set(body) == set(r["response_body"]), r["path"]
    finally:
        await probe.close()


async def test_websocket_handshake_errors(sim: PbxSim) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth("medagent", "secret")}
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as bad_password:
            await s.ws_connect(
                sim.base_url + "/events",
                params={"app": APP},
                headers={"Authorization": aiohttp.encode_basic_auth("medagent", "wrong")},
            )
        assert bad_password.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as no_app:
            await s.ws_connect(sim.base_url + "/events", headers=auth)
        assert no_app.value.status == 400
        async with s.get(sim.base_url + "/events", params={"app": APP}, headers=auth) as resp:
            assert resp.status == 426
            assert resp.content_type == "text/html"


async def test_every_event_of_scripted_calls_validates(
    sim: PbxSim, probe: AriProbe, asterisk_reference: Path
) -> None:
    models = Models.load(asterisk_reference / "ari-api-docs")
    peer = await RtpPeer.open()
    try:
        caller = await sim.place_call(exten="100", caller_number="5551234", caller_name="Pat")
        cid = (await probe.event("StasisStart"))["channel"]["id"]
        await probe.request("POST", f"/channels/{cid}/answer")
        _, em = await probe.request(
            "POST",
            "/channels/externalMedia",
            app=APP,
            external_host="{}:{}".format(*peer.address),
            format="ulaw",
        )
        await probe.event("StasisStart", id=em["id"])
        _, br = await probe.request("POST", "/bridges", type="mixing")
        await probe.request("POST", f"/bridges/{br['id']}/addChannel", channel=f"{cid},{em['id']}")
        await probe.request("POST", f"/channels/{cid}/moh")
        await probe.request("DELETE", f"/channels/{cid}/moh")
        await probe.request("POST", f"/channels/{cid}/play", media="sound:nosuchfile")
        await probe.event("PlaybackFinished")
        await probe.request("POST", f"/bridges/{br['id']}/play", media="sound:beep")
        await caller.send_dtmf("5")
        await probe.event("PlaybackFinished")
        _, clin = await probe.request(
            "POST",
            "/channels/create",
            endpoint="PJSIP/clinician100",
            app=APP,
            appArgs="clinician",
            channelId="clin-1",
        )
        await probe.request("POST", "/channels/clin-1/dial", caller=cid, timeout=5)
        await probe.event("Dial", dialstatus="ANSWER")
        await probe.request("POST", f"/bridges/{br['id']}/addChannel", channel="clin-1")
        await probe.request("DELETE", "/channels/clin-1")
        await probe.request(
            "POST", "/channels", endpoint="PJSIP/clinician100", app=APP, channelId="orig-1"
        )
        await probe.event("StasisStart", id="orig-1")
        await probe.request("DELETE", "/channels/orig-1", reason="normal")
        await probe.request(
            "POST",
            f"/channels/{cid}/continue",
            context="medical-inbound",
            extension="300",
            priority=1,
        )
        await probe.event("ChannelDialplan")
        await caller.hangup()
        await probe.request("DELETE", f"/channels/{em['id']}")
        await probe.request("DELETE", f"/bridges/{br['id']}")
        await probe.event("BridgeDestroyed")
    finally:
        peer.close()
    kinds = {e["type"] for e in probe.all_events}
    assert {
        "StasisStart",
        "Dial",
        "ChannelEnteredBridge",
        "PlaybackFinished",
        "ChannelDtmfReceived",
    } <= kinds
    problems = [f"{e['type']}: {p}" for e in probe.all_events for p in models.validate_event(e)]
    assert problems == []


def test_validator_catches_bad_events(asterisk_reference: Path) -> None:
    models = Models.load(asterisk_reference / "ari-api-docs")
    good = next(
        r["event"]
        for r in load_trace(asterisk_reference, "ari_call_lifecycle.jsonl")
        if r["kind"] == "event"
    )
    assert models.validate_event(good) == []
    missing = {k: v for k, v in good.items() if k != "timestamp"}
    assert models.validate_event(missing) == ["$.timestamp: required by StasisStart but missing"]
    bad_state = json.loads(json.dumps(good))
    bad_state["channel"]["state"] = "Answered"
    assert len(models.validate_event(bad_state)) == 1
    bad_date = dict(good, timestamp="2026-11-26T23:53:47Z")
    assert models.validate_event(bad_date)[0].startswith("$.timestamp: expected Date")


async def test_events_from_every_recorded_trace_validate(asterisk_reference: Path) -> None:
    # The validator itself must accept what the real Asterisk sent.
    models = Models.load(asterisk_reference / "ari-api-docs")
    for f in sorted((asterisk_reference / "traces").glob("ari_*.jsonl")):
        for r in load_trace(asterisk_reference, f.name):
            if r["kind"] == "event":
                assert models.validate_event(r["event"]) == [], f.name


def test_channel_state_table_allows_every_recorded_change(asterisk_reference: Path) -> None:
    seen: dict[str, str] = {}
    changes = set()
    for f in sorted((asterisk_reference / "traces").glob("ari_*.jsonl")):
        for r in load_trace(asterisk_reference, f.name):
            ch = (
                r.get("event", {}).get("channel") or r.get("event", {}).get("peer")
                if r["kind"] == "event"
                else None
            )
            if ch:
                before = seen.get(ch["id"])
                if before is not None and before != ch["state"]:
                    changes.add((before, ch["state"]))
                seen[ch["id"]] = ch["state"]
    assert changes  # the recordings do change states
    for before, after in changes:
        assert next_channel_state(before, after) == after
    with pytest.raises(
        ValueError, match="channel state Up -> Ringing is not a change Asterisk makes"
    ):
        next_channel_state("Up", "Ringing")
