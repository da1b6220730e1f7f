"""Where the stand-in's audio goes: bridges (forwarded for two parties, mixed by softmix for three or
more, or with an announcer), a Dial's two legs straight through, and out to each channel's far end.

The frame rules themselves (forwarding untouched, RTP re-stamping, the mix) are ``media.py``'s;
this is the asyncio side that holds the mixer task and reads the loop clock. Bridge membership
events follow the recordings (``ChannelEnteredBridge``/``ChannelLeftBridge``, and an externalMedia
channel taking the caller's connected line).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from agent.core.frames import FRAME_S
from agent.core.rtp import SEQ_MOD
from agent.pbxsim.media import Frame, FrameSource, mix
from agent.pbxsim.model import Party, SimBridge

if TYPE_CHECKING:  # annotations only: the engine imports this module
    from agent.pbxsim.engine import PbxSim
    from agent.pbxsim.model import SimChannel


class Bridging:
    """Bridge membership, the softmix mixer and the routing of every frame, for one ``PbxSim``."""

    def __init__(self, sim: PbxSim) -> None:
        self.sim = sim

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
            self.to_far_end(ch.direct_peer, frame, resync)

    def to_far_end(
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
            ch.leg.timeline.add(self.sim.loop_time(), frame.payload)

    def _bridge_in(self, br: SimBridge, ch: SimChannel, frame: Frame, resync: bool) -> None:
        if br.mixer_task is not None:
            box = br.inbox.setdefault(ch.snap.id, deque(maxlen=4))
            box.append(frame.payload)
            return
        for other in br.members:
            if other is not ch:
                self.to_far_end(other, frame, resync)

    # ---- membership -----------------------------------------------------------------------------

    def add(self, br: SimBridge, ch: SimChannel) -> None:
        if ch.bridge is not None:
            self.remove(ch.bridge, ch)
        br.members.append(ch)
        ch.bridge = br
        self.sim.emit_channel(ch, "ChannelEnteredBridge", bridge=br.json())
        # Recorded: an externalMedia channel bridged with the caller takes the caller's identity
        # as its connected line (ChannelConnectedLine right after the second EnteredBridge).
        sip = [m for m in br.members if m.kind != "external"]
        if ch.kind == "external" and sip:
            ch.snap.connected = Party(sip[0].snap.caller.name, sip[0].snap.caller.number)
            self.sim.emit_channel(ch, "ChannelConnectedLine")
        self.update_mode(br)

    def remove(self, br: SimBridge, ch: SimChannel) -> None:
        if ch in br.members:
            br.members.remove(ch)
        br.inbox.pop(ch.snap.id, None)
        br.mix_out.pop(ch.snap.id, None)
        ch.bridge = None
        self.sim.emit_channel(ch, "ChannelLeftBridge", bridge=br.json())
        self.update_mode(br)

    def destroy(self, br: SimBridge) -> None:
        for ch in list(br.members):
            self.remove(br, ch)
        for pb in list(br.announcers):
            self.sim.player.finish_bridge_playback(br, pb)
        self.stop_mixer(br)
        self.sim.bridges.pop(br.snap.id, None)
        self.sim.emit(br.app, "BridgeDestroyed", bridge=br.json())

    # ---- the mixer ------------------------------------------------------------------------------

    def update_mode(self, br: SimBridge) -> None:
        # An announcer needs the mixer to be heard, even with a single channel in the bridge.
        if br.technology() == "softmix" or br.announcers:
            if br.mixer_task is None:
                br.mixer_task = self.sim.spawn(self._mixer(br), f"softmix:{br.snap.id}")
        else:
            self.stop_mixer(br)

    def stop_mixer(self, br: SimBridge) -> None:
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
                    self.sim.player.finish_bridge_playback(br, pb)
            out = mix(inputs)
            for m in list(br.members):
                src = br.mix_out.get(m.snap.id)
                if src is None:
                    rng = self.sim.rng
                    src = FrameSource(
                        rng.getrandbits(32), rng.randrange(SEQ_MOD), rng.getrandbits(32), local=True
                    )
                    br.mix_out[m.snap.id] = src
                self.to_far_end(m, src.next(out[m.snap.id]), resync=False)
            if br.mixer_task is None or (br.technology() != "softmix" and not br.announcers):
                if br.mixer_task is asyncio.current_task():
                    br.mixer_task = None
                return
