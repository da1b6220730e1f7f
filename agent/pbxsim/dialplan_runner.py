"""The stand-in's pbx: runs a channel through the dialplan model (``dialplan.py``), one application
at a time, until it hangs up.

The applications modelled are those our dialplans use: ``Answer``, ``Wait``, ``Playback``,
``Goto``, ``Hangup``, ``Stasis`` (hand the channel to an ARI app; an app that is not connected
fails and the dialplan goes on, as Asterisk's ``STASISSTATUS=FAILED``), ``Dial`` to desk phones
(ring all, first to answer wins; ``DIALSTATUS`` as Asterisk sets it) and ``VoiceMail``. Each step
and outcome is added to the caller's ``path``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from agent.pbxsim.dialplan import Step, Target
from agent.pbxsim.handsets import Voicemail
from agent.pbxsim.model import DialplanLocation, Party

if TYPE_CHECKING:  # annotations only: the engine imports this module
    from agent.pbxsim.engine import PbxSim
    from agent.pbxsim.handsets import SimPhone
    from agent.pbxsim.model import SimChannel


class DialplanRunner:
    """Dialplan execution and Stasis entry and exit, for one ``PbxSim``."""

    def __init__(self, sim: PbxSim) -> None:
        self.sim = sim

    async def run(self, ch: SimChannel, where: Target) -> None:
        """Run the channel through the dialplan from ``where`` until it hangs up."""
        try:
            await self._run_dialplan(ch, where)
        finally:
            if not ch.hungup:
                await self.sim.hangup(ch, by="dialplan", cause=16, soft=True)

    async def _run_dialplan(self, ch: SimChannel, where: Target) -> None:
        leg = ch.leg
        while not ch.hungup:
            step = self.sim.dialplan.step(where.context, where.exten, where.priority)
            if step is None:
                return  # fell off the end of the extension: Asterisk hangs up
            ch.snap.dialplan = DialplanLocation(
                where.context, where.exten, where.priority, step.app, step.data
            )
            if ch.app is not None and not ch.in_stasis:
                self.sim.emit_channel(
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
            self.sim.set_state(ch, "Up")
            return following
        if step.app == "Wait":
            await asyncio.sleep(float(args[0]) if args else 0.0)
            return following
        if step.app == "Hangup":
            await self.sim.hangup(ch, by="dialplan", cause=int(args[0]) if args else 16, soft=True)
            return None
        if step.app == "Goto":
            return self.sim.dialplan.resolve_goto(step.data, here)
        if step.app == "Playback":
            self.sim.set_state(ch, "Up")
            for name in step.data.split("&"):
                audio = self.sim.sounds.find(name.strip())
                if audio is not None:
                    await self.sim.player.play_to_far_end(ch, audio)
            return following
        if step.app == "Stasis":
            return await self._stasis_app(ch, args, following)
        if step.app == "Dial":
            await self._dial(ch, args)
            return None if ch.hungup else following
        if step.app == "VoiceMail":
            await self._voicemail(ch, args[0] if args else "default")
            return None
        raise ValueError(f"dialplan application {step.app!r} is not modelled")

    # ---- Stasis ---------------------------------------------------------------------------------

    async def _stasis_app(
        self, ch: SimChannel, args: list[str], following: Target
    ) -> Target | None:
        app = args[0] if args else ""
        if not self.sim.app_connected(app):
            # Asterisk: "Stasis app 'x' not registered"; STASISSTATUS=FAILED and the dialplan goes on.
            ch.vars["STASISSTATUS"] = "FAILED"
            ch.note(f"Stasis({app}) not registered")
            return following
        target = await self.enter_stasis(ch, app, args[1:])
        if target is None:
            return None
        ch.note(f"continue({target.context},{target.exten},{target.priority})")
        return target if target.priority else following

    async def enter_stasis(self, ch: SimChannel, app: str, args: list[str]) -> Target | None:
        """Hand the channel to ``app``; returns where /continue sends it, ``None`` on hangup."""
        ch.app = app
        ch.in_stasis = True
        ch.vars["STASISSTATUS"] = ""
        ch.stasis_exit = asyncio.get_running_loop().create_future()
        self.sim.emit_channel(ch, "StasisStart", args=list(args))
        return await ch.stasis_exit

    def leave_stasis(self, ch: SimChannel, target: Target | None) -> None:
        """``StasisEnd``; whoever waits in ``enter_stasis`` goes on at ``target`` (``None``: hung
        up)."""
        if not ch.in_stasis:
            return
        ch.in_stasis = False
        ch.vars["STASISSTATUS"] = "SUCCESS"
        self.sim.emit_channel(ch, "StasisEnd")
        if ch.stasis_exit is not None and not ch.stasis_exit.done():
            ch.stasis_exit.set_result(target)

    # ---- Dial -----------------------------------------------------------------------------------

    async def _dial(self, ch: SimChannel, args: list[str]) -> None:
        """``Dial(PJSIP/a&PJSIP/b,timeout)``: ring all; the first to answer is connected."""
        sim = self.sim
        endpoints = [e for e in (args[0].split("&") if args else []) if e]
        timeout = float(args[1]) if len(args) > 1 and args[1] else 0.0
        phones = [p for p in (sim.phone_for_endpoint(e) for e in endpoints) if p is not None]
        reachable = [p for p in phones if p.behaviour != "unavailable"]
        if not reachable:
            ch.vars["DIALSTATUS"] = "CHANUNAVAIL"
            ch.note("CHANUNAVAIL")
            return
        answered: asyncio.Future[SimChannel] = asyncio.get_running_loop().create_future()
        legs: list[SimChannel] = []
        for p in reachable:
            peer = sim.new_channel(
                name=f"PJSIP/{p.name}-{sim.seq_name()}",
                kind="phone",
                state="Down",
                location=DialplanLocation(
                    "from-internal", ch.snap.dialplan.exten, 1, "AppDial", "(Outgoing Line)"
                ),
                caller=Party(ch.snap.caller.name, ch.snap.caller.number),
            )
            sim.attach_phone_leg(peer, p)
            legs.append(peer)
            if p.behaviour == "answer":
                sim.spawn(self._ring_then_answer(peer, p, answered), f"ring:{peer.snap.id}")
            elif p.behaviour == "noanswer":
                sim.set_state(peer, "Ringing")
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
                ch.note("BUSY")
                for peer in legs:
                    await sim.hangup(peer, by="phone", cause=17, tech_cause=486)
                return
        except TimeoutError:
            ch.vars["DIALSTATUS"] = "NOANSWER"
            ch.note("NOANSWER")
            for peer in legs:
                await sim.hangup(peer, by="dialplan", cause=19, tech_cause=480)
            return
        finally:
            if ch.hungup:
                for peer in legs:
                    await sim.hangup(peer, by="dialplan", cause=16)
        for peer in legs:
            if peer is not winner:
                await sim.hangup(peer, by="dialplan", cause=26)
        ch.vars["DIALSTATUS"] = "ANSWER"
        ch.note(f"answered({winner.phone.endpoint if winner.phone else winner.snap.name})")
        sim.set_state(ch, "Up")
        ch.direct_peer, winner.direct_peer = winner, ch
        ended = [c.leg.ended for c in (ch, winner) if c.leg is not None]
        waiters = [sim.spawn(e.wait(), f"dial-wait:{ch.snap.id}") for e in ended]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        for c in (winner, ch):
            if not c.hungup:
                await sim.hangup(c, by="dialplan", cause=16)

    async def _answer_or_hangup(
        self, ch: SimChannel, answered: asyncio.Future[SimChannel], timeout_s: float
    ) -> SimChannel | None:
        """The answering leg; ``None`` if the caller hung up first; TimeoutError after ``timeout_s``."""
        waits: set[asyncio.Future[Any]] = {answered}
        ended = None
        if ch.leg is not None:
            ended = self.sim.spawn(ch.leg.ended.wait(), f"dial-caller:{ch.snap.id}")
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

    async def _ring_then_answer(
        self, peer: SimChannel, p: SimPhone, answered: asyncio.Future[SimChannel]
    ) -> None:
        self.sim.set_state(peer, "Ringing")
        await asyncio.sleep(p.ring_delay_s)
        if peer.hungup or answered.done():
            return
        self.sim.set_state(peer, "Up")
        answered.set_result(peer)
        await p.notify()

    # ---- VoiceMail ------------------------------------------------------------------------------

    async def _voicemail(self, ch: SimChannel, box: str) -> None:
        self.sim.set_state(ch, "Up")
        for name in ("vm-intro", "beep"):
            audio = self.sim.sounds.find(name)
            if audio is not None:
                await self.sim.player.play_to_far_end(ch, audio)
        vm = Voicemail(box.split("@")[0], ch.snap.caller.number)
        self.sim.voicemails.setdefault(vm.box, []).append(vm)
        ch.recording = vm
        if ch.leg is not None:
            await ch.leg.ended.wait()
