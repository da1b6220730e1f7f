"""The stand-in's Asterisk: channels, bridges, playbacks, the dialplan runner and media routing.

This is the asyncio side of the stand-in (it owns tasks, UDP sockets and reads the loop clock);
the wire shapes live in ``model.py``, the media rules in ``media.py``, the dialplan model in
``dialplan.py`` and the HTTP/websocket surface in ``ari.py``. Event order and fields follow the
recordings in ``shared/asterisk-reference/traces`` (see that README); where the recordings are
silent the choice is commented.
"""

from __future__ import annotations

import asyncio
import random
import time
import typing
import uuid
import wave
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.core.frames import FRAME_S
from agent.core.g711 import ULAW_SILENCE, ulaw_decode
from agent.core.rtp import SEQ_MOD
from agent.log import get_logger
from agent.pbxsim.dialplan import Dialplan, Step, Target, default_dialplan
from agent.pbxsim.media import (
    Frame,
    FrameSource,
    RtpReceiver,
    RtpSender,
    Timeline,
    frames_of,
    mix,
)
from agent.pbxsim.model import (
    ASTERISK_ID,
    CAUSE_TEXT,
    ChannelSnapshot,
    DialplanLocation,
    Party,
    PlaybackSnapshot,
    RestError,
    SimBridge,
    ari_timestamp,
    next_channel_state,
)
from agent.pbxsim.sounds import SoundLibrary, music_on_hold

log = get_logger("agent.pbxsim")

Behaviour = Literal["answer", "noanswer", "busy", "unavailable"]
HangupBy = Literal["caller", "agent", "dialplan", "phone", "asterisk"]


@dataclass(frozen=True)
class PhoneConfig:
    name: str
    """PJSIP endpoint resource, e.g. ``clinician100`` (dialled as ``PJSIP/clinician100``)."""
    behaviour: Behaviour = "answer"
    ring_delay_s: float = 0.5


def _default_phones() -> tuple[PhoneConfig, ...]:
    return (
        PhoneConfig("frontdesk"),
        PhoneConfig("billing"),
        PhoneConfig("nurse"),
        PhoneConfig("clinician100"),
        PhoneConfig("clinician101", "unavailable"),
    )


@dataclass(frozen=True)
class PbxSimConfig:
    username: str = "medagent"
    password: str = "secret"
    app: str = "medical-agent"
    """The Stasis app the default dialplan sends the main number to (informational)."""
    host: str = "127.0.0.1"
    port: int = 0
    """0: any free port (see ``PbxSim.start``'s return value)."""
    rtp_port_min: int = 10000
    rtp_port_max: int = 10100
    """externalMedia local ports (even ones are used, as Asterisk's rtp.conf range)."""
    dialplan: Dialplan = field(default_factory=default_dialplan)
    phones: tuple[PhoneConfig, ...] = field(default_factory=_default_phones)
    inbound_context: str = "medical-inbound"
    sound_dirs: tuple[str, ...] = ()
    external_media_stasis_delay_s: float = 0.005
    """How long after the externalMedia response its StasisStart is emitted (the real race)."""
    seed: int | None = None
    """Seeds SSRCs, sequence numbers and ids for reproducible runs; ``None``: random."""


# --------------------------------------------------------------------------------------------------
# Simulated far ends: the caller's handset and the desk phones


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
            self._sim.media_in(self._channel, self._out.next(payload))

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


SimCaller = SimLeg


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

    async def _notify(self) -> None:
        async with self._new_call:
            self._new_call.notify_all()


@dataclass
class Voicemail:
    box: str
    caller_number: str
    audio: bytearray = field(default_factory=bytearray)


# --------------------------------------------------------------------------------------------------
# Asterisk-side objects


