"""The front desk is still reached when our agent cannot keep a call, on the real Asterisk.

What Asterisk does when the agent process dies mid-call (measured here, Asterisk 23.4.1): the
kernel closes the ARI websocket, the app ``medical-agent`` stays registered but inactive, and the
agent's Local ``;2`` channel stays in Stasis, in our bridge with our externalMedia channel, with
no timeout. The caller's own channel is in ``Dial(Local/agent@…)``, which was answered, so the
dialplan's fallback never runs: the caller hears dead air until they hang up. Only an ARI client
can get the call out: ``GET /applications/medical-agent`` still lists the orphaned channel, and
``continue`` to ``medagent-fallback,s,1`` reaches the front desk. Once the app is inactive, new
calls fail Stasis at once (STASISSTATUS=FAILED) and go to the front desk. So the agent, when its
websocket (re)connects, looks for such stranded calls and hands them to the fallback
(``Supervisor._recover_orphans``); systemd restarts a killed agent within seconds.

Over capacity, the agent answers its Local ``;2`` leg before continuing it to the fallback: left
unanswered, the caller's ``Dial(Local/agent@…,MEDAGENT_ANSWER_TIMEOUT_S)`` would still be timing
that leg, cancel a front desk that had not answered by then, and ring it a second time through the
caller's own fallback (measured before the fix).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from real_asterisk import (
    ARI_APP,
    ROOT,
    AriEvents,
    RealAsterisk,
    RealCaller,
    SipPhone,
    agent_config,
    running_agent,
)

DID = "5551230000"
Dial = Callable[..., Awaitable[RealCaller]]
Phone = Callable[[str, str], SipPhone]

AGENT_PROCESS = """
import asyncio, json, sys
from pathlib import Path
from typing import Any
from real_asterisk import Ports, RealAsterisk, agent_config, running_agent

