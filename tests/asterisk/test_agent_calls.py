"""Our agent (Supervisor, AriClient, CallSession, media path, dialog) on the real Asterisk, with
fake engines: scripted recognition and keyword understanding, but real espeak prompts and the real
VAD. Calls come in through our dialplan (``Dial(Local/agent@medagent-agent/n)``), so the agent
answers the Local ``;2`` half, as in production."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import httpx
from real_asterisk import (
    RealAgent,
    RealAsterisk,
    RealCaller,
    SipPhone,
    TcpCutter,
    agent_config,
    running_agent,
)

from agent.core.dialog.prompts import STATIC
from agent.core.pacer import split_frames
from agent.runtime.call import CallSession
from tests.integration.callkit import voiced_seconds

DID = "5551230000"
Dial = Callable[..., Awaitable[RealCaller]]
Phone = Callable[[str, str], SipPhone]
QUIET_CODES = [0xFF, 0xFE, 0xFD, 0x7F, 0x7E, 0x7D]
"""μ-law codes within a few steps of zero: line noise far below any speech threshold."""


def line_noise(n_bytes: int, seed: int) -> bytes:
    """A real line is never digitally silent; noise also makes each utterance's lead-in (the
    segmenter's pre-roll) differ, as it would on a phone."""
    rng = random.Random(seed)
    return bytes(rng.choice(QUIET_CODES) for _ in range(n_bytes))


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` (state of the agent or of the caller, which signal no events of their own)."""
    for _ in range(int(timeout_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check(), what


def only_session(agent: RealAgent) -> CallSession:
    assert len(agent.sup.sessions) == 1, list(agent.sup.sessions)
    return next(iter(agent.sup.sessions.values()))


async def say(agent: RealAgent, caller: RealCaller, text: str) -> bytes:
    """Speak, then a second of line noise so the end of the utterance is seen; returns what was
    sent."""
    audio = agent.speech(text) + line_noise(8000, seed=len(caller.heard()))
    await caller.send(audio)
    return audio


async def ours_left(http: httpx.AsyncClient, agent_channel: str) -> list[str]:
    """Bridges and channels of the agent (ids ``medagent-…`` and the Local leg it answered) that
    Asterisk still has."""
    bridges = (await http.get("/bridges")).json()
    channels = (await http.get("/channels")).json()
    return [b["id"] for b in bridges if b["id"].startswith("medagent-")] + [
        c["id"] for c in channels if c["id"].startswith("medagent-") or c["id"] == agent_channel
    ]


async def assert_released(agent: RealAgent, http: httpx.AsyncClient, agent_channel: str) -> None:
    await until(
        lambda: not agent.sup.sessions and not agent.sup.ports.in_use, 10, "sessions/ports left"
    )
    assert len(agent.sup.calls) == 0
    for _ in range(50):
        left = await ours_left(http, agent_channel)
        if not left:
            break
        await asyncio.sleep(0.1)
    assert left == []


async def test_greeting_heard_and_caller_frames_reach_the_agent_bit_exact(
    asterisk: RealAsterisk, dial: Dial, ari_http: httpx.AsyncClient, prompt_cache: str
) -> None:
    async with running_agent(
        agent_config(asterisk), ["what are your hours"], cache_dir=prompt_cache
    ) as agent:
        caller = await dial(DID)
        await caller.answered(timeout_s=5)
        await agent.wait_listening()
        session = only_session(agent)
        # Who the agent answered: the Local ;2 half, carrying the caller's number and the DID.
        assert session.channel.name.startswith("Local/agent@medagent-agent-")
        assert session.channel.caller.number == "5550001234"

        # (a) The greeting as the caller recorded it: real audio, about as long as the prompt.
        # The caller's ears are connected right after the answer, so the first few hundred ms can
        # be missing from the recording; allow for that in both bounds.
        greeting = caller.heard()
        expected_s = len(agent.sup.engines.prompts.get("greeting")) * 0.02
        assert voiced_seconds(greeting) > 0.5 * expected_s, (voiced_seconds(greeting), expected_s)
        assert len(greeting) / 8000 >= expected_s - 1.0, (len(greeting) / 8000, expected_s)

        # (b) What the caller said arrives at the agent byte for byte, frame for frame. (No need
        # to sit through the spoken answer: recognition is enough to know the utterance ended.)
        sent = await say(agent, caller, "what are your hours")
        await until(lambda: bool(agent.obs.words), 10, "the agent heard nothing")
        assert agent.obs.words == ["what are your hours"]
        assert session.media is not None
        received = b"".join(p.payload for p in session.media.raw_received)
        assert received == b"".join(split_frames(sent)), "caller frames must arrive bit-exact"

        # (c) The caller hangs up: the call ends and everything of the agent's is released.
        await caller.hangup()
        await asyncio.wait_for(agent.obs.ended_event.wait(), 10)
        assert agent.obs.outcomes == ["caller_hangup"]
        await assert_released(agent, ari_http, session.channel.id)


async def test_agent_goodbye_ends_the_callers_leg(
    asterisk: RealAsterisk, dial: Dial, ari_http: httpx.AsyncClient, prompt_cache: str
) -> None:
    # One question, then silence at "anything else?": the dialog says goodbye and hangs up.
    cfg = agent_config(asterisk, no_input_timeout_s=2.0)
    async with running_agent(cfg, ["what are your hours"], cache_dir=prompt_cache) as agent:
        caller = await dial(DID)
        await caller.answered(timeout_s=5)
        await agent.wait_listening()
        channel_id = only_session(agent).channel.id
        await say(agent, caller, "what are your hours")
        ended = await caller.wait_hangup(15)
        assert ended["channel"]["id"] == caller.channel_id
        await asyncio.wait_for(agent.obs.ended_event.wait(), 10)
        assert agent.obs.outcomes == ["agent_hangup"]
        assert agent.obs.prompts[-1] == STATIC["goodbye"]
        # The goodbye was heard before the line went dead (the hang-up drains what is queued).
        goodbye_s = len(agent.sup.engines.prompts.get("goodbye")) * 0.02
        tail = caller.heard()[-int(goodbye_s * 8000) :]
        assert voiced_seconds(tail) > 0.4 * goodbye_s
        await assert_released(agent, ari_http, channel_id)


async def test_websocket_loss_mid_call_reconnects_and_the_call_goes_on(
    asterisk: RealAsterisk,
    dial: Dial,
    ari_cutter: TcpCutter,
    ari_http: httpx.AsyncClient,
    prompt_cache: str,
) -> None:
    cfg = agent_config(asterisk, ari_port=ari_cutter.port)
    async with running_agent(cfg, ["what are your hours"], cache_dir=prompt_cache) as agent:
        caller = await dial(DID)
        await caller.answered(timeout_s=5)
        await agent.wait_listening()
        channel_id = only_session(agent).channel.id
        assert ari_cutter.drop() >= 2  # the websocket (and any pooled REST connection)
        await until(lambda: agent.ari.connects >= 2, 5, "the client did not reconnect")
        assert list(agent.sup.sessions) == [channel_id], "a live call survives a websocket drop"
        # The call goes on: the caller is heard and answered after the reconnect.
        heard_before = len(caller.heard())
        await say(agent, caller, "what are your hours")
        await agent.wait_listening()
        assert agent.obs.words == ["what are your hours"]
        assert voiced_seconds(caller.heard()[heard_before:]) > 1.0, "the answer reached the caller"
        # And a hangup after the reconnect still reaches the agent (events follow the channel).
        await caller.hangup()
        await asyncio.wait_for(agent.obs.ended_event.wait(), 10)
        assert agent.obs.outcomes == ["caller_hangup"]
        await assert_released(agent, ari_http, channel_id)


async def test_urgent_transfer_to_a_clinician_desk_phone_with_summary_first(
    asterisk: RealAsterisk,
    dial: Dial,
    desk_phone: Phone,
    ari_http: httpx.AsyncClient,
    prompt_cache: str,
) -> None:
    phone = desk_phone("clinician100", "answer")
    async with running_agent(agent_config(asterisk), ["rash"], cache_dir=prompt_cache) as agent:
        # A short caller number and request keep the spoken summary (and the test) short.
        caller = await dial(DID, caller_id='"Test Caller" <100>')
        await caller.answered(timeout_s=5)
        await agent.wait_listening()
        channel_id = only_session(agent).channel.id
        await say(agent, caller, "rash")
        await until(lambda: bool(agent.obs.transfers), 30, "no transfer attempt")
        assert agent.obs.transfers == [("PJSIP/clinician100", "answered")]
        # Warm: the summary was spoken (to the clinician) before the patient was bridged.
        summary = [p for p in agent.obs.prompts if p.startswith("This is the answering assistant")]
        assert len(summary) == 1 and "rash" in summary[0], agent.obs.prompts
        # Caller and clinician now talk: sipp echoes RTP, so the caller hears its own audio.
        heard_before = len(caller.heard())
        ramp = bytes(range(0x10, 0x70)) * 20
        await caller.send(ramp)
        await asyncio.sleep(0.5)
        echoed = caller.heard()[heard_before:]
        assert sum(b not in (0xFF, 0x7F) for b in echoed) > len(ramp) // 2
        await caller.hangup()
        assert await phone.wait(10) == 0
        await asyncio.wait_for(agent.obs.ended_event.wait(), 10)
        assert agent.obs.outcomes == ["transferred"]
        await assert_released(agent, ari_http, channel_id)
