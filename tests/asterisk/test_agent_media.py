"""The caller a test controls (RealCaller) against a test playing the agent on the real Asterisk:
audio both ways, bit for bit, and a hangup from either side reaching the other."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from real_asterisk import AriEvents, MediaLeg, RealAsterisk, RealCaller, channel_event

DID = "5551230000"
Dial = Callable[..., Awaitable[RealCaller]]


def speech_like(n_bytes: int, seed: int) -> bytes:
    """Arbitrary μ-law codes except 0x7F (-0), which a transcoding hop may rewrite as 0xFF."""
    rng = random.Random(seed)
    return bytes(rng.choice([c for c in range(256) if c != 0x7F]) for _ in range(n_bytes))


@pytest.fixture
async def agent_call(
    asterisk: RealAsterisk, agent_app: AriEvents, ari_http: httpx.AsyncClient, dial: Dial
) -> AsyncIterator[tuple[RealCaller, str, MediaLeg]]:
    """A call into our dialplan answered by the 'agent' with its own externalMedia leg."""
    caller = await dial(DID)
    start = await agent_app.wait_for(lambda e: e.get("type") == "StasisStart", 5)
    channel = start["channel"]["id"]
    (await ari_http.post(f"/channels/{channel}/answer")).raise_for_status()
    await caller.answered(timeout_s=5)
    leg = await MediaLeg.attach(ari_http, agent_app, channel)
    yield caller, channel, leg
    await leg.close()


def payload_of(packets: list[Any]) -> bytes:
    return b"".join(p.payload for p in packets)


async def test_audio_is_bit_exact_both_ways(
    agent_call: tuple[RealCaller, str, MediaLeg],
) -> None:
    caller, _channel, agent = agent_call
    said = speech_like(160 * 50, seed=1)  # 1 s
    await caller.send(said)
    got = await agent.wait_heard(len(said), timeout_s=5)
    assert said in got
    reply = speech_like(160 * 50, seed=2)
    await agent.send(reply)
    heard = await caller.wait_heard(len(reply), timeout_s=5)
    assert reply in heard


async def test_agent_hangup_reaches_the_caller(
    agent_call: tuple[RealCaller, str, MediaLeg], ari_http: httpx.AsyncClient
) -> None:
    caller, channel, _agent = agent_call
    (await ari_http.delete(f"/channels/{channel}")).raise_for_status()
    ended = await caller.wait_hangup(5)
    assert ended["channel"]["id"] == caller.channel_id


async def test_caller_hangup_reaches_the_agent(
    agent_call: tuple[RealCaller, str, MediaLeg], agent_app: AriEvents
) -> None:
    caller, channel, _agent = agent_call
    await caller.hangup()
    await agent_app.wait_for(channel_event("StasisEnd", channel), 5)