class ExternalMediaPort(asyncio.DatagramProtocol):
    """The UDP side of an externalMedia channel (``UnicastRTP/…``)."""

    def __init__(self, sim: PbxSim, remote: tuple[str, int]) -> None:
        self._sim = sim
        self.remote = remote
        self.channel: SimChannel | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.receiver = RtpReceiver()
        rng = sim.rng
        self.sender = RtpSender(
            ssrc=rng.getrandbits(32),
            next_seq=rng.randrange(SEQ_MOD),
            ts_base=rng.getrandbits(32),
            new_ssrc=[rng.getrandbits(32) for _ in range(8)],
        )
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport is not registered as a DatagramTransport subclass.
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        frame = self.receiver.receive(data, (addr[0], addr[1]))
        if frame is not None and self.channel is not None:
            self._sim.media_in(self.channel, frame)

    def send(self, frame: Frame, resync: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if resync:
            self.sender.resync()
        self.transport.sendto(self.sender.packet(frame).serialize(), self.remote)
        self.sent += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SimChannel:
    def __init__(
        self,
        snap: ChannelSnapshot,
        kind: Literal["caller", "phone", "external"],
    ) -> None:
        self.snap = snap
        self.kind = kind
        self.app: str | None = None
        """The Stasis app subscribed to this channel's events."""
        self.in_stasis = False
        self.stasis_exit: asyncio.Future[Target | None] | None = None
        self.bridge: SimBridge | None = None
        self.vars: dict[str, str] = {}
        self.hungup = False
        self.leg: SimLeg | None = None
        self.port: ExternalMediaPort | None = None
        self.phone: SimPhone | None = None
        self.direct_peer: SimChannel | None = None
        """The other leg of a dialplan ``Dial`` (frames pass straight through)."""
        self.prompt: Playback | None = None
        """A channel playback in progress: the channel hears it, and its own audio is held back."""
        self.moh_task: asyncio.Task[None] | None = None
        self.playback_queue: deque[Playback] = deque()
        self.player_task: asyncio.Task[None] | None = None
        self.held_back = False
        """Frames were held back (playback); the next forwarded one resumes with the marker."""
        self.ringing_dial: str | None = None
        """Dial string while an originate rings (a hangup then reports ``Dial(NOANSWER)``)."""
        self.recording: Voicemail | None = None
        self.dial_task: asyncio.Task[None] | None = None


class Playback:
    def __init__(self, snap: PlaybackSnapshot, app: str, target: SimChannel | SimBridge) -> None:
        self.snap = snap
        self.app = app
        self.target = target
        self.frames: deque[bytes] = deque()
        self.items: list[str] = []
        self.stopped = asyncio.Event()
        self.source: FrameSource | None = None


# --------------------------------------------------------------------------------------------------


class PbxSim:
    """A loopback Asterisk for tests and demos. See the package docstring for the public API."""

    def __init__(self, config: PbxSimConfig | None = None) -> None:
        self.config = config or PbxSimConfig()
        self.rng = random.Random(self.config.seed)
        self.dialplan = self.config.dialplan
        self.sounds = SoundLibrary(self.config.sound_dirs)
        self.phones: dict[str, SimPhone] = {p.name: SimPhone(p) for p in self.config.phones}
        self.channels: dict[str, SimChannel] = {}
        self.bridges: dict[str, SimBridge] = {}
        self.playbacks: dict[str, Playback] = {}
        self.voicemails: dict[str, list[Voicemail]] = {}
        self.connections: dict[str, list[Any]] = {}
        """app → connected event sockets (``ari.EventSocket``)."""
        self._apps_changed = asyncio.Condition()
        self.known_apps: set[str] = set()
        """Apps that registered since start; they stay listed (inactive) after their socket goes."""
        self.events_sent: list[dict[str, Any]] = []
        """Every event emitted (delivered or lost), for conformance tests."""
        self.event_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with every emitted event (``medagent pbxsim`` logs them)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counter = 0
        self._uid_base = int(time.time())
        self._startup_s = time.time()
        self._server: Any = None
        self.base_url = ""

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> str:
        """Serve ARI; returns the base URL (``http://127.0.0.1:PORT/ari``)."""
        from agent.pbxsim.ari import AriServer

        if self._server is None:
            self._server = AriServer(self)
        port = await self._server.start(self.config.host, self.config.port)
        # A restart (stop() then start()) comes back on the same port, as Asterisk would.
        self.config = _replace_port(self.config, port)
        self._startup_s = time.time()
        self.base_url = f"http://{self.config.host}:{port}/ari"
        log.info("pbxsim started", url=self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """``core stop now``: hang up every channel, drop websockets without a close frame."""
        for ch in list(self.channels.values()):
            # Recorded: HangupRequest(4, soft) and StasisEnd, then the websocket died.
            await self.hangup(ch, by="asterisk", cause=4, soft=True, report_destroyed=False)
        for br in list(self.bridges.values()):
            self._stop_mixer(br)
        self.bridges.clear()
        self.playbacks.clear()
        self.known_apps.clear()
        await self.flush_events()
        if self._server is not None:
            await self._server.stop()
        await self._cancel_tasks()
        log.info("pbxsim stopped")

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"pbxsim:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drop_websockets(self, close_frame: bool) -> None:
        """Fault injection: end every event websocket, with a close frame or as a dead TCP peer."""
        if self._server is not None:
            await self._server.drop_websockets(close_frame)

    # ---- ids and clock --------------------------------------------------------------------------

    def now(self) -> float:
        return time.time()

    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def next_channel_id(self) -> str:
        cid = f"{self._uid_base}.{self._counter}"
        self._counter += 1
        return cid

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _seq_name(self) -> str:
        self._counter += 1
        return f"{self._counter:08x}"

    # ---- events ---------------------------------------------------------------------------------

    def app_connected(self, app: str) -> bool:
        return bool(self.connections.get(app))

    async def wait_app_connected(self, app: str) -> None:
        """Until an events websocket for ``app`` is connected (a test or demo waits for the agent)."""
        async with self._apps_changed:
            await self._apps_changed.wait_for(lambda: self.app_connected(app))

    async def apps_changed(self) -> None:
        async with self._apps_changed:
            self._apps_changed.notify_all()

    def emit(self, app: str | None, type_: str, **fields: Any) -> None:
        if app is None:
            return
        event: dict[str, Any] = {"type": type_, "timestamp": ari_timestamp(self.now())}
        event.update(fields)
        event["asterisk_id"] = ASTERISK_ID
        event["application"] = app
        self.events_sent.append(event)
        for listener in self.event_listeners:
            listener(event)
        for conn in list(self.connections.get(app, ())):
            conn.send(event)

    def emit_channel(self, ch: SimChannel, type_: str, **fields: Any) -> None:
        if ch.app is not None:
            self.emit(ch.app, type_, **fields, channel=ch.snap.to_json())

    async def flush_events(self) -> None:
        """Wait until queued events are written to the sockets (events before a REST response)."""
        for conns in list(self.connections.values()):
            for conn in list(conns):
                await conn.flush()

    # ---- channel creation -----------------------------------------------------------------------

    def _new_channel(
        self,
        *,
        name: str,
        kind: Literal["caller", "phone", "external"],
        state: str,
        location: DialplanLocation,
        channel_id: str | None = None,
        caller: Party | None = None,
        protocol_id: str = "",
    ) -> SimChannel:
        cid = channel_id or self.next_channel_id()
        if cid in self.channels:
            raise RestError(409, "Channel with given unique ID already exists")
        snap = ChannelSnapshot(
            id=cid,
            name=name,
            state=state,
            created_s=self.now(),
            dialplan=location,
            protocol_id=protocol_id,
            caller=caller or Party(),
        )
        ch = SimChannel(snap, kind)
        self.channels[cid] = ch
        return ch

    def set_state(self, ch: SimChannel, state: str) -> None:
        if ch.snap.state == state:
            return
        ch.snap.state = next_channel_state(ch.snap.state, state)
        self.emit_channel(ch, "ChannelStateChange")
        if state == "Up" and ch.leg is not None and not ch.leg.answered.is_set():
            ch.leg.answered_at = self.loop_time()
            ch.leg.answered.set()

    async def place_call(
        self,
        exten: str = "100",
        caller_number: str = "caller",
        caller_name: str = "",
        *,
        context: str | None = None,
    ) -> SimLeg:
        """A SIP caller dials ``exten``; the call runs through the dialplan model."""
        context = context or self.config.inbound_context
        if not self.dialplan.has_extension(context, exten):
            raise ValueError(f"no extension {exten!r} in context {context!r}")
        ch = self._new_channel(
            name=f"PJSIP/caller-{self._seq_name()}",
            kind="caller",
            state="Ring",
            location=DialplanLocation(context, exten, 1),
            caller=Party(caller_name, caller_number),
            protocol_id=f"{self.rng.randrange(1, 100)}-{self.rng.randrange(1, 65536)}@127.0.0.1",
        )
        leg = SimLeg(self, ch, self.loop_time())
        ch.leg = leg
        ch.dial_task = self.spawn(self._pbx(ch, Target(context, exten, 1)), f"pbx:{ch.snap.id}")
        return leg

    def phone(self, name: str) -> SimPhone:
        try:
            return self.phones[name]
        except KeyError:
            raise KeyError(
                f"no simulated phone {name!r}; configured: {sorted(self.phones)}"
            ) from None

    def phone_for_endpoint(self, endpoint: str) -> SimPhone | None:
        tech, _, resource = endpoint.partition("/")
        if tech.upper() != "PJSIP":
            return None
        return self.phones.get(resource.split("@")[0])

    # ---- the dialplan runner --------------------------------------------------------------------

    async def _pbx(self, ch: SimChannel, where: Target) -> None:
        """Run the channel through the dialplan from ``where`` until it hangs up."""
        try:
            await self._run_dialplan(ch, where)
        finally:
            if not ch.hungup:
                await self.hangup(ch, by="dialplan", cause=16, soft=True)

    async def _run_dialplan(self, ch: SimChannel, where: Target) -> None:
        leg = ch.leg
        while not ch.hungup:
            step = self.dialplan.step(where.context, where.exten, where.priority)
            if step is None:
                return  # fell off the end of the extension: Asterisk hangs up
            ch.snap.dialplan = DialplanLocation(
                where.context, where.exten, where.priority, step.app, step.data
            )
            if ch.app is not None and not ch.in_stasis:
                self.emit_channel(
                    ch, "ChannelDialplan", dialplan_app=step.app, dialplan_app_data=step.data
                )
            if leg is not None and step.app != "NoOp":
                leg.path.append(f"{step.app}({step.data})")
            nxt = await self._execute(ch, step, where)
            if nxt is None:
                return
            where = nxt

    async def _execute(self, ch: SimChannel, step: Step, here: Target) -> Target | None:
        following = Target(here.context, here.exten, here.priority + 1)
        args = step.args
        if step.app == "NoOp":
            return following
        if step.app == "Answer":
            self.set_state(ch, "Up")
            return following
        if step.app == "Wait":
            await asyncio.sleep(float(args[0]) if args else 0.0)
            return following
        if step.app == "Hangup":
            await self.hangup(ch, by="dialplan", cause=int(args[0]) if args else 16, soft=True)
            return None
        if step.app == "Goto":
            return self.dialplan.resolve_goto(step.data, here)
        if step.app == "Playback":
            self.set_state(ch, "Up")
            for name in step.data.split("&"):
                audio = self.sounds.find(name.strip())
                if audio is not None:
                    await self._play_to_far_end(ch, audio)
            return following
        if step.app == "Stasis":
            return await self._stasis_app(ch, args, following)
        if step.app == "Dial":
            await self._dialplan_dial(ch, args)
            return None if ch.hungup else following
        if step.app == "VoiceMail":
            await self._voicemail(ch, args[0] if args else "default")
            return None
        raise ValueError(f"dialplan application {step.app!r} is not modelled")

    async def _stasis_app(
        self, ch: SimChannel, args: list[str], following: Target
    ) -> Target | None:
        app = args[0] if args else ""
        if not self.app_connected(app):
            # Asterisk: "Stasis app 'x' not registered"; STASISSTATUS=FAILED and the dialplan goes on.
            ch.vars["STASISSTATUS"] = "FAILED"
            if ch.leg is not None:
                ch.leg.path.append(f"Stasis({app}) not registered")
            return following
        target = await self.enter_stasis(ch, app, args[1:])
        if target is None:
            return None
        if ch.leg is not None:
            ch.leg.path.append(f"continue({target.context},{target.exten},{target.priority})")
        return target if target.priority else following

    async def enter_stasis(self, ch: SimChannel, app: str, args: list[str]) -> Target | None:
        """Hand the channel to ``app``; returns where /continue sends it, ``None`` on hangup."""
        ch.app = app
        ch.in_stasis = True
        ch.vars["STASISSTATUS"] = ""
        ch.stasis_exit = asyncio.get_running_loop().create_future()
        self.emit_channel(ch, "StasisStart", args=list(args))
        return await ch.stasis_exit

    def _leave_stasis(self, ch: SimChannel, target: Target | None) -> None:
        if not ch.in_stasis:
            return
        ch.in_stasis = False
        ch.vars["STASISSTATUS"] = "SUCCESS"
        self.emit_channel(ch, "StasisEnd")
        if ch.stasis_exit is not None and not ch.stasis_exit.done():
            ch.stasis_exit.set_result(target)

    async def _play_to_far_end(self, ch: SimChannel, audio: bytes) -> None:
        """Dialplan ``Playback``: paced frames to the channel's far end."""
        loop = asyncio.get_running_loop()
        src = FrameSource(self.rng.getrandbits(32), self.rng.randrange(SEQ_MOD), 0, local=True)
        start = loop.time()
        for i, payload in enumerate(frames_of(audio)):
            if ch.hungup:
                return
            delay = start + i * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._to_far_end(ch, src.next(payload), resync=False)

    async def _dialplan_dial(self, ch: SimChannel, args: list[str]) -> None:
        """``Dial(PJSIP/a&PJSIP/b,timeout)``: ring all; the first to answer is connected."""
        endpoints = [e for e in (args[0].split("&") if args else []) if e]
        timeout = float(args[1]) if len(args) > 1 and args[1] else 0.0
        phones = [p for p in (self.phone_for_endpoint(e) for e in endpoints) if p is not None]
        reachable = [p for p in phones if p.behaviour != "unavailable"]
        if not reachable:
            ch.vars["DIALSTATUS"] = "CHANUNAVAIL"
            self._path(ch, "CHANUNAVAIL")
            return
        answered: asyncio.Future[SimChannel] = asyncio.get_running_loop().create_future()
        legs: list[SimChannel] = []
        for p in reachable:
            peer = self._new_channel(
                name=f"PJSIP/{p.name}-{self._seq_name()}",
                kind="phone",
                state="Down",
                location=DialplanLocation(
                    "from-internal", ch.snap.dialplan.exten, 1, "AppDial", "(Outgoing Line)"
                ),
                caller=Party(ch.snap.caller.name, ch.snap.caller.number),
            )
            self._attach_phone_leg(peer, p)
            legs.append(peer)
            if p.behaviour == "answer":
                self.spawn(self._ring_then_answer(peer, p, answered), f"ring:{peer.snap.id}")
            elif p.behaviour == "noanswer":
                self.set_state(peer, "Ringing")
        statuses = {p.behaviour for p in reachable}
        try:
            if statuses & {"answer", "noanswer"}:
                picked = await self._answer_or_hangup(ch, answered, timeout)
                if picked is None:
                    return  # the caller gave up while it rang
                winner = picked
            else:
                await asyncio.sleep(0.005)
                ch.vars["DIALSTATUS"] = "BUSY"
                self._path(ch, "BUSY")
                for peer in legs:
                    await self.hangup(peer, by="phone", cause=17, tech_cause=486)
                return
        except TimeoutError:
            ch.vars["DIALSTATUS"] = "NOANSWER"
            self._path(ch, "NOANSWER")
            for peer in legs:
                await self.hangup(peer, by="dialplan", cause=19, tech_cause=480)
            return
        finally:
            if ch.hungup:
                for peer in legs:
                    await self.hangup(peer, by="dialplan", cause=16)
        for peer in legs:
            if peer is not winner:
                await self.hangup(peer, by="dialplan", cause=26)
        ch.vars["DIALSTATUS"] = "ANSWER"
        self._path(ch, f"answered({winner.phone.endpoint if winner.phone else winner.snap.name})")
        self.set_state(ch, "Up")
        ch.direct_peer, winner.direct_peer = winner, ch
        ended = [c.leg.ended for c in (ch, winner) if c.leg is not None]
        waiters = [self.spawn(e.wait(), f"dial-wait:{ch.snap.id}") for e in ended]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        for c in (winner, ch):
            if not c.hungup:
                await self.hangup(c, by="dialplan", cause=16)

    async def _answer_or_hangup(
        self, ch: SimChannel, answered: asyncio.Future[SimChannel], timeout_s: float
    ) -> SimChannel | None:
        """The answering leg; ``None`` if the caller hung up first; TimeoutError after ``timeout_s``."""
        waits: set[asyncio.Future[Any]] = {answered}
        ended = None
        if ch.leg is not None:
            ended = self.spawn(ch.leg.ended.wait(), f"dial-caller:{ch.snap.id}")
            waits.add(ended)
        try:
            await asyncio.wait(
                waits, timeout=timeout_s or None, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if ended is not None:
                ended.cancel()
        if answered.done():
            return answered.result()
        if ch.hungup:
            return None
        raise TimeoutError

    def _path(self, ch: SimChannel, text: str) -> None:
        if ch.leg is not None:
            ch.leg.path.append(text)

    def _attach_phone_leg(self, peer: SimChannel, p: SimPhone) -> SimLeg:
        peer.phone = p
        leg = SimLeg(self, peer, self.loop_time())
        peer.leg = leg
        p.calls.append(leg)
        return leg

    async def _ring_then_answer(
        self, peer: SimChannel, p: SimPhone, answered: asyncio.Future[SimChannel]
    ) -> None:
        self.set_state(peer, "Ringing")
        await asyncio.sleep(p.ring_delay_s)
        if peer.hungup or answered.done():
            return
        self.set_state(peer, "Up")
        answered.set_result(peer)
        await p._notify()

    async def _voicemail(self, ch: SimChannel, box: str) -> None:
        self.set_state(ch, "Up")
        for name in ("vm-intro", "beep"):
            audio = self.sounds.find(name)
            if audio is not None:
                await self._play_to_far_end(ch, audio)
        vm = Voicemail(box.split("@")[0], ch.snap.caller.number)
        self.voicemails.setdefault(vm.box, []).append(vm)
        ch.recording = vm
        if ch.leg is not None:
            await ch.leg.ended.wait()

    # ---- media routing --------------------------------------------------------------------------

    def media_in(self, ch: SimChannel, frame: Frame) -> None:
        """Audio the channel's far end sent into Asterisk."""
        if ch.hungup:
            return
        if ch.prompt is not None:
            # Observed: while /channels/{id}/play runs, the caller's audio does not reach the bridge.
            ch.held_back = True
            return
        resync, ch.held_back = ch.held_back, False
        if ch.recording is not None:
            ch.recording.audio.extend(frame.payload)
        if ch.bridge is not None:
            self._bridge_in(ch.bridge, ch, frame, resync)
        elif ch.direct_peer is not None:
            self._to_far_end(ch.direct_peer, frame, resync)

    def _to_far_end(
        self, ch: SimChannel, frame: Frame, resync: bool, *, prompt: bool = False
    ) -> None:
        """What Asterisk sends to the channel's far end."""
        if ch.hungup:
            return
        if not prompt and (ch.prompt is not None or ch.moh_task is not None):
            return  # a channel listening to a prompt or hold music hears nothing else
        if ch.port is not None:
            ch.port.send(frame, resync)
        elif ch.leg is not None:
            ch.leg.timeline.add(self.loop_time(), frame.payload)

    def _bridge_in(self, br: SimBridge, ch: SimChannel, frame: Frame, resync: bool) -> None:
        if br.mixer_task is not None:
            box = br.inbox.setdefault(ch.snap.id, deque(maxlen=4))
            box.append(frame.payload)
            return
        for other in br.members:
            if other is not ch:
                self._to_far_end(other, frame, resync)

    def _update_bridge_mode(self, br: SimBridge) -> None:
        # An announcer needs the mixer to be heard, even with a single channel in the bridge.
        if br.technology() == "softmix" or br.announcers:
            if br.mixer_task is None:
                br.mixer_task = self.spawn(self._mixer(br), f"softmix:{br.snap.id}")
        else:
            self._stop_mixer(br)

    def _stop_mixer(self, br: SimBridge) -> None:
        if br.mixer_task is not None:
            br.mixer_task.cancel()
            br.mixer_task = None
            br.inbox.clear()

    async def _mixer(self, br: SimBridge) -> None:
        """softmix: a continuous Asterisk-timed 20 ms stream to every member, minus its own audio."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        while True:
            tick += 1
            delay = start + tick * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            inputs: dict[str, bytes | None] = {}
            for m in br.members:
                box = br.inbox.get(m.snap.id)
                inputs[m.snap.id] = box.popleft() if box else None
            for pb in list(br.announcers):
                key = f"announcer:{pb.snap.id}"
                if pb.frames:
                    inputs[key] = pb.frames.popleft()
                else:
                    inputs[key] = None
                    self._finish_bridge_playback(br, pb)
            out = mix(inputs)
            for m in list(br.members):
                src = br.mix_out.get(m.snap.id)
                if src is None:
                    src = FrameSource(
                        self.rng.getrandbits(32),
                        self.rng.randrange(SEQ_MOD),
                        self.rng.getrandbits(32),
                        local=True,
                    )
                    br.mix_out[m.snap.id] = src
                self._to_far_end(m, src.next(out[m.snap.id]), resync=False)
            if br.mixer_task is None or (br.technology() != "softmix" and not br.announcers):
                if br.mixer_task is asyncio.current_task():
                    br.mixer_task = None
                return

    def dtmf_received(self, ch: SimChannel, digit: str, duration_ms: int) -> None:
        if ch.hungup:
            return
        if ch.in_stasis:
            self.emit_channel(ch, "ChannelDtmfReceived", digit=digit, duration_ms=duration_ms)

    # ---- hangup ---------------------------------------------------------------------------------

    async def hangup(
        self,
        ch: SimChannel,
        *,
        by: HangupBy,
        cause: int | None = None,
        soft: bool = False,
        tech_cause: int | None = None,
        bye: bool = False,
        destroyed_cause: int | None = None,
        report_destroyed: bool = True,
    ) -> None:
        if ch.hungup:
            return
        ch.hungup = True
        request: dict[str, Any] = {}
        if not bye:
            if cause is not None:
                request["cause"] = cause
            if tech_cause is not None:
                request["tech_cause"] = tech_cause
            if soft:
                request["soft"] = True
        self.emit_channel(ch, "ChannelHangupRequest", **request)
        if ch.ringing_dial is not None:
            self.emit(
                ch.app,
                "Dial",
                dialstatus="NOANSWER",
                forward="",
                dialstring=ch.ringing_dial,
                peer=ch.snap.to_json(),
            )
            ch.ringing_dial = None
        for pb in [ch.prompt, *ch.playback_queue]:
            if pb is not None:
                pb.stopped.set()
        if ch.moh_task is not None:
            ch.moh_task.cancel()
            ch.moh_task = None
        was_in_stasis = ch.in_stasis
        if ch.bridge is not None:
            self._remove_from_bridge(ch.bridge, ch)
        self._leave_stasis(ch, None)
        final = (
            destroyed_cause
            if destroyed_cause is not None
            else (cause if cause not in (None, 32, 4) else 16)
        )
        assert final is not None
        # Observed: after a BYE while in Stasis the app got StasisEnd and nothing more.
        if report_destroyed and not (bye and was_in_stasis):
            destroyed: dict[str, Any] = {
                "cause": final,
                "cause_txt": CAUSE_TEXT.get(final, "Unknown"),
            }
            if tech_cause is not None:
                destroyed["tech_cause"] = tech_cause
            self.emit_channel(ch, "ChannelDestroyed", **destroyed)
        if ch.port is not None:
            ch.port.close()
        self.channels.pop(ch.snap.id, None)
        if ch.leg is not None and not ch.leg.ended.is_set():
            ch.leg.hangup_by = by
            ch.leg.ended.set()
            if ch.phone is not None:
                await ch.phone._notify()
        if ch.direct_peer is not None and not ch.direct_peer.hungup:
            await self.hangup(ch.direct_peer, by=by, cause=16)

    # ---- bridges --------------------------------------------------------------------------------

    def add_to_bridge(self, br: SimBridge, ch: SimChannel) -> None:
        if ch.bridge is not None:
            self._remove_from_bridge(ch.bridge, ch)
        br.members.append(ch)
        ch.bridge = br
        self.emit_channel(ch, "ChannelEnteredBridge", bridge=br.json())
        # Recorded: an externalMedia channel bridged with the caller takes the caller's identity
        # as its connected line (ChannelConnectedLine right after the second EnteredBridge).
        sip = [m for m in br.members if m.kind != "external"]
        if ch.kind == "external" and sip:
            ch.snap.connected = Party(sip[0].snap.caller.name, sip[0].snap.caller.number)
            self.emit_channel(ch, "ChannelConnectedLine")
        self._update_bridge_mode(br)

    def _remove_from_bridge(self, br: SimBridge, ch: SimChannel) -> None:
        if ch in br.members:
            br.members.remove(ch)
        br.inbox.pop(ch.snap.id, None)
        br.mix_out.pop(ch.snap.id, None)
        ch.bridge = None
        self.emit_channel(ch, "ChannelLeftBridge", bridge=br.json())
        self._update_bridge_mode(br)

    def remove_from_bridge(self, br: SimBridge, ch: SimChannel) -> None:
        self._remove_from_bridge(br, ch)

    def destroy_bridge(self, br: SimBridge) -> None:
        for ch in list(br.members):
            self._remove_from_bridge(br, ch)
        for pb in list(br.announcers):
            self._finish_bridge_playback(br, pb)
        self._stop_mixer(br)
        self.bridges.pop(br.snap.id, None)
        self.emit(br.app, "BridgeDestroyed", bridge=br.json())

    # ---- playbacks ------------------------------------------------------------------------------

    def _load_media(self, media: str) -> tuple[list[bytes] | None, bool]:
        """(audio per item or None when a sound is missing, known scheme?)."""
        items: list[bytes] = []
        for uri in media.split(","):
            scheme, _, rest = uri.partition(":")
            if scheme == "sound":
                audio = self.sounds.find(rest)
                if audio is None:
                    return None, True
                items.append(audio)
            elif scheme == "silence":
                items.append(bytes([ULAW_SILENCE]) * int(float(rest or "1") * 8000))
            else:
                return None, False
        return items, True

    def play_on_channel(
        self, ch: SimChannel, app: str, media: str, playback_id: str | None, lang: str
    ) -> Playback:
        pb = Playback(
            PlaybackSnapshot(
                playback_id or self.uuid(), media, f"channel:{ch.snap.id}", lang or "en"
            ),
            app,
            ch,
        )
        self.playbacks[pb.snap.id] = pb
        ch.playback_queue.append(pb)
        if ch.player_task is None or ch.player_task.done():
            ch.player_task = self.spawn(self._channel_player(ch), f"player:{ch.snap.id}")
        return pb

    async def _channel_player(self, ch: SimChannel) -> None:
        while ch.playback_queue and not ch.hungup:
            pb = ch.playback_queue.popleft()
            await asyncio.sleep(0)  # the 201 response goes out before PlaybackStarted
            if pb.stopped.is_set():
                continue
            items, known = self._load_media(pb.snap.media_uri)
            pb.snap.state = "playing"
            self.emit(pb.app, "PlaybackStarted", playback=pb.snap.to_json())
            if not known:
                # Observed for a bogus scheme: PlaybackStarted and never PlaybackFinished.
                ch.prompt = pb
                await pb.stopped.wait()
                ch.prompt = None
                self._forget_playback(pb)
                continue
            if items is None:
                self._finish_playback(pb, "failed")
                continue
            ch.prompt = pb
            try:
                await self._play_items(ch, pb, items)
            finally:
                ch.prompt = None
            self._finish_playback(pb, "done")

    async def _play_items(self, ch: SimChannel, pb: Playback, items: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        src = FrameSource(
            self.rng.getrandbits(32), self.rng.randrange(SEQ_MOD), self.rng.getrandbits(32), True
        )
        start = loop.time()
        n = 0
        for audio in items:
            for payload in frames_of(audio):
                delay = start + n * FRAME_S - loop.time()
                n += 1
                if delay > 0:
                    try:
                        await asyncio.wait_for(pb.stopped.wait(), delay)
                    except TimeoutError:
                        pass
                if pb.stopped.is_set() or ch.hungup:
                    return
                self._to_far_end(ch, src.next(payload), resync=False, prompt=True)
        # Let the last frame's 20 ms elapse before reporting the end.
        delay = start + n * FRAME_S - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _finish_playback(self, pb: Playback, state: str) -> None:
        pb.snap.state = state
        self._forget_playback(pb)
        self.emit(pb.app, "PlaybackFinished", playback=pb.snap.to_json())

    def _forget_playback(self, pb: Playback) -> None:
        if self.playbacks.get(pb.snap.id) is pb:
            del self.playbacks[pb.snap.id]

    def play_on_bridge(
        self, br: SimBridge, app: str, media: str, playback_id: str | None, lang: str
    ) -> Playback:
        pb = Playback(
            PlaybackSnapshot(
                playback_id or self.uuid(), media, f"bridge:{br.snap.id}", lang or "en"
            ),
            app,
            br,
        )
        self.playbacks[pb.snap.id] = pb
        self.spawn(self._start_bridge_playback(br, pb), f"bridge-play:{pb.snap.id}")
        return pb

    async def _start_bridge_playback(self, br: SimBridge, pb: Playback) -> None:
        await asyncio.sleep(0)
        items, known = self._load_media(pb.snap.media_uri)
        pb.snap.state = "playing"
        self.emit(pb.app, "PlaybackStarted", playback=pb.snap.to_json())
        if items is None:
            if known:
                self._finish_playback(pb, "failed")
            return
        for audio in items:
            pb.frames.extend(frames_of(audio))
        # The announcer joins the bridge as a participant: softmix mixes it in, so a bridge
        # playback does not interrupt the caller's audio toward the agent (as observed).
        br.announcers.append(pb)
        self._update_bridge_mode(br)

    def _finish_bridge_playback(self, br: SimBridge, pb: Playback) -> None:
        if pb in br.announcers:
            br.announcers.remove(pb)
            self._finish_playback(pb, "done")

    def stop_playback(self, pb: Playback) -> None:
        target = pb.target
        if isinstance(target, SimBridge):
            pb.frames.clear()
            if pb in target.announcers:
                self._finish_bridge_playback(target, pb)
                self._update_bridge_mode(target)
            return
        if pb in target.playback_queue:
            target.playback_queue.remove(pb)
            self._forget_playback(pb)
            return
        # The player notices and reports PlaybackFinished itself.
        pb.stopped.set()

    # ---- music on hold ----------------------------------------------------------------------------

    def start_moh(self, ch: SimChannel) -> None:
        if ch.moh_task is None:
            ch.moh_task = self.spawn(self._moh(ch), f"moh:{ch.snap.id}")

    def stop_moh(self, ch: SimChannel) -> None:
        if ch.moh_task is not None:
            ch.moh_task.cancel()
            ch.moh_task = None

    async def _moh(self, ch: SimChannel) -> None:
        loop = asyncio.get_running_loop()
        audio = music_on_hold(2.0)
        src = FrameSource(self.rng.getrandbits(32), self.rng.randrange(SEQ_MOD), 0, local=True)
        start = loop.time()
        n = 0
        while not ch.hungup:
            for payload in frames_of(audio):
                delay = start + n * FRAME_S - loop.time()
                n += 1
                if delay > 0:
                    await asyncio.sleep(delay)
                self._to_far_end(ch, src.next(payload), resync=False, prompt=True)

    # ---- dialling phones from ARI -------------------------------------------------------------

    def create_phone_channel(
        self,
        phone: SimPhone,
        *,
        channel_id: str | None,
        caller: Party,
        context: str = "medical-clinician",
    ) -> SimChannel:
        ch = self._new_channel(
            name=f"PJSIP/{phone.name}-{self._seq_name()}",
            kind="phone",
            state="Down",
            location=DialplanLocation(context, "s", 1, "", ""),
            channel_id=channel_id,
            caller=caller,
            protocol_id=self.uuid(),
        )
        ch.snap.connected = Party(caller.name, caller.number)
        self._attach_phone_leg(ch, phone)
        return ch

    async def ari_dial(self, ch: SimChannel, timeout_s: float) -> None:
        """``POST /channels/{id}/dial`` on a created channel (already in Stasis)."""
        phone = ch.phone
        assert phone is not None
        dialstring = phone.name
        self.emit_channel(ch, "ChannelConnectedLine")
        self.emit(
            ch.app, "Dial", dialstatus="", forward="", dialstring=dialstring, peer=ch.snap.to_json()
        )
        await asyncio.sleep(0.002)
        if ch.hungup:
            return
        if phone.behaviour == "busy":
            await self.hangup(ch, by="phone", cause=17, tech_cause=486, destroyed_cause=17)
            return
        self.set_state(ch, "Ringing")
        self.emit(
            ch.app, "Dial", dialstatus="RINGING", forward="", dialstring="", peer=ch.snap.to_json()
        )
        await phone._notify()
        answers = phone.behaviour == "answer" and (timeout_s <= 0 or phone.ring_delay_s < timeout_s)
        await asyncio.sleep(
            phone.ring_delay_s if answers else (timeout_s if timeout_s > 0 else 3600)
        )
        if ch.hungup:
            return
        if answers:
            self.set_state(ch, "Up")
            self.emit(
                ch.app,
                "Dial",
                dialstatus="ANSWER",
                forward="",
                dialstring="",
                peer=ch.snap.to_json(),
            )
            await phone._notify()
        else:
            # Observed: no Dial(NOANSWER) in this flow; HangupRequest(32, soft), StasisEnd, Destroyed(19).
            await self.hangup(
                ch, by="dialplan", cause=32, soft=True, destroyed_cause=19, tech_cause=None
            )

    async def originate(self, ch: SimChannel, app: str, args: list[str], timeout_s: float) -> None:
        """``POST /channels``: dial the phone; on answer the channel enters Stasis."""
        phone = ch.phone
        assert phone is not None
        dialstring = phone.name
        ch.ringing_dial = dialstring
        self.emit(
            app, "Dial", dialstatus="", forward="", dialstring=dialstring, peer=ch.snap.to_json()
        )
        await asyncio.sleep(0.005)
        if ch.hungup:
            return
        if phone.behaviour == "busy":
            ch.ringing_dial = None
            self.emit_channel(ch, "ChannelHangupRequest", cause=17, tech_cause=486)
            self.emit(
                app,
                "Dial",
                dialstatus="BUSY",
                forward="",
                dialstring=dialstring,
                peer=ch.snap.to_json(),
            )
            await self._destroy_silently(ch, 17, 486)
            return
        self.set_state(ch, "Ringing")
        self.emit(
            app,
            "Dial",
            dialstatus="RINGING",
            forward="",
            dialstring=dialstring,
            peer=ch.snap.to_json(),
        )
        await phone._notify()
        answers = phone.behaviour == "answer" and phone.ring_delay_s < timeout_s
        await asyncio.sleep(phone.ring_delay_s if answers else timeout_s)
        if ch.hungup:
            return
        if not answers:
            await self.hangup(ch, by="dialplan", cause=19, tech_cause=480, destroyed_cause=19)
            return
        ch.ringing_dial = None
        self.set_state(ch, "Up")
        self.emit(
            app,
            "Dial",
            dialstatus="ANSWER",
            forward="",
            dialstring=dialstring,
            peer=ch.snap.to_json(),
        )
        await phone._notify()
        target = await self.enter_stasis(ch, app, args)
        if target is not None and not ch.hungup:
            await self._pbx(ch, target)

    async def _destroy_silently(self, ch: SimChannel, cause: int, tech_cause: int | None) -> None:
        """The busy originate: HangupRequest and Dial(BUSY) already sent, now ChannelDestroyed."""
        ch.hungup = True
        destroyed: dict[str, Any] = {"cause": cause, "cause_txt": CAUSE_TEXT.get(cause, "Unknown")}
        if tech_cause is not None:
            destroyed["tech_cause"] = tech_cause
        self.emit_channel(ch, "ChannelDestroyed", **destroyed)
        self.channels.pop(ch.snap.id, None)
        if ch.leg is not None:
            ch.leg.hangup_by = "phone"
            ch.leg.ended.set()

    async def continue_in_dialplan(self, ch: SimChannel, target: Target) -> None:
        await asyncio.sleep(0)  # 204 first, then LeftBridge/StasisEnd (as recorded)
        if ch.bridge is not None:
            self._remove_from_bridge(ch.bridge, ch)
        # Whoever put the channel into Stasis (the dialplan's Stasis step, an originate, a
        # channels/create) is waiting on stasis_exit and runs the dialplan from the target.
        self._leave_stasis(ch, target)

    async def redirect(self, ch: SimChannel, endpoint: str) -> None:
        await asyncio.sleep(0)
        self._path(ch, f"redirect({endpoint})")
        # A SIP 302: the caller leaves Asterisk; no ChannelDestroyed was delivered.
        await self.hangup(
            ch, by="agent", cause=23, tech_cause=302, destroyed_cause=23, report_destroyed=False
        )

    async def external_media(
        self,
        *,
        app: str,
        remote: tuple[str, int],
        external_host: str,
        channel_id: str | None,
        variables: dict[str, str],
    ) -> SimChannel:
        """``POST /channels/externalMedia`` (ulaw over RTP/UDP): bind a local port, answer later."""
        loop = asyncio.get_running_loop()
        port_obj = ExternalMediaPort(self, remote)
        lo, hi = self.config.rtp_port_min, self.config.rtp_port_max
        bound: int | None = None
        for port in range(lo + (lo % 2), hi + 1, 2):
            try:
                await loop.create_datagram_endpoint(
                    lambda: port_obj, local_addr=(self.config.host, port)
                )
            except OSError:
                continue
            bound = port
            break
        if bound is None:
            raise RestError(500, "An internal error prevented this request from being handled")
        ch = self._new_channel(
            name=f"UnicastRTP/{external_host}-0x{self.rng.getrandbits(44):x}",
            kind="external",
            state="Down",
            location=DialplanLocation("default", "s", 1, "AppDial2", "(Outgoing Line)"),
            channel_id=channel_id,
        )
        ch.port = port_obj
        port_obj.channel = ch
        ch.vars.update(variables)
        ch.vars["UNICASTRTP_LOCAL_ADDRESS"] = self.config.host
        ch.vars["UNICASTRTP_LOCAL_PORT"] = str(bound)
        ch.app = app
        self.spawn(self._external_media_answer(ch, app, external_host), f"em:{ch.snap.id}")
        return ch

    async def _external_media_answer(self, ch: SimChannel, app: str, external_host: str) -> None:
        # Recorded: the REST response comes first, then Dial(""), StateChange(Up), Dial(ANSWER),
        # StasisStart. An addChannel sent before StasisStart gets 422.
        await asyncio.sleep(self.config.external_media_stasis_delay_s)
        if ch.hungup:
            return
        dialstring = f"{external_host}/c(ulaw)"
        self.emit(
            app, "Dial", dialstatus="", forward="", dialstring=dialstring, peer=ch.snap.to_json()
        )
        self.set_state(ch, "Up")
        self.emit(
            app,
            "Dial",
            dialstatus="ANSWER",
            forward="",
            dialstring=dialstring,
            peer=ch.snap.to_json(),
        )
        ch.snap.dialplan = DialplanLocation("default", "s", 1, "Stasis", app)
        await self.enter_stasis(ch, app, [])


def _replace_port(cfg: PbxSimConfig, port: int) -> PbxSimConfig:
    import dataclasses

    return dataclasses.replace(cfg, port=port)
