"""What the stand-in plays: ARI playbacks on channels and bridges, the dialplan's ``Playback``,
and music on hold.

A channel's playbacks queue and play one after another as paced 20 ms frames; while one plays, the
channel hears only it and its own audio is held back (as observed). A bridge playback joins the
bridge as an announcer that the mixer (``bridging.py``) mixes in. ``PlaybackStarted`` and
``PlaybackFinished`` follow the recordings, including a bogus scheme that starts and never
finishes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agent.core.frames import FRAME_S
from agent.core.g711 import ULAW_SILENCE
from agent.core.rtp import SEQ_MOD
from agent.pbxsim.media import FrameSource, frames_of
from agent.pbxsim.model import Playback, PlaybackSnapshot, SimBridge
from agent.pbxsim.sounds import music_on_hold

if TYPE_CHECKING:  # annotations only: the engine imports this module
    from agent.pbxsim.engine import PbxSim
    from agent.pbxsim.model import SimChannel


class Player:
    """Playbacks and hold music for one ``PbxSim``."""

    def __init__(self, sim: PbxSim) -> None:
        self.sim = sim

    def _load_media(self, media: str) -> tuple[list[bytes] | None, bool]:
        """(audio per item or None when a sound is missing, known scheme?)."""
        items: list[bytes] = []
        for uri in media.split(","):
            scheme, _, rest = uri.partition(":")
            if scheme == "sound":
                audio = self.sim.sounds.find(rest)
                if audio is None:
                    return None, True
                items.append(audio)
            elif scheme == "silence":
                items.append(bytes([ULAW_SILENCE]) * int(float(rest or "1") * 8000))
            else:
                return None, False
        return items, True

    # ---- on a channel ---------------------------------------------------------------------------

    def play_on_channel(
        self, ch: SimChannel, app: str, media: str, playback_id: str | None, lang: str
    ) -> Playback:
        pb = Playback(
            PlaybackSnapshot(
                playback_id or self.sim.uuid(), media, f"channel:{ch.snap.id}", lang or "en"
            ),
            app,
            ch,
        )
        self.sim.playbacks[pb.snap.id] = pb
        ch.playback_queue.append(pb)
        if ch.player_task is None or ch.player_task.done():
            ch.player_task = self.sim.spawn(self._channel_player(ch), f"player:{ch.snap.id}")
        return pb

    async def _channel_player(self, ch: SimChannel) -> None:
        while ch.playback_queue and not ch.hungup:
            pb = ch.playback_queue.popleft()
            await asyncio.sleep(0)  # the 201 response goes out before PlaybackStarted
            if pb.stopped.is_set():
                continue
            items, known = self._load_media(pb.snap.media_uri)
            pb.snap.state = "playing"
            self.sim.emit(pb.app, "PlaybackStarted", playback=pb.snap.to_json())
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
        rng = self.sim.rng
        loop = asyncio.get_running_loop()
        src = FrameSource(rng.getrandbits(32), rng.randrange(SEQ_MOD), rng.getrandbits(32), True)
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
                self.sim.bridging.to_far_end(ch, src.next(payload), resync=False, prompt=True)
        # Let the last frame's 20 ms elapse before reporting the end.
        delay = start + n * FRAME_S - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _finish_playback(self, pb: Playback, state: str) -> None:
        pb.snap.state = state
        self._forget_playback(pb)
        self.sim.emit(pb.app, "PlaybackFinished", playback=pb.snap.to_json())

    def _forget_playback(self, pb: Playback) -> None:
        if self.sim.playbacks.get(pb.snap.id) is pb:
            del self.sim.playbacks[pb.snap.id]

    # ---- on a bridge ----------------------------------------------------------------------------

    def play_on_bridge(
        self, br: SimBridge, app: str, media: str, playback_id: str | None, lang: str
    ) -> Playback:
        pb = Playback(
            PlaybackSnapshot(
                playback_id or self.sim.uuid(), media, f"bridge:{br.snap.id}", lang or "en"
            ),
            app,
            br,
        )
        self.sim.playbacks[pb.snap.id] = pb
        self.sim.spawn(self._start_bridge_playback(br, pb), f"bridge-play:{pb.snap.id}")
        return pb

    async def _start_bridge_playback(self, br: SimBridge, pb: Playback) -> None:
        await asyncio.sleep(0)
        items, known = self._load_media(pb.snap.media_uri)
        pb.snap.state = "playing"
        self.sim.emit(pb.app, "PlaybackStarted", playback=pb.snap.to_json())
        if items is None:
            if known:
                self._finish_playback(pb, "failed")
            return
        for audio in items:
            pb.frames.extend(frames_of(audio))
        # The announcer joins the bridge as a participant: softmix mixes it in, so a bridge
        # playback does not interrupt the caller's audio toward the agent (as observed).
        br.announcers.append(pb)
        self.sim.bridging.update_mode(br)

    def finish_bridge_playback(self, br: SimBridge, pb: Playback) -> None:
        """The announcer has played its last frame (or the bridge is going): it leaves."""
        if pb in br.announcers:
            br.announcers.remove(pb)
            self._finish_playback(pb, "done")

    def stop_playback(self, pb: Playback) -> None:
        target = pb.target
        if isinstance(target, SimBridge):
            pb.frames.clear()
            if pb in target.announcers:
                self.finish_bridge_playback(target, pb)
                self.sim.bridging.update_mode(target)
            return
        if pb in target.playback_queue:
            target.playback_queue.remove(pb)
            self._forget_playback(pb)
            return
        # The player notices and reports PlaybackFinished itself.
        pb.stopped.set()

    # ---- the dialplan's Playback ----------------------------------------------------------------

    async def play_to_far_end(self, ch: SimChannel, audio: bytes) -> None:
        """Dialplan ``Playback``: paced frames to the channel's far end."""
        rng = self.sim.rng
        loop = asyncio.get_running_loop()
        src = FrameSource(rng.getrandbits(32), rng.randrange(SEQ_MOD), 0, local=True)
        start = loop.time()
        for i, payload in enumerate(frames_of(audio)):
            if ch.hungup:
                return
            delay = start + i * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sim.bridging.to_far_end(ch, src.next(payload), resync=False)

    # ---- music on hold --------------------------------------------------------------------------

    def start_moh(self, ch: SimChannel) -> None:
        if ch.moh_task is None:
            ch.moh_task = self.sim.spawn(self._moh(ch), f"moh:{ch.snap.id}")

    def stop_moh(self, ch: SimChannel) -> None:
        if ch.moh_task is not None:
            ch.moh_task.cancel()
            ch.moh_task = None

    async def _moh(self, ch: SimChannel) -> None:
        rng = self.sim.rng
        loop = asyncio.get_running_loop()
        audio = music_on_hold(2.0)
        src = FrameSource(rng.getrandbits(32), rng.randrange(SEQ_MOD), 0, local=True)
        start = loop.time()
        n = 0
        while not ch.hungup:
            for payload in frames_of(audio):
                delay = start + n * FRAME_S - loop.time()
                n += 1
                if delay > 0:
                    await asyncio.sleep(delay)
                self.sim.bridging.to_far_end(ch, src.next(payload), resync=False, prompt=True)
