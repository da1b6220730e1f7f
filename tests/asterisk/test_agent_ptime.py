"""A trunk caller (sipp) whose phone sends 10, 20 or 30 ms RTP packets: the agent hears the
whole turn and answers it, as it does a 20 ms call. (One packet of another size used to kill the
call's media: the VAD takes exactly 20 ms frames.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from real_asterisk import RealAsterisk, SipCaller, agent_config, running_agent, write_rtp_pcap

from agent.core.g711 import ULAW_SILENCE, ulaw_encode
from tests.integration.callkit import voiced_seconds

DID = "5551230000"
LEAD_S = 4.0
"""Silence before the caller speaks: the greeting is said meanwhile."""


@pytest.mark.parametrize("ptime_ms", [10, 20, 30])
async def test_a_trunk_caller_is_heard_and_answered_whatever_the_packet_size(
    asterisk: RealAsterisk, prompt_cache: str, tmp_path: Path, ptime_ms: int
) -> None:
    async with running_agent(
        agent_config(asterisk), ["i need a refill"], cache_dir=prompt_cache
    ) as agent:
        stats: list[Any] = []
        agent.obs.media_stats = lambda _call, s: stats.append(s)  # type: ignore[method-assign]
        speech = agent.speech("I need a refill of my blood pressure pills, please.")
        silence = bytes([ULAW_SILENCE]) * 8000
        audio = silence * int(LEAD_S) + speech + silence * 4
        pcap = tmp_path / f"caller-{ptime_ms}ms.pcap"
        write_rtp_pcap(pcap, audio, ptime_ms=ptime_ms)
        caller = SipCaller(asterisk, DID, pcap, ptime_ms, hold_ms=len(audio) // 8 + 2000)
        caller.start()
        try:
            await asyncio.wait_for(agent.obs.ended_event.wait(), len(audio) / 8000 + 20)
        finally:
            caller.stop()

    # The one turn was heard whole, once, and answered (the agent asked its next question).
    assert agent.obs.words == ["i need a refill"], agent.obs.words
    assert len(agent.obs.prompts) >= 2, agent.obs.prompts
    heard_s = voiced_seconds(ulaw_encode(np.frombuffer(agent.stt.heard_audio[-1], "<i2")))
    assert abs(heard_s - voiced_seconds(speech)) < 0.3, (heard_s, voiced_seconds(speech))
    (media,) = stats
    assert media.frames_delivered > (len(audio) / 8000 - 1) * 50, media
    if ptime_ms != 20:
        # Asterisk passed the caller's packets through as they came: the odd sizes were re-framed
        # here (a build that re-packetizes would make this test prove nothing).
        assert media.jitter.reframed > 0, media.jitter
    print(f"ptime {ptime_ms} ms: reframed {media.jitter.reframed}, heard {heard_s:.2f} s")
