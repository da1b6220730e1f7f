"""Putting a caller through to a clinician's or the front desk's phone.

    caller ──┐ call's bridge ┌── our media leg          (before)
             └───────────────┘
    clinician leg ──┐ briefing bridge ┌── second media leg: the summary is read to the clinician
                    └─────────────────┘
    caller ──┐ call's bridge ┌── clinician leg          (after: our media leg has left)

Each target of a ``Transfer`` is tried in turn: an endpoint ARI reports offline is skipped
without ringing; a leg is created and dialled, and the first to answer is briefed (warm transfer:
the clinician hears who is calling and why before the patient joins) and bridged to the caller.
While they talk the call only watches: when either side hangs up the other is hung up too. The
ARI events of each leg reach this object through ``route``, fed by the call's event pump.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import datetime

from agent.adapters.ari.client import AriClient
from agent.adapters.ari.models import (
    Channel,
    ChannelDestroyed,
    ChannelHangupRequest,
    ChannelStateChange,
    Dial,
    Event,
    StasisEnd,
)
from agent.adapters.media import PortPool, RtpSession
from agent.config import Config
from agent.core.dialog.commands import Transfer, TransferEnded
from agent.errors import AriError
from agent.log import get_logger
from agent.runtime.engines import Prompts
from agent.runtime.fallback import OUR_CHANNEL_PREFIX
from agent.runtime.hooks import CallObserver

log = get_logger(__name__)


class Transfers:
    def __init__(
        self,
        *,
        call_id: str,
        caller_channel_id: str,
        ari: AriClient,
        cfg: Config,
        ports: PortPool,
        prompts: Prompts,
        observer: CallObserver,
        clock: Callable[[], datetime],
        follow_channel: Callable[[str], None],
        check: Callable[[], None],
        stop: asyncio.Event,
        caller_gone: asyncio.Event,
    ) -> None:
        self.call_id = call_id
        self.caller_channel_id = caller_channel_id
        self.ari = ari
        self.cfg = cfg
        self.ports = ports
        self.prompts = prompts
        self.observer = observer
        self.clock = clock
        self._follow_channel = follow_channel
        self._check = check
        self._stop = stop
        self._caller_gone = caller_gone
        self.legs: set[str] = set()
        """Every leg this call created (hung up at the end, except the one bridged)."""
        self.bridged_to: str | None = None
        self._leg_queues: dict[str, asyncio.Queue[Event]] = {}

    def route(self, ev: Event, channel_ids: tuple[str, ...]) -> None:
        """An ARI event of the call: hand it to the leg waiting on it, if any."""
        for leg_id, queue in list(self._leg_queues.items()):
            if leg_id in channel_ids:
                queue.put_nowait(ev)

    @property
    def briefing_channel_id(self) -> str:
        return f"{OUR_CHANNEL_PREFIX}em2-{self.call_id}"

    async def transfer(
        self, cmd: Transfer, *, bridge_id: str, media_channel_id: str
    ) -> TransferEnded:
        status = "failed"
        target = ""
        for target in cmd.targets:
            status = await self._try_target(target, cmd, bridge_id, media_channel_id)
            self.observer.transfer(self.call_id, target, status)
            log.info("transfer attempt", target=target, status=status, reason=cmd.reason)
            if status == "answered":
                break
        return TransferEnded(self.clock(), status, target)  # type: ignore[arg-type]

    async def _endpoint_offline(self, target: str) -> bool:
        tech, _, resource = target.partition("/")
        if not resource:
            return False
        try:
            endpoint = await self.ari.get_endpoint(tech, resource)
        except AriError:
            return False  # unknown to ARI's endpoint list (a Local channel, a ring group): dial
        return endpoint.state == "offline"

    async def _try_target(
        self, target: str, cmd: Transfer, bridge_id: str, media_channel_id: str
    ) -> str:
        if await self._endpoint_offline(target):
            return "unavailable"
        leg_id = f"{OUR_CHANNEL_PREFIX}leg-{uuid.uuid4().hex[:12]}"
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._leg_queues[leg_id] = queue
        self._follow_channel(leg_id)
        self.legs.add(leg_id)
        try:
            try:
                await self.ari.create_channel_ready(
                    target, app_args="medagent-leg", channel_id=leg_id
                )
                await self.ari.dial(
                    leg_id, caller=self.caller_channel_id, timeout=cmd.ring_timeout_s
                )
            except AriError as exc:
                log.warning("transfer leg could not be created", target=target, error=str(exc))
                return "unavailable"
            status = await self._wait_answer(queue, cmd.ring_timeout_s + 5)
            if status != "answered":
                with contextlib.suppress(AriError):
                    await self.ari.hangup(leg_id)
                return status
            if cmd.summary:
                await self._brief_clinician(leg_id, cmd.summary)
            await self._bridge(leg_id, bridge_id, media_channel_id)
            return "answered"
        finally:
            self._leg_queues.pop(leg_id, None)

    async def _wait_answer(self, queue: asyncio.Queue[Event], timeout_s: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self._check()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return "no_answer"
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands in
                # the same loop cycle as a queued item, and the call would never end.
                async with asyncio.timeout(min(remaining, 0.5)):
                    ev = await queue.get()
            except TimeoutError:
                continue
            match ev:
                case Dial(dialstatus="ANSWER") | ChannelStateChange(channel=Channel(state="Up")):
                    return "answered"
                case Dial(dialstatus="BUSY"):
                    return "busy"
                case Dial(dialstatus="NOANSWER"):
                    return "no_answer"
                case ChannelHangupRequest() | ChannelDestroyed() | StasisEnd():
                    cause = getattr(ev, "cause", None)
                    return {17: "busy", 19: "no_answer", 18: "no_answer"}.get(
                        cause or 0, "no_answer"
                    )

    async def _brief_clinician(self, leg_id: str, summary: str) -> None:
        """Warm transfer: the clinician hears who is calling and why before the patient joins."""
        frames = await self.prompts.render(summary)
        media = await RtpSession.open(self.cfg.media, self.ports, f"{self.call_id}-brief")
        bridge_id = f"{OUR_CHANNEL_PREFIX}brief-{self.call_id}"
        em_id = self.briefing_channel_id
        self._follow_channel(em_id)
        try:
            host = self.cfg.media.advertise_host or self.cfg.media.bind_host
            em = await self.ari.external_media_ready(
                None, f"{host}:{media.local_port}", channel_id=em_id
            )
            media.set_remote(
                em.channelvars.get("UNICASTRTP_LOCAL_ADDRESS", "127.0.0.1"),
                int(em.channelvars.get("UNICASTRTP_LOCAL_PORT", "0")),
            )
            await self.ari.create_bridge("mixing", bridge_id=bridge_id)
            await self.ari.add_channel(bridge_id, [leg_id, em_id])
            self.observer.said(self.call_id, summary)
            async with asyncio.timeout(60):
                await media.play(frames, "clinician-summary")
        finally:
            await media.close()
            for cleanup in (self.ari.hangup(em_id), self.ari.destroy_bridge(bridge_id)):
                with contextlib.suppress(AriError):
                    await cleanup

    async def _bridge(self, leg_id: str, bridge_id: str, media_channel_id: str) -> None:
        """Caller and clinician in the call's bridge; our media leg leaves it."""
        await self.ari.add_channel(bridge_id, [leg_id])
        with contextlib.suppress(AriError):
            await self.ari.remove_channel(bridge_id, [media_channel_id])
        self.bridged_to = leg_id

    async def stay_bridged(self) -> None:
        """Caller and clinician talk; when either hangs up, hang up the other."""
        leg = self.bridged_to
        if leg is None:
            return
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._leg_queues[leg] = queue
        gone = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
                if gone in done:
                    getter.cancel()
                    if not self._caller_gone.is_set():
                        # Our event pump died: caller and clinician are still talking. Leave
                        # them be (and the bridge to Asterisk) rather than cut them off.
                        log.error("call events lost while bridged; the bridge is left as it is")
                        return
                    with contextlib.suppress(AriError):
                        await self.ari.hangup(leg)
                    return
                ev = getter.result()
                if isinstance(ev, StasisEnd | ChannelHangupRequest | ChannelDestroyed):
                    with contextlib.suppress(AriError):
                        await self.ari.hangup(self.caller_channel_id)
                    return
        finally:
            gone.cancel()

    async def hang_up_unbridged_legs(self) -> None:
        for leg in self.legs - ({self.bridged_to} if self.bridged_to else set()):
            with contextlib.suppress(AriError):
                await self.ari.hangup(leg)
