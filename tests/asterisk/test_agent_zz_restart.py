"""Asterisk restarted under a live call of our agent: the agent reconnects, cleans up the dead
call, and takes the next one. (File name sorts after the other agent tests: the restart disturbs
the session's Asterisk.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from real_asterisk import RealAsterisk, RealCaller, agent_config, running_agent

from tests.integration.callkit import voiced_seconds

DID = "5551230000"
Dial = Callable[..., Awaitable[RealCaller]]


async def test_restart_with_a_call_up_then_a_new_call_is_taken(
    asterisk: RealAsterisk, dial: Dial, prompt_cache: str
) -> None:
    async with running_agent(agent_config(asterisk), [], cache_dir=prompt_cache) as agent:
        caller = await dial(DID)
        await caller.answered(timeout_s=5)
        await agent.wait_listening()
        assert len(agent.sup.sessions) == 1 and agent.sup.ports.in_use
        began = time.monotonic()
        await asyncio.to_thread(asterisk.restart)
        restart_s = time.monotonic() - began

        # The dead call is cleaned up: reconnect, reconcile (its channel is gone), port released.
        for _ in range(200):
            if agent.ari.connects >= 2 and not agent.sup.sessions and not agent.sup.ports.in_use:
                break
            await asyncio.sleep(0.05)
        assert agent.ari.connects >= 2, "no reconnect after the restart"
        assert not agent.sup.sessions and not agent.sup.ports.in_use
        assert agent.obs.ended_event.is_set()
        recovered_s = time.monotonic() - began - restart_s

        # A new call is taken and greeted.
        agent.obs.ended_event.clear()
        again = await dial(DID)
        await again.answered(timeout_s=5)
        await agent.wait_listening()
        assert voiced_seconds(again.heard()) > 1.0
        assert agent.sup.total_calls == 2
        await again.hangup()
        await asyncio.wait_for(agent.obs.ended_event.wait(), 10)
    # Shown with -s; the figures for the report.
    print(f"asterisk restart {restart_s:.2f} s; agent clean after {recovered_s:.2f} s more")
    assert restart_s < 15, restart_s
    assert recovered_s < 5, recovered_s
