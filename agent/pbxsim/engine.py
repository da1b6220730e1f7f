"""The stand-in's Asterisk: ``PbxSim``, the façade tests, demos and ``ari.py`` hold.

It keeps the state every part shares (channels, bridges, playbacks, phones, connected apps), the
event stream, the ids and the clock, and the life of a channel from creation to hangup. Each other
concern is an object of its own that works on that state:

* ``runner`` (``dialplan_runner.py``): the dialplan model run application by application, Stasis;
* ``bridging`` (``bridging.py``): bridges, the softmix mixer and where each frame goes;
* ``player`` (``playback.py``): ARI and dialplan playbacks, music on hold;
* ``originator`` (``originate.py``): channels ARI asks for (originate, create and dial,
  externalMedia).

The far ends are ``handsets.py`` (``SimLeg``, ``SimPhone``); the resource objects and wire shapes
``model.py``; the media rules ``media.py``; the HTTP/websocket surface ``ari.py``. This is the
asyncio side of the stand-in (it owns tasks, UDP sockets and reads the loop clock). Event order
and fields follow the recordings in ``shared/asterisk-reference/traces`` (see that README); where
the recordings are silent the choice is commented.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.log import get_logger
from agent.pbxsim.bridging import Bridging
from agent.pbxsim.dialplan import Dialplan, Target, default_dialplan
from agent.pbxsim.dialplan_runner import DialplanRunner
from agent.pbxsim.handsets import HangupBy, PhoneConfig, SimLeg, SimPhone, Voicemail
from agent.pbxsim.model import (
    ASTERISK_ID,
    CAUSE_TEXT,
    ChannelSnapshot,
    DialplanLocation,
    Party,
    Playback,
    RestError,
    SimBridge,
    SimChannel,
    ari_timestamp,
    next_channel_state,
)
from agent.pbxsim.originate import Originator
from agent.pbxsim.playback import Player
from agent.pbxsim.sounds import SoundLibrary

log = get_logger("agent.pbxsim")


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
        self.runner = DialplanRunner(self)
        self.bridging = Bridging(self)
        self.player = Player(self)
        self.originator = Originator(self)

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
            self.bridging.stop_mixer(br)
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

    def seq_name(self) -> str:
        """A fresh suffix for a channel name (``PJSIP/frontdesk-00000007``)."""
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

    def new_channel(
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
        ch = self.new_channel(
            name=f"PJSIP/caller-{self.seq_name()}",
            kind="caller",
            state="Ring",
            location=DialplanLocation(context, exten, 1),
            caller=Party(caller_name, caller_number),
            protocol_id=f"{self.rng.randrange(1, 100)}-{self.rng.randrange(1, 65536)}@127.0.0.1",
        )
        leg = SimLeg(self, ch, self.loop_time())
        ch.leg = leg
        ch.dial_task = self.spawn(
            self.runner.run(ch, Target(context, exten, 1)), f"pbx:{ch.snap.id}"
        )
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

    def attach_phone_leg(self, peer: SimChannel, p: SimPhone) -> SimLeg:
        """The desk phone ``p`` is the far end of ``peer``, a channel that rings it."""
        peer.phone = p
        leg = SimLeg(self, peer, self.loop_time())
        peer.leg = leg
        p.calls.append(leg)
        return leg

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
            self.bridging.remove(ch.bridge, ch)
        self.runner.leave_stasis(ch, None)
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
                await ch.phone.notify()
        if ch.direct_peer is not None and not ch.direct_peer.hungup:
            await self.hangup(ch.direct_peer, by=by, cause=16)

    async def continue_in_dialplan(self, ch: SimChannel, target: Target) -> None:
        await asyncio.sleep(0)  # 204 first, then LeftBridge/StasisEnd (as recorded)
        if ch.bridge is not None:
            self.bridging.remove(ch.bridge, ch)
        # Whoever put the channel into Stasis (the dialplan's Stasis step, an originate, a
        # channels/create) is waiting on stasis_exit and runs the dialplan from the target.
        self.runner.leave_stasis(ch, target)

    async def redirect(self, ch: SimChannel, endpoint: str) -> None:
        await asyncio.sleep(0)
        ch.note(f"redirect({endpoint})")
        # A SIP 302: the caller leaves Asterisk; no ChannelDestroyed was delivered.
        await self.hangup(
            ch, by="agent", cause=23, tech_cause=302, destroyed_cause=23, report_destroyed=False
        )


def _replace_port(cfg: PbxSimConfig, port: int) -> PbxSimConfig:
    import dataclasses

    return dataclasses.replace(cfg, port=port)
