"""Channels the stand-in makes because ARI asked: desk phones dialled by ``POST /channels``
(originate, to an app or into the dialplan), ``/channels/create`` then ``/dial``, and
externalMedia channels with their UDP port.

Each ring, answer, busy and no-answer reports the ``Dial`` events and hangup causes of the
recordings; where two recorded flows differ (a ringing originate that is hung up, a created
channel that is not answered) the difference is kept and commented.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from agent.pbxsim.external_media import ExternalMediaPort
from agent.pbxsim.model import CAUSE_TEXT, DialplanLocation, Party, RestError

if TYPE_CHECKING:  # annotations only: the engine imports this module
    from agent.pbxsim.dialplan import Target
    from agent.pbxsim.engine import PbxSim
    from agent.pbxsim.handsets import SimPhone
    from agent.pbxsim.model import SimChannel


class Originator:
    """ARI-made channels for one ``PbxSim``."""

    def __init__(self, sim: PbxSim) -> None:
        self.sim = sim

    # ---- desk phones ----------------------------------------------------------------------------

    def create_phone_channel(
        self,
        phone: SimPhone,
        *,
        channel_id: str | None,
        caller: Party,
        context: str = "medical-clinician",
    ) -> SimChannel:
        sim = self.sim
        ch = sim.new_channel(
            name=f"PJSIP/{phone.name}-{sim.seq_name()}",
            kind="phone",
            state="Down",
            location=DialplanLocation(context, "s", 1, "", ""),
            channel_id=channel_id,
            caller=caller,
            protocol_id=sim.uuid(),
        )
        ch.snap.connected = Party(caller.name, caller.number)
        sim.attach_phone_leg(ch, phone)
        return ch

    async def ari_dial(self, ch: SimChannel, timeout_s: float) -> None:
        """``POST /channels/{id}/dial`` on a created channel (already in Stasis)."""
        sim = self.sim
        phone = ch.phone
        assert phone is not None
        dialstring = phone.name
        sim.emit_channel(ch, "ChannelConnectedLine")
        sim.emit(
            ch.app, "Dial", dialstatus="", forward="", dialstring=dialstring, peer=ch.snap.to_json()
        )
        await asyncio.sleep(0.002)
        if ch.hungup:
            return
        if phone.behaviour == "busy":
            await sim.hangup(ch, by="phone", cause=17, tech_cause=486, destroyed_cause=17)
            return
        sim.set_state(ch, "Ringing")
        sim.emit(
            ch.app, "Dial", dialstatus="RINGING", forward="", dialstring="", peer=ch.snap.to_json()
        )
        await phone.notify()
        answers = phone.behaviour == "answer" and (timeout_s <= 0 or phone.ring_delay_s < timeout_s)
        await asyncio.sleep(
            phone.ring_delay_s if answers else (timeout_s if timeout_s > 0 else 3600)
        )
        if ch.hungup:
            return
        if answers:
            sim.set_state(ch, "Up")
            sim.emit(
                ch.app,
                "Dial",
                dialstatus="ANSWER",
                forward="",
                dialstring="",
                peer=ch.snap.to_json(),
            )
            await phone.notify()
        else:
            # Observed: no Dial(NOANSWER) in this flow; HangupRequest(32, soft), StasisEnd, Destroyed(19).
            await sim.hangup(
                ch, by="dialplan", cause=32, soft=True, destroyed_cause=19, tech_cause=None
            )

    async def originate(self, ch: SimChannel, app: str, args: list[str], timeout_s: float) -> None:
        """``POST /channels``: dial the phone; on answer the channel enters Stasis."""
        sim = self.sim
        phone = ch.phone
        assert phone is not None
        dialstring = phone.name
        ch.ringing_dial = dialstring
        sim.emit(
            app, "Dial", dialstatus="", forward="", dialstring=dialstring, peer=ch.snap.to_json()
        )
        await asyncio.sleep(0.005)
        if ch.hungup:
            return
        if phone.behaviour == "busy":
            ch.ringing_dial = None
            sim.emit_channel(ch, "ChannelHangupRequest", cause=17, tech_cause=486)
            sim.emit(
                app,
                "Dial",
                dialstatus="BUSY",
                forward="",
                dialstring=dialstring,
                peer=ch.snap.to_json(),
            )
            await self._destroy_silently(ch, 17, 486)
            return
        sim.set_state(ch, "Ringing")
        sim.emit(
            app,
            "Dial",
            dialstatus="RINGING",
            forward="",
            dialstring=dialstring,
            peer=ch.snap.to_json(),
        )
        await phone.notify()
        answers = phone.behaviour == "answer" and phone.ring_delay_s < timeout_s
        await asyncio.sleep(phone.ring_delay_s if answers else timeout_s)
        if ch.hungup:
            return
        if not answers:
            await sim.hangup(ch, by="dialplan", cause=19, tech_cause=480, destroyed_cause=19)
            return
        ch.ringing_dial = None
        sim.set_state(ch, "Up")
        sim.emit(
            app,
            "Dial",
            dialstatus="ANSWER",
            forward="",
            dialstring=dialstring,
            peer=ch.snap.to_json(),
        )
        await phone.notify()
        target = await sim.runner.enter_stasis(ch, app, args)
        if target is not None and not ch.hungup:
            await sim.runner.run(ch, target)

    async def originate_to_dialplan(self, ch: SimChannel, target: Target, timeout_s: float) -> None:
        """``POST /channels`` with an extension instead of an app: on answer the phone's channel
        runs the dialplan from ``target``."""
        sim = self.sim
        phone = ch.phone
        assert phone is not None
        sim.set_state(ch, "Ringing")
        if phone.behaviour != "answer" or phone.ring_delay_s >= timeout_s:
            await asyncio.sleep(0.005 if phone.behaviour == "busy" else timeout_s)
            await sim.hangup(ch, by="phone", cause=17 if phone.behaviour == "busy" else 19)
            return
        await asyncio.sleep(phone.ring_delay_s)
        if not ch.hungup:
            sim.set_state(ch, "Up")
            await phone.notify()
            await sim.runner.run(ch, target)

    async def created_in_stasis(self, ch: SimChannel, app: str, args: list[str]) -> None:
        """``POST /channels/create``: the channel waits in Stasis (``/dial`` rings it); after
        ``/continue`` it runs the dialplan."""
        target = await self.sim.runner.enter_stasis(ch, app, args)
        if target is not None and not ch.hungup:
            await self.sim.runner.run(ch, target)

    async def _destroy_silently(self, ch: SimChannel, cause: int, tech_cause: int | None) -> None:
        """The busy originate: HangupRequest and Dial(BUSY) already sent, now ChannelDestroyed."""
        ch.hungup = True
        destroyed: dict[str, Any] = {"cause": cause, "cause_txt": CAUSE_TEXT.get(cause, "Unknown")}
        if tech_cause is not None:
            destroyed["tech_cause"] = tech_cause
        self.sim.emit_channel(ch, "ChannelDestroyed", **destroyed)
        self.sim.channels.pop(ch.snap.id, None)
        if ch.leg is not None:
            ch.leg.hangup_by = "phone"
            ch.leg.ended.set()

    # ---- externalMedia --------------------------------------------------------------------------

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
        sim = self.sim
        cfg = sim.config
        loop = asyncio.get_running_loop()
        port_obj = ExternalMediaPort(sim, remote)
        lo, hi = cfg.rtp_port_min, cfg.rtp_port_max
        bound: int | None = None
        for port in range(lo + (lo % 2), hi + 1, 2):
            try:
                await loop.create_datagram_endpoint(lambda: port_obj, local_addr=(cfg.host, port))
            except OSError:
                continue
            bound = port
            break
        if bound is None:
            raise RestError(500, "An internal error prevented this request from being handled")
        ch = sim.new_channel(
            name=f"UnicastRTP/{external_host}-0x{sim.rng.getrandbits(44):x}",
            kind="external",
            state="Down",
            location=DialplanLocation("default", "s", 1, "AppDial2", "(Outgoing Line)"),
            channel_id=channel_id,
        )
        ch.port = port_obj
        port_obj.channel = ch
        ch.vars.update(variables)
        ch.vars["UNICASTRTP_LOCAL_ADDRESS"] = cfg.host
        ch.vars["UNICASTRTP_LOCAL_PORT"] = str(bound)
        ch.app = app
        sim.spawn(self._external_media_answer(ch, app, external_host), f"em:{ch.snap.id}")
        return ch

    async def _external_media_answer(self, ch: SimChannel, app: str, external_host: str) -> None:
        # Recorded: the REST response comes first, then Dial(""), StateChange(Up), Dial(ANSWER),
        # StasisStart. An addChannel sent before StasisStart gets 422.
        sim = self.sim
        await asyncio.sleep(sim.config.external_media_stasis_delay_s)
        if ch.hungup:
            return
        dialstring = f"{external_host}/c(ulaw)"
        sim.emit(
            app, "Dial", dialstatus="", forward="", dialstring=dialstring, peer=ch.snap.to_json()
        )
        sim.set_state(ch, "Up")
        sim.emit(
            app,
            "Dial",
            dialstatus="ANSWER",
            forward="",
            dialstring=dialstring,
            peer=ch.snap.to_json(),
        )
        ch.snap.dialplan = DialplanLocation("default", "s", 1, "Stasis", app)
        await sim.runner.enter_stasis(ch, app, [])