async def main() -> None:
    s = json.loads(sys.argv[1])
    box = RealAsterisk(Path(s["workdir"]), ports=Ports(s["http"], 0, 0, 0, 0, 0, 0),
                       ari_password=s["password"])
    cfg = agent_config(box, max_calls=s["max_calls"])
    async with running_agent(cfg, [], cache_dir=s["cache"]) as agent:
        print("ready", flush=True)
        await agent.wait_listening()
        print("in-call", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@asynccontextmanager
async def agent_process(
    asterisk: RealAsterisk, cache: str, *, max_calls: int = 4
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Our agent (fake engines) in a process of its own, so a test can SIGKILL it."""
    settings = {
        "workdir": str(asterisk.workdir),
        "http": asterisk.ports.http,
        "password": asterisk.ari_password,
        "max_calls": max_calls,
        "cache": cache,
    }
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{Path(__file__).parent}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        AGENT_PROCESS,
        json.dumps(settings),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def expect_line(proc: asyncio.subprocess.Process, line: str, timeout_s: float) -> None:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout_s):
        while True:
            got = await proc.stdout.readline()
            if not got:
                raise AssertionError(f"agent process ended before {line!r}")
            if got.decode().strip() == line:
                return


def varset(name: str, value: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e.get("type") == "ChannelVarset"
        and e.get("variable") == name
        and (value is None or e.get("value") == value)
    )


def front_desk_answered(e: dict[str, Any]) -> bool:
    return (
        e.get("type") == "Dial"
        and e.get("dialstatus") == "ANSWER"
        and e.get("peer", {}).get("name", "").startswith("PJSIP/frontdesk")
    )


async def test_agent_killed_mid_call_strands_the_caller_until_an_ari_client_continues_it(
    asterisk: RealAsterisk,
    ari_tap: AriEvents,
    ari_http: httpx.AsyncClient,
    dial: Dial,
    desk_phone: Phone,
    prompt_cache: str,
) -> None:
    async with agent_process(asterisk, prompt_cache) as proc:
        await expect_line(proc, "ready", 20)
        caller = await dial(DID)
        await caller.answered(timeout_s=5)
        await expect_line(proc, "in-call", 10)
        app = (await ari_http.get(f"/applications/{ARI_APP}")).json()
        (agent_leg,) = [c for c in app["channel_ids"] if not c.startswith("medagent-")]
        mark = len(ari_tap.events)
        proc.kill()
        await proc.wait()

    # Longer than the agent's answer window and a front desk ring: nothing moves.
    await asyncio.sleep(asterisk.settings.answer_timeout_s + 1.5)
    moved = [e for e in ari_tap.events[mark:] if e.get("type") in ("Dial", "StasisEnd")]
    assert moved == []
    app = (await ari_http.get(f"/applications/{ARI_APP}")).json()
    assert agent_leg in app["channel_ids"], app
    channel = (await ari_http.get(f"/channels/{agent_leg}")).json()
    assert channel["state"] == "Up" and channel["dialplan"]["app_name"] == "Stasis"
    heard = len(caller.heard())
    await asyncio.sleep(0.5)
    assert caller.heard()[heard:].count(0xFF) >= len(caller.heard()[heard:]) - 8, "dead air"

    # Recovery: what a restarted agent can do with the orphan (the dialplan cannot).
    phone = desk_phone("frontdesk", "answer")
    r = await ari_http.post(
        f"/channels/{agent_leg}/variable",
        params={"variable": "MEDAGENT_REASON", "value": "agent-restart"},
    )
    r.raise_for_status()
    r = await ari_http.post(
        f"/channels/{agent_leg}/continue",
        params={"context": "medagent-fallback", "extension": "s", "priority": "1"},
    )
    assert r.status_code == 204
    dialed = await ari_tap.wait_for(front_desk_answered, 5, start=mark)
    assert dialed["caller"]["id"] == agent_leg
    await caller.hangup()
    assert await phone.wait(10) == 0
    # The dead agent's media channel and bridge stay behind until someone removes them.
    left = [c["id"] for c in (await ari_http.get("/channels")).json()]
    assert any(c.startswith("medagent-em-") for c in left), left
    for cid in left:
        if cid.startswith("medagent-em-"):
            await ari_http.delete(f"/channels/{cid}")
    for bridge in (await ari_http.get("/bridges")).json():
        if bridge["id"].startswith("medagent-br-"):
            await ari_http.delete(f"/bridges/{bridge['id']}")


async def test_agent_gone_new_calls_reach_the_front_desk(
    asterisk: RealAsterisk, ari_tap: AriEvents, dial: Dial, desk_phone: Phone, prompt_cache: str
) -> None:
    """The websocket of a process that existed is gone (app inactive, not unknown)."""
    async with agent_process(asterisk, prompt_cache) as proc:
        await expect_line(proc, "ready", 20)
        proc.kill()
        await proc.wait()
    phone = desk_phone("frontdesk", "answer")
    mark = len(ari_tap.events)
    caller = await dial(DID)
    await ari_tap.wait_for(varset("MEDAGENT_REASON", "agent-unavailable"), 5, start=mark)
    await ari_tap.wait_for(front_desk_answered, 5, start=mark)
    await caller.answered(timeout_s=5)
    await caller.hangup()
    assert await phone.wait(10) == 0


async def test_agent_at_capacity_hands_the_second_call_to_the_front_desk(
    asterisk: RealAsterisk, ari_tap: AriEvents, dial: Dial, desk_phone: Phone, prompt_cache: str
) -> None:
    phone = desk_phone("frontdesk", "answer")
    async with running_agent(
        agent_config(asterisk, max_calls=1), [], cache_dir=prompt_cache
    ) as agent:
        first = await dial(DID, caller_id='"First" <5551111111>')
        await first.answered(timeout_s=5)
        await agent.wait_listening()
        mark = len(ari_tap.events)
        second = await dial(DID, caller_id='"Second" <5552222222>')
        reason = await ari_tap.wait_for(varset("MEDAGENT_REASON", "capacity"), 5, start=mark)
        assert reason["channel"]["caller"]["number"] == "5552222222"
        dialed = await ari_tap.wait_for(front_desk_answered, 5, start=mark)
        assert dialed["caller"]["caller"]["number"] == "5552222222"
        await second.answered(timeout_s=5)
        assert agent.sup.fallbacks == 1 and len(agent.sup.sessions) == 1
        await second.hangup()
        assert await phone.wait(10) == 0
        await first.hangup()
        await asyncio.wait_for(agent.obs.ended_event.wait(), 10)


async def test_restarted_agent_hands_calls_stranded_by_its_predecessor_to_the_front_desk(
    asterisk: RealAsterisk,
    ari_tap: AriEvents,
    ari_http: httpx.AsyncClient,
    dial: Dial,
    desk_phone: Phone,
    prompt_cache: str,
) -> None:
    async with agent_process(asterisk, prompt_cache) as proc:
        await expect_line(proc, "ready", 20)
        caller = await dial(DID)
        await caller.answered(timeout_s=5)
        await expect_line(proc, "in-call", 10)
        proc.kill()
        await proc.wait()
    phone = desk_phone("frontdesk", "answer")
    mark = len(ari_tap.events)
    try:
        async with running_agent(agent_config(asterisk), [], cache_dir=prompt_cache):
            await ari_tap.wait_for(front_desk_answered, 5, start=mark)
    finally:
        await caller.hangup()
        for channel in (await ari_http.get("/channels")).json():
            if channel["id"].startswith("medagent-"):
                await ari_http.delete(f"/channels/{channel['id']}")
        for bridge in (await ari_http.get("/bridges")).json():
            if bridge["id"].startswith("medagent-"):
                await ari_http.delete(f"/bridges/{bridge['id']}")
    assert await phone.wait(10) == 0


async def test_at_capacity_a_slow_front_desk_rings_once_for_its_full_time(
    asterisk: RealAsterisk, ari_tap: AriEvents, dial: Dial, desk_phone: Phone, prompt_cache: str
) -> None:
    desk_phone("frontdesk", "noanswer")
    async with running_agent(
        agent_config(asterisk, max_calls=1), [], cache_dir=prompt_cache
    ) as agent:
        first = await dial(DID, caller_id='"First" <5551111111>')
        await first.answered(timeout_s=5)
        await agent.wait_listening()
        mark = len(ari_tap.events)
        await dial(DID, caller_id='"Second" <5552222222>')
        ring_s = asterisk.settings.frontdesk_ring_s
        ended = await ari_tap.wait_for(
            lambda e: (
                e.get("type") == "Dial"
                and e.get("dialstatus") not in ("", "RINGING", None)
                and e.get("peer", {}).get("name", "").startswith("PJSIP/frontdesk")
            ),
            ring_s + 3,
            start=mark,
        )
        assert ended["dialstatus"] == "NOANSWER", ended["dialstatus"]  # not CANCEL
        await first.hangup()
