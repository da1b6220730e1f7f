"""Faults the agent must survive, produced on the real Asterisk: the ARI websocket lost without a
close frame, and Asterisk restarted under a live call. (File name sorts last: the restart
disturbs the session's Asterisk, so it runs after every other test of the tier.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
from real_asterisk import ARI_APP, AriEvents, RealAsterisk, RealCaller, TcpCutter, channel_event

DID = "5551230000"
Dial = Callable[..., Awaitable[RealCaller]]


async def test_websocket_drop_keeps_the_call_in_stasis_and_reconnect_resumes(
    asterisk: RealAsterisk, ari_cutter: TcpCutter, ari_http: httpx.AsyncClient, dial: Dial
) -> None:
    agent = await AriEvents.connect(asterisk, ARI_APP, port=ari_cutter.port)
    try:
        caller = await dial(DID)
        start = await agent.wait_for(lambda e: e.get("type") == "StasisStart", 5)
        channel = start["channel"]["id"]
        (await ari_http.post(f"/channels/{channel}/answer")).raise_for_status()
        await caller.answered(timeout_s=5)
        assert ari_cutter.drop() >= 2
        await agent.wait_closed(5)
    finally:
        await agent.close()
    # Asterisk keeps the channel in the app while nobody listens …
    app = (await ari_http.get(f"/applications/{ARI_APP}")).json()
    assert f"channel:{channel}" in app["channel_ids"] or channel in app["channel_ids"]
    # … and a reconnect (through the same relay) gets that channel's later events, but no new
    # StasisStart for it.
    again = await AriEvents.connect(asterisk, ARI_APP, port=ari_cutter.port)
    try:
        await caller.hangup()
        await again.wait_for(channel_event("StasisEnd", channel), 5)
        assert not again.of_type("StasisStart")
    finally:
        await again.close()


async def test_restart_under_a_live_call(
    asterisk: RealAsterisk, agent_app: AriEvents, ari_http: httpx.AsyncClient, dial: Dial
) -> None:
    caller = await dial(DID)
    start = await agent_app.wait_for(lambda e: e.get("type") == "StasisStart", 5)
    channel = start["channel"]["id"]
    (await ari_http.post(f"/channels/{channel}/answer")).raise_for_status()
    await caller.answered(timeout_s=5)
    began = time.monotonic()
    await asyncio.to_thread(asterisk.restart)
    restart_s = time.monotonic() - began
    # The agent's websocket is gone, after the app heard the channel leave.
    await agent_app.wait_for(channel_event("StasisEnd", channel), 5)
    await agent_app.wait_closed(5)
    # A fresh Asterisk: ARI answers with the same user, the old channel is gone.
    assert (await ari_http.get(f"/channels/{channel}")).status_code == 404
    back = await AriEvents.connect(asterisk, ARI_APP)
    await back.close()
    assert restart_s < 15, restart_s
