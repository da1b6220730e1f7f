"""The greeting as a trunk caller hears it: the emergency line is heard whole even when the caller
talks over it, the practice's greeting after it can be talked over (barge-in), and the two
together are short.

The caller is sipp for the signalling (a scenario written here whose SDP points at a UDP socket
of the test's) and that socket for the audio, so the caller hears the call from its very first
RTP packet: nothing the agent says at the answer can be missed, as it can by a ``RealCaller``,
whose ears are bridged in after the answer.

The agent speaks in the default voice (Piper, as in production); the caller's words are espeak,
as in the other files here, and recognition is scripted. Times are positions in the stream the
caller receives (its RTP timestamps), and the caller's own audio is clocked by that stream: one
packet goes out for each packet that comes in, as a phone's two directions share one clock. So
"the caller spoke at 1.0 s" and "the agent stopped at 3.9 s" are on one clock, whatever the test
process's own scheduling does under load; only the waits for events are wall-clock, and generous.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import httpx
import pytest
from real_asterisk import RealAgent, RealAsterisk, agent_config, free_port, stop_sipp

from agent.adapters.ari.client import AriClient
from agent.config import Config, PracticeConfig, SttConfig
from agent.core.dialog.prompts import STATIC
from agent.core.frames import ULAW_FRAME_BYTES
from agent.core.g711 import ulaw_decode
from agent.core.rtp import PT_PCMU, TS_MOD, RtpPacket
from agent.engines.nlu.protocol_files import current_book
from agent.engines.stt import FasterWhisperTranscriber
from agent.engines.tts import EspeakTts, build_tts
from agent.engines.vad import build_vad
from agent.runtime.engines import Engines
from agent.runtime.prompt_cache import PromptCache, static_prompts
from agent.runtime.supervisor import Supervisor
from tests.fakes.engines import KeywordNlu, ScriptedStt
from tests.integration.callkit import Observer, energy_dbfs

DID = "5551230000"
FRAME_S = 0.02
GREETING_MAX_S = 5.0
"""The issue's target: "a short greeting (<= 5 s)", the emergency line and the practice's words."""
BARGE_IN_MAX_S = 0.5
"""From the caller's first voiced frame (or the greeting's start, if later) to the agent's last."""
VOICED_DBFS = -40.0
REQUEST = "i need to make an appointment"
"""What the scripted recogniser hears in every caller utterance here: a booking request, which the
agent answers by asking for the patient's name."""
ASK_NAME = STATIC["ask_name"]
QUIET_CODES = [0xFF, 0xFE, 0xFD, 0x7F, 0x7E, 0x7D]
"""μ-law codes within a few steps of zero: line noise far below any speech threshold."""

# Only the prompts these calls play are rendered at start-up: Piper takes about 50 s for all 76
# static prompts on this box, and any other prompt is rendered when it is said.
PRERENDERED = ("emergency_line", "greeting", "ask_name")

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- A trunk caller whose audio is not sipp's: the SDP offers the test's own RTP socket
     (-key rtpport). Calls [service], waits for the far end's BYE (the test hangs up through ARI,
     or the agent does), answers it. -->
<scenario name="medagent greeting caller">
  <send retrans="500">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Patient" <sip:trunk@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:trunk@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: sipp-medagent-greeting
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 1 1 IN IP4 127.0.0.1
s=call
c=IN IP4 127.0.0.1
t=0 0
m=audio [rtpport] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>

  <send>
    <![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Patient" <sip:trunk@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:trunk@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>

  <recv request="BYE"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:trunk@[local_ip]:[local_port]>
Content-Length: 0

    ]]>
  </send>
