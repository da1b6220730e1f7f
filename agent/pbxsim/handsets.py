"""The simulated far ends of the stand-in's SIP channels: the caller's handset and the desk phones.

A test or demo holds these: a ``SimLeg`` plays audio and DTMF into the call, hangs up, and keeps
what it heard (``timeline``) and how the call went (``path``, ``hangup_by``); a ``SimPhone`` is a
PJSIP endpoint with a ``behaviour`` and the legs that rang it; a ``Voicemail`` is what a caller
left in a mailbox. Asterisk's side of each channel is ``model.SimChannel``.
"""

from __future__ import annotations

import asyncio
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agent.core.frames import FRAME_S
from agent.core.g711 import ulaw_decode
from agent.core.rtp import SEQ_MOD
from agent.pbxsim.media import FrameSource, Timeline, frames_of

if TYPE_CHECKING:  # annotations only: the engine imports this module
    from agent.pbxsim.engine import PbxSim
    from agent.pbxsim.model import SimChannel

Behaviour = Literal["answer", "noanswer", "busy", "unavailable"]
HangupBy = Literal["caller", "agent", "dialplan", "phone", "asterisk"]


@dataclass(frozen=True)
class PhoneConfig:
    name: str
    """PJSIP endpoint resource, e.g. ``clinician100`` (dialled as ``PJSIP/clinician100``)."""
    behaviour: Behaviour = "answer"
    ring_delay_s: float = 0.5


class SimLeg:
    """The far end of one simulated SIP channel: what it hears, what it says, how it ends."""

    def __init__(self, sim: PbxSim, channel: SimChannel, created_s: float) -> None:
        self._sim = sim
        self.channel_id = channel.snap.id
        self._channel = channel
        self.timeline = Timeline(created_s)
        self.path: list[str] = []
        """Dialplan steps and outcomes, e.g. ``Stasis(medical-agent)``, ``continue(…)``."""
        self.hangup_by: HangupBy | None = None
        self.answered_at: float | None = None
        """Loop time the channel was answered."""
        self.ended = asyncio.Event()
        self.answered = asyncio.Event()
        self.dtmf_heard: list[str] = []
        """Digits Asterisk sent to this phone (``POST /channels/{id}/dtmf``)."""
        self._out = FrameSource(
            sim.rng.getrandbits(32), sim.rng.randrange(SEQ_MOD), sim.rng.getrandbits(32)
        )

    @property
    def state(self) -> str:
        return self._channel.snap.state

    async def play(self, ulaw: bytes) -> None:
        """Send audio into the call as paced 20 ms frames (the first at once)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, payload in enumerate(frames_of(ulaw)):
            if self.ended.is_set():
                return
            delay = start + i * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._sim.bridging.media_in(self._channel, self._out.next(payload))

    async def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """RFC 4733 digits; ARI reports each at its end, so after ``duration_ms``."""
        for d in digits:
            await asyncio.sleep(duration_ms / 1000)
            self._sim.dtmf_received(self._channel, d, duration_ms)
            await asyncio.sleep(0.05)

    async def hangup(self) -> None:
        """Send BYE."""
        by: HangupBy = "caller" if self._channel.kind == "caller" else "phone"
        await self._sim.hangup(self._channel, by=by, bye=True)

    async def wait_ended(self, timeout_s: float) -> None:
        await asyncio.wait_for(self.ended.wait(), timeout_s)

    async def wait_answered(self, timeout_s: float) -> None:
        await asyncio.wait_for(self.answered.wait(), timeout_s)

    def heard_ulaw(self) -> bytes:
        return bytes(self.timeline.audio)

    def first_audio_after(self, t: float) -> float | None:
        return self.timeline.first_audio_after(t)

    def save_wav(self, path: str | Path) -> None:
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(ulaw_decode(self.heard_ulaw()).astype("<i2").tobytes())


class SimPhone:
    """A desk phone (PJSIP endpoint) with a behaviour; ``calls`` holds every leg that rang it."""

    def __init__(self, cfg: PhoneConfig) -> None:
        self.name = cfg.name
        self.behaviour: Behaviour = cfg.behaviour
        self.ring_delay_s = cfg.ring_delay_s
        self.calls: list[SimLeg] = []
        self._new_call = asyncio.Condition()

    @property
    def endpoint(self) -> str:
        return f"PJSIP/{self.name}"

    def device_state(self) -> str:
        if self.behaviour == "unavailable":
            return "UNAVAILABLE"
        live = [c for c in self.calls if not c.ended.is_set()]
        if any(c.answered.is_set() for c in live):
            return "INUSE"
        if live:
            return "RINGING"
        return "NOT_INUSE"

    async def wait_answered_call(self, timeout_s: float) -> SimLeg:
        """The next (or a current) answered call of this phone."""

        async def _wait() -> SimLeg:
            while True:
                for c in self.calls:
                    if c.answered.is_set() and not c.ended.is_set():
                        return c
                async with self._new_call:
                    await self._new_call.wait()

        return await asyncio.wait_for(_wait(), timeout_s)

    async def notify(self) -> None:
        """Wake ``wait_answered_call``: one of this phone's legs rang, was answered or ended."""
        async with self._new_call:
            self._new_call.notify_all()


@dataclass
class Voicemail:
    box: str
    caller_number: str
    audio: bytearray = field(default_factory=bytearray)
