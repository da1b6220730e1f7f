"""The supervisor: one task per call, owned by a task set; reconnect reconciliation; capacity.

It reads the application's event stream. A ``StasisStart`` for a channel that is not one of ours
(externalMedia channels and transfer legs have ids starting with ``medagent-``) starts a
``CallSession`` in a task named ``call:<channel id>``. Above ``calls.max_concurrent`` the call is
handed straight back to the dialplan fallback (``MEDAGENT_REASON=capacity``): never queued in
silence. When the events websocket comes back after a drop, the channels still alive in Asterisk
keep their calls and the calls whose channel is gone are cancelled (cancel-and-wait). ``close`` does
the same for every call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from agent.adapters.ari.client import AriClient
from agent.adapters.ari.models import Connected, Disconnected, StasisEnd, StasisStart
from agent.adapters.media import PortPool
from agent.config import Config
from agent.engines.nlu.protocol_files import current_book
from agent.errors import AriError
from agent.log import get_logger
from agent.runtime.call import CallSession
from agent.runtime.engines import Engines
from agent.runtime.fallback import (
    OUR_CHANNEL_PREFIX,
    hand_to_fallback,
    recover_stranded,
)
from agent.runtime.hooks import CallObserver, MemoryRecords, Records
from agent.runtime.practice_data import CallServices
from agent.runtime.taskset import TaskSet

log = get_logger(__name__)

STASIS_END_GRACE_S = 5.0
"""A call whose channel left Stasis gets this long to finish its own clean-up before it is cancelled."""


class Supervisor:
    def __init__(
        self,
        cfg: Config,
        ari: AriClient,
        engines: Engines,
        *,
        records: Records | None = None,
        observer: CallObserver | None = None,
        ports: PortPool | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        keep_raw_media: bool = False,
        services: CallServices | None = None,
    ) -> None:
        self.cfg = cfg
        self.ari = ari
        self.engines = engines
        self.records: Records = records if records is not None else MemoryRecords()
        self.observer = observer
        self.ports = ports or PortPool(
            cfg.media.port_min, cfg.media.port_max, host=cfg.media.bind_host
        )
        self.clock = clock
        self.keep_raw_media = keep_raw_media
        self.services = services
        """Patient directory and schedule shared by every call (the store's); ``None``: each call
        gets fake in-memory data (stand-in tests)."""
        self.calls = TaskSet("calls")
        self.sessions: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._aux = TaskSet("supervisor")
        self.total_calls = 0
        self.fallbacks = 0

    # -- what FastAGI / health / metrics read -------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self.ari.connected

    @property
    def active_calls(self) -> int:
        return len(self.sessions)

    @property
    def max_calls(self) -> int:
        return self.cfg.calls.max_concurrent

    # -- main loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: start calls, reconcile after reconnects."""
        # The nurse-line protocols are read while the line is quiet, not by the first caller.
        warm = asyncio.get_running_loop().run_in_executor(
            None, current_book, self.cfg.practice.specialty_packs
        )
        warm.add_done_callback(lambda f: f.cancelled() or f.exception())
        with self.ari.subscribe() as stream:
            async for item in stream:
                try:
                    await self._on(item)
                except Exception as exc:  # one odd event must never stop the supervisor
                    log.error(
                        "supervisor could not handle an event",
                        item=type(item).__name__,
                        error=type(exc).__name__,
                    )

    async def _on(self, item: object) -> None:
        match item:
            case StasisStart(channel=channel, args=args):
                if channel.id.startswith(OUR_CHANNEL_PREFIX) or "medagent-leg" in args:
                    return
                if channel.id in self.sessions:
                    return
                if len(self.sessions) >= self.max_calls:
                    self._aux.start(self._over_capacity(channel.id), name=f"capacity:{channel.id}")
                    return
                self._start_call(channel)
            case StasisEnd(channel=channel):
                task = self._tasks.get(channel.id)
                if task is not None:
                    self._aux.start(self._reap(channel.id, task), name=f"reap:{channel.id}")
            case Connected(reconnect=True):
                connected_at = datetime.now(UTC)
                await self._reconcile()
                await self._recover_orphans(connected_at)
            case Connected():
                log.info("ARI connected", app=self.cfg.ari.app)
                await self._recover_orphans(datetime.now(UTC))
            case Disconnected():
                log.warning("ARI events websocket lost; calls in progress keep their media")

    def _start_call(self, channel: object) -> None:
        from agent.adapters.ari.models import Channel

        assert isinstance(channel, Channel)
        session = CallSession(
            channel=channel,
            ari=self.ari,
            cfg=self.cfg,
            engines=self.engines,
            ports=self.ports,
            records=self.records,
            observer=self.observer,
            clock=self.clock,
            keep_raw_media=self.keep_raw_media,
            services=self.services,
        )
        self.total_calls += 1
        self.sessions[channel.id] = session
        task = self.calls.start(session.run(), name=f"call:{channel.id}")
        self._tasks[channel.id] = task
        channel_id = channel.id
        task.add_done_callback(lambda _t: self._forget(channel_id))

    def _forget(self, channel_id: str) -> None:
        self.sessions.pop(channel_id, None)
        self._tasks.pop(channel_id, None)

    async def _over_capacity(self, channel_id: str) -> None:
        self.fallbacks += 1
        if self.observer is not None:
            self.observer.fallback("capacity")
        log.warning(
            "at capacity: call handed to the dialplan fallback",
            active=len(self.sessions),
            max=self.max_calls,
        )
        t = self.cfg.transfer
        try:
            # Answer first: with our dialplan the agent's leg is a Local channel the caller's Dial()
            # waits on; left unanswered, that Dial times out and rings the front desk a second time.
            with contextlib.suppress(AriError):
                await self.ari.answer(channel_id)
            await hand_to_fallback(self.ari, channel_id, t, "capacity")
        except AriError as exc:
            log.error("could not hand an over-capacity call back", error=str(exc))

    async def _reap(self, channel_id: str, task: asyncio.Task[None]) -> None:
        """The caller left Stasis: the call ends itself; cancel it if it does not."""
        done, _ = await asyncio.wait({task}, timeout=STASIS_END_GRACE_S)
        if not done:
            log.warning("call did not end after StasisEnd; cancelling", channel=channel_id)
            await self.calls.cancel(task)

    async def _reconcile(self) -> None:
        """After a reconnect: keep calls whose channel still exists, end the others."""
        try:
            alive = {c.id for c in await self.ari.list_channels()}
        except AriError as exc:
            log.error("reconcile failed; will retry on the next reconnect", error=str(exc))
            return
        gone = [cid for cid in self._tasks if cid not in alive]
        log.info(
            "reconciled calls after reconnect", kept=len(self._tasks) - len(gone), ended=len(gone)
        )
        for cid in gone:
            task = self._tasks.get(cid)
            if task is not None:
                await self.calls.cancel(task)

    async def reload(self, new: Config) -> list[str]:
        """Apply a new configuration to the calls that start from now on; calls in progress keep
        theirs. Returns the sections that changed but need a restart to take effect."""
        from agent.runtime.prompt_cache import static_prompts, static_prompts_es

        needs_restart = [
            name
            for name in ("ari", "ami", "agi", "media", "database", "stt", "tts", "vad", "logging")
            if getattr(new, name) != getattr(self.cfg, name)
        ]
        if new.practice != self.cfg.practice:
            update = getattr(self.engines.prompts, "update", None)
            if update is not None:
                await update(static_prompts(new.practice))
            update_es = getattr(self.engines.prompts_es, "update", None)
            if update_es is not None:
                await update_es(static_prompts_es(new.practice))
        self.cfg = new
        log.info("configuration reloaded", source=new.source, needs_restart=needs_restart)
        return needs_restart

    async def hand_back_all(self, reason: str) -> None:
        """Shutting down: every caller still talking to the agent goes to the dialplan fallback
        (front desk) instead of being cut off."""
        sessions = list(self.sessions.values())
        if sessions:
            log.info("handing calls back before shutdown", calls=len(sessions), reason=reason)
        await asyncio.gather(*(s.hand_back_now(reason) for s in sessions), return_exceptions=True)

    def _owned_channels(self) -> set[str]:
        owned = set(self.sessions)
        for session in self.sessions.values():
            owned |= session.owned_channel_ids()
        return owned

    async def _recover_orphans(self, connected_at: datetime) -> None:
        """Callers a previous process left in our Stasis app go to the dialplan fallback; its
        media channels and bridges are removed (see ``fallback.recover_stranded``)."""
        done = await recover_stranded(
            self.ari,
            self.cfg.ari.app,
            self.cfg.transfer,
            before=connected_at,
            owned=self._owned_channels()
            | {s.bridge_id for s in self.sessions.values() if s.bridge_id},
        )
        self.fallbacks += done.callers
        if self.observer is not None:
            for _ in range(done.callers):
                self.observer.fallback("agent_restart")

    async def close(self) -> None:
        """Cancel every call and wait for each to clean up."""
        await self.calls.close()
        await self._aux.close()