</scenario>
"""


# --------------------------------------------------------------------------------------------------
# The caller


def line_noise(n_bytes: int, rng: random.Random) -> bytes:
    return bytes(rng.choice(QUIET_CODES) for _ in range(n_bytes))


def voiced(frame: bytes) -> bool:
    return energy_dbfs(frame) > VOICED_DBFS


def first_voiced(frames: list[bytes]) -> int:
    return next(i for i, f in enumerate(frames) if voiced(f))


def last_voiced(frames: list[bytes]) -> int:
    return max(i for i, f in enumerate(frames) if voiced(f))


def split(ulaw: bytes) -> list[bytes]:
    ulaw += bytes([0xFF]) * (-len(ulaw) % ULAW_FRAME_BYTES)
    return [ulaw[i : i + ULAW_FRAME_BYTES] for i in range(0, len(ulaw), ULAW_FRAME_BYTES)]


@dataclass
class Mouth:
    """What the caller sends, frame by frame: line noise, ``speech`` from frame ``onset`` on, then
    line noise again for as long as the call lasts."""

    speech: list[bytes]
    onset: int
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def __call__(self, index: int) -> bytes:
        if self.onset <= index < self.onset + len(self.speech):
            return self.speech[index - self.onset]
        return line_noise(ULAW_FRAME_BYTES, self.rng)

    @property
    def voice_onset(self) -> int:
        """Stream position (frames) of the caller's first voiced frame."""
        return self.onset + first_voiced(self.speech)


class CallerLine(asyncio.DatagramProtocol):
    """The caller's RTP: records every μ-law packet Asterisk sends and answers each one with the
    caller's next frame(s), so what the caller says is placed on the received stream's clock.

    ``positions[i]`` is packet ``i``'s place in that stream, in frames since the first packet, from
    the RTP timestamps: a jump in them (the agent's pacer skips the timestamps of slots it missed
    after a stall) is time that went by, and the caller's side moves on by as much."""

    def __init__(self, mouth: Callable[[int], bytes]) -> None:
        self.mouth = mouth
        self.heard: list[RtpPacket] = []
        self.positions: list[int] = []
        self.sent = 0
        self.arrived = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 32)
        self._ssrc = random.randrange(1 << 32)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        if packet.payload_type != PT_PCMU or self._transport is None:
            return
        if not self.heard:
            position = 0
        else:
            prev = self.heard[-1]
            step = round(((packet.timestamp - prev.timestamp) % TS_MOD) / ULAW_FRAME_BYTES)
            if packet.ssrc != prev.ssrc or not 1 <= step <= 250:
                step = 1  # a new source (or nonsense): no time is known to have gone by
            position = self.positions[-1] + step
        self.heard.append(packet)
        self.positions.append(position)
        while self.sent <= position:
            frame = self.mouth(self.sent)
            out = RtpPacket(PT_PCMU, self._seq, self._ts, self._ssrc, frame)
            self._transport.sendto(out.serialize(), addr)
            self._seq = (self._seq + 1) & 0xFFFF
            self._ts = (self._ts + ULAW_FRAME_BYTES) % TS_MOD
            self.sent += 1
        self.arrived.set()

    def payloads(self) -> list[bytes]:
        return [p.payload for p in self.heard]

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclass
class TrunkCaller:
    """A sipp UAC on the test box's trunk whose RTP is a :class:`CallerLine` of the test's."""

    asterisk: RealAsterisk
    line: CallerLine
    rtp_port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    async def dial(
        cls, asterisk: RealAsterisk, mouth: Callable[[int], bytes], workdir: Path
    ) -> TrunkCaller:
        loop = asyncio.get_running_loop()
        transport, line = await loop.create_datagram_endpoint(
            lambda: CallerLine(mouth), local_addr=("127.0.0.1", 0)
        )
        caller = cls(asterisk, line, transport.get_extra_info("sockname")[1], workdir)
        try:
            caller.start()
        except BaseException:
            caller.close()
            raise
        return caller

    def start(self) -> None:
        scenario = self.workdir / "uac_own_rtp.xml"
        scenario.write_text(SCENARIO)
        cmd = [
            "sipp", "-sf", str(scenario), "-i", "127.0.0.1",
            "-p", str(free_port(socket.SOCK_DGRAM)), "-s", DID, "-m", "1", "-nostdin",
            # sipp binds a media port of its own even though the SDP does not offer it.
            "-mi", "127.0.0.1", "-mp", str(free_port(socket.SOCK_DGRAM)),
            "-key", "rtpport", str(self.rtp_port), "-timeout", "120s",
            f"127.0.0.1:{self.asterisk.ports.sip}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    async def answered(self, timeout_s: float = 30.0) -> None:
        """The first RTP packet: the call is answered and the agent's audio flows."""
        async with asyncio.timeout(timeout_s):
            while not self.line.heard:
                self.line.arrived.clear()
                await self.line.arrived.wait()

    async def until(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait, packet by packet, until ``check()`` holds."""
        try:
            async with asyncio.timeout(timeout_s):
                while not check():
                    self.line.arrived.clear()
                    await self.line.arrived.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def close(self) -> None:
        stop_sipp(self.proc)
        self.line.close()


async def hang_up_trunk(http: httpx.AsyncClient) -> None:
    """Hang up the caller's PJSIP channel from Asterisk's side (sipp then gets its BYE)."""
    for channel in (await http.get("/channels")).json():
        if channel["name"].startswith("PJSIP/trunk-"):
            r = await http.delete(f"/channels/{channel['id']}")
            if r.status_code not in (204, 404):
                r.raise_for_status()


# --------------------------------------------------------------------------------------------------
# The agent, in the default voice


@pytest.fixture(scope="module")
def default_voice_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One rendered-prompt folder for this module: the default voice renders each prompt once."""
    return str(tmp_path_factory.mktemp("piper-prompts"))


@pytest.fixture(scope="module")
def whisper() -> FasterWhisperTranscriber:
    return FasterWhisperTranscriber(SttConfig())


def greeting_config(asterisk: RealAsterisk) -> Config:
    """The tier's agent configuration with the practice's default greeting (the tier's own is a
    shorter one); its ``tts`` section is the default, as agent_config leaves it."""
    cfg = agent_config(asterisk)
    return dataclasses.replace(
        cfg, practice=dataclasses.replace(cfg.practice, greeting=PracticeConfig().greeting)
    )


@contextlib.asynccontextmanager
async def default_voice_agent(
    cfg: Config, script: list[str], cache_dir: str
) -> AsyncIterator[RealAgent]:
    """``running_agent`` of real_asterisk.py, but speaking with ``build_tts(cfg.tts)`` (Piper, with
    no fallback: the point is to hear the default voice) instead of espeak."""
    tts = await asyncio.to_thread(build_tts, cfg.tts, fallback=False)
    wanted = {k: v for k, v in static_prompts(cfg.practice).items() if k in PRERENDERED}
    prompts = PromptCache(tts, wanted, cfg.tts, cache_dir=cache_dir)
    await prompts.start()
    await asyncio.to_thread(current_book, cfg.practice.specialty_packs)
    stt = ScriptedStt(script)
    engines = Engines(
        prompts=prompts,
        stt=stt,
        nlu=KeywordNlu(),
        make_vad=lambda: build_vad(cfg.vad),
        closers=[prompts.aclose],
    )
    obs = Observer()
    ari = AriClient(cfg.ari)
    ari.start()
    sup = Supervisor(cfg, ari, engines, observer=obs)
    runner = asyncio.create_task(sup.run(), name="supervisor")
    try:
        await ari.wait_connected(5)
        yield RealAgent(cfg, ari, sup, stt, obs, EspeakTts(cfg.tts))
    finally:
        await sup.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await ari.close()
        await engines.aclose()


# --------------------------------------------------------------------------------------------------
# Reading what the caller heard


@dataclass(frozen=True)
class Heard:
    """One prompt located in the caller's stream."""

    at: int
    """Packet index where the prompt's first frame is (or would be: negative when the stream
    started after the prompt did)."""
    run: int
    """How many of its frames, from the first, arrived bit-exact as consecutive packets."""
    frames: list[bytes]

    @property
    def whole(self) -> bool:
        return self.at >= 0 and self.run == len(self.frames)

    @property
    def spoken_run(self) -> int:
        """Frames played up to the end of the last voiced frame that was heard."""
        heard = [i for i in range(self.run) if voiced(self.frames[i])]
        return heard[-1] + 1 if heard else 0


def locate(payloads: list[bytes], frames: list[bytes], start: int = 0) -> Heard | None:
    """Where ``frames`` (a prompt) is in what the caller received from packet ``start`` on,
    found by its first voiced frame (a silent lead-in frame would match comfort silence)."""
    anchor = first_voiced(frames)
    for i in range(max(start + anchor, 0), len(payloads)):
        if payloads[i] == frames[anchor]:
            at = i - anchor
            run = 0
            while run < len(frames) and at + run < len(payloads):
                if at + run < 0 or payloads[at + run] != frames[run]:
                    break
                run += 1
            if at < 0:
                run = 0
            return Heard(at, run, frames)
    return None


def pcm16(frames: list[bytes]) -> bytes:
    return ulaw_decode(b"".join(frames)).astype("<i2").tobytes()


def says_emergency_number(text: str) -> bool:
    t = text.lower()
    return bool(re.search(r"emergenc(y|ies)", t)) and bool(
        re.search(r"9[\s,.-]*1[\s,.-]*1|nine[\s,-]*one[\s,-]*one", t)
    )


@dataclass
class GreetingCall:
    """A finished call's caller-side facts."""

    line: CallerLine
    mouth: Mouth
    emergency: Heard
    greeting: Heard | None
    """``None`` when no frame of the greeting reached the caller."""
    greeting_frames: list[bytes]
    """The greeting as rendered (the agent's prompt cache)."""
    ask: Heard | None
    prompts: list[str]

    def position(self, index: int) -> int:
        """Stream position (frames) of packet ``index`` (extrapolated past either end)."""
        positions = self.line.positions
        if index < 0:
            return positions[0] + index
        if index >= len(positions):
            return positions[-1] + index - len(positions) + 1
        return positions[index]

    @property
    def emergency_end(self) -> int:
        return self.position(self.emergency.at + len(self.emergency.frames))

    def greeting_stop(self) -> int:
        """Stream position where the agent's voice in the greeting ended (its start when none of
        it was heard)."""
        if self.greeting is None:
            return self.emergency_end
        return self.position(self.greeting.at + self.greeting.spoken_run)


async def greeting_call(
    asterisk: RealAsterisk,
    http: httpx.AsyncClient,
    cache_dir: str,
    workdir: Path,
    *,
    speech: str | None,
    onset_s: float,
) -> GreetingCall:
    """Call the agent; the caller says ``speech`` from ``onset_s`` (stream time after the first
    packet), or nothing. Returns once the agent's question after the greeting (the name, after a
    request) has been heard whole, or, for a silent caller, once the greeting has."""
    async with default_voice_agent(greeting_config(asterisk), [REQUEST], cache_dir) as agent:
        prompts = agent.sup.engines.prompts
        emergency_frames = prompts.get("emergency_line")
        greeting_frames = prompts.get("greeting")
        ask_frames = prompts.get("ask_name")
        spoken = split(agent.speech(speech)) if speech else []
        mouth = Mouth(spoken, round(onset_s / FRAME_S))
        caller = await TrunkCaller.dial(asterisk, mouth, workdir)
        try:
            await caller.answered()

            def after_greeting() -> Heard | None:
                payloads = caller.line.payloads()
                em = locate(payloads, emergency_frames)
                if em is None:
                    return None
                return locate(payloads, greeting_frames, em.at + em.run)

            if speech is None:
                await caller.until(
                    lambda: (g := after_greeting()) is not None and g.whole, 60, "the greeting"
                )
            else:
                await caller.until(
                    lambda: (
                        (a := locate(caller.line.payloads(), ask_frames)) is not None and a.whole
                    ),
                    90,
                    f"the agent's question {ASK_NAME!r} (said so far: {agent.obs.prompts})",
                )
            await hang_up_trunk(http)
            await asyncio.wait_for(agent.obs.ended_event.wait(), 20)
        finally:
            caller.close()
        payloads = caller.line.payloads()
        emergency = locate(payloads, emergency_frames)
        assert emergency is not None, "the emergency line never reached the caller"
        greeting = locate(payloads, greeting_frames, emergency.at + emergency.run)
        ask = locate(payloads, ask_frames, emergency.at + emergency.run)
        return GreetingCall(
            caller.line, mouth, emergency, greeting, greeting_frames, ask, list(agent.obs.prompts)
        )


def seconds(frames: int) -> float:
    return round(frames * FRAME_S, 2)


# --------------------------------------------------------------------------------------------------
# The tests


async def assert_emergency_line_heard_whole(
    call: GreetingCall, whisper: FasterWhisperTranscriber
) -> None:
    em = call.emergency
    assert em.at >= 0, f"the start of the emergency line was cut off ({-em.at} frames)"
    assert em.whole, (
        f"the emergency line ({seconds(len(em.frames))} s) broke off after {seconds(em.run)} s"
    )
    # Consecutive packets: not one frame of silence or anything else inside the line.
    seqs = [p.sequence_number for p in call.line.heard[em.at : em.at + len(em.frames)]]
    assert all((b - a) % (1 << 16) == 1 for a, b in zip(seqs, seqs[1:], strict=False)), seqs
    heard = await asyncio.to_thread(
        whisper.transcribe, pcm16(call.line.payloads()[em.at : em.at + len(em.frames)]), prompt=None
    )
    assert says_emergency_number(heard.text), heard.text


@pytest.mark.parametrize(
    "speech",
    [
        # Said over the emergency line, it is over by the time the greeting starts, or nearly.
        pytest.param("I need to make an appointment", id="short-request"),
        # Goes on well into the greeting: barge-in must be armed again when the greeting starts.
        pytest.param(
            "I need to make an appointment with doctor Patel for my knee sometime next week",
            id="request-running-on-into-the-greeting",
        ),
    ],
)
async def test_caller_talking_over_the_emergency_line_hears_it_whole_then_cuts_the_greeting(
    asterisk: RealAsterisk,
    ari_http: httpx.AsyncClient,
    default_voice_cache: str,
    whisper: FasterWhisperTranscriber,
    tmp_path: Path,
    speech: str,
) -> None:
    call = await greeting_call(
        asterisk, ari_http, default_voice_cache, tmp_path, speech=speech, onset_s=1.0
    )
    em, greeting = call.emergency, call.greeting
    voice = (call.mouth.voice_onset, call.mouth.voice_onset + last_voiced(call.mouth.speech) + 1)
    played = 0 if greeting is None else greeting.spoken_run
    print(
        f"emergency line {seconds(len(em.frames))} s at {seconds(call.position(em.at))} s, "
        f"greeting {seconds(len(call.greeting_frames))} s, "
        f"played {seconds(played)} s; caller voiced {seconds(voice[0])}-{seconds(voice[1])} s; "
        f"prompts {call.prompts}"
    )
    # The caller was talking over the emergency line, and the line was heard whole anyway.
    assert voice[0] < call.emergency_end, (voice, call.emergency_end)
    await assert_emergency_line_heard_whole(call, whisper)

    # The practice's greeting is cut short by the caller: who has made a request is not kept
    # listening to "how can I help?".
    greeting_s = len(call.greeting_frames) * FRAME_S
    assert played * FRAME_S < 0.5 * greeting_s, (
        f"the greeting played {seconds(played)} s of {greeting_s:.2f} s although the caller spoke "
        f"from {seconds(voice[0])} s to {seconds(voice[1])} s (emergency line over at "
        f"{seconds(call.emergency_end)} s)"
    )
    # And the request is answered: the next question is the patient's name, heard whole.
    assert ASK_NAME in call.prompts, call.prompts
    assert call.ask is not None and call.ask.whole


async def test_caller_talking_over_the_practice_greeting_cuts_it_within_half_a_second(
    asterisk: RealAsterisk,
    ari_http: httpx.AsyncClient,
    default_voice_cache: str,
    whisper: FasterWhisperTranscriber,
    tmp_path: Path,
) -> None:
    call = await greeting_call(
        asterisk,
        ari_http,
        default_voice_cache,
        tmp_path,
        speech="I need to make an appointment",
        onset_s=3.5,
    )
    assert call.greeting is not None, "the greeting never started"
    greeting_start = call.position(call.greeting.at)
    stop = call.greeting_stop()
    since = max(call.mouth.voice_onset, greeting_start)
    print(
        f"emergency line over at {seconds(call.emergency_end)} s, greeting from "
        f"{seconds(greeting_start)} s; caller voiced from {seconds(call.mouth.voice_onset)} s; "
        f"greeting voice stopped at {seconds(stop)} s ({seconds(stop - since)} s later)"
    )
    await assert_emergency_line_heard_whole(call, whisper)
    # What this test is about: the caller starts while the practice's greeting plays.
    greeting_end = greeting_start + len(call.greeting.frames)
    assert greeting_start <= call.mouth.voice_onset < greeting_end, (
        f"the caller started at {seconds(call.mouth.voice_onset)} s, not during the greeting "
        f"({seconds(greeting_start)}-{seconds(greeting_end)} s)"
    )
    assert stop - since <= round(BARGE_IN_MAX_S / FRAME_S), (
        f"the greeting went on {seconds(stop - since)} s after the caller started talking"
    )
    # The call goes on: the request is answered with the next question, heard whole.
    assert ASK_NAME in call.prompts, call.prompts
    assert call.ask is not None and call.ask.whole
    heard = await asyncio.to_thread(whisper.transcribe, pcm16(call.ask.frames), prompt=None)
    assert "name" in heard.words, heard.text


async def test_the_whole_greeting_in_the_default_voice_is_at_most_five_seconds(
    asterisk: RealAsterisk,
    ari_http: httpx.AsyncClient,
    default_voice_cache: str,
    tmp_path: Path,
) -> None:
    call = await greeting_call(
        asterisk, ari_http, default_voice_cache, tmp_path, speech=None, onset_s=0.0
    )
    assert call.emergency.whole
    assert call.greeting is not None and call.greeting.whole
    # As long as the caller waits: from the answer (the first packet) to the end of the
    # greeting's last voiced frame, the pause between the two prompts included.
    end = call.position(call.greeting.at + last_voiced(call.greeting.frames) + 1)
    voice_from = call.position(call.emergency.at + first_voiced(call.emergency.frames))
    rendered = len(call.emergency.frames) + len(call.greeting.frames)
    print(
        f"emergency line {seconds(len(call.emergency.frames))} s + greeting "
        f"{seconds(len(call.greeting.frames))} s rendered = {seconds(rendered)} s; heard: "
        f"answer to end of voice {seconds(end)} s, voice to voice {seconds(end - voice_from)} s; "
        f"prompts {call.prompts}"
    )
    assert end * FRAME_S <= GREETING_MAX_S, (
        f"the greeting lasts {seconds(end)} s from the answer (emergency line "
        f"{seconds(len(call.emergency.frames))} s, practice greeting "
        f"{seconds(len(call.greeting.frames))} s as rendered)"
    )
