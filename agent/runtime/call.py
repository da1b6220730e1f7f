"""One call, one task: answer, connect media, run the dialog, carry out its commands, clean up.

    caller channel ──┐ mixing bridge ┌── externalMedia channel ⇄ RTP ⇄ RtpSession (our UDP port)
                     └───────────────┘                                 │            ▲
                                             frames → VAD → segmenter → STT → NLU → dialog → Say

The dialog (``core/dialog``) decides; this module only does what it is told, with ARI, RTP and the
engines, and feeds back what happened. Turn taking (media pump, segmenter, early pass, second
listen) is ``agent.runtime.turns``; putting the caller through is ``agent.runtime.transfer``. The
call's tasks belong to its ``TaskSet`` and die with it: the ARI event pump (DTMF, hangup, transfer
legs), the media pump and the speculative hearings. A crash anywhere in the call never leaves dead
air: the caller hears an apology and is continued in the dialplan fallback (front desk /
voicemail), and the crash is logged with the call id. Whatever happens, ``_teardown`` releases the
port, the bridge and the externalMedia channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.adapters.ari.client import AriClient, CallEvents
from agent.adapters.ari.models import (
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Event,
    StasisEnd,
)
from agent.adapters.media import PortPool, RtpSession
from agent.config import Config, office_hours, segmenter_settings
from agent.core.dialog.commands import (
    BookSlot,
    CallerHungUp,
    CallStarted,
    CancelAppointment,
    Command,
    FindSlots,
    HandBack,
    Hangup,
    Heard,
    ListAppointments,
    Listen,
    LookupPatient,
    RescheduleAppointment,
    SaveRecord,
    Say,
    Transfer,
)
from agent.core.dialog.commands import Event as DialogEvent
from agent.core.dialog.machine import Dialog, DialogSettings, ProviderInfo, State
from agent.core.office import hours_sentence, is_office_open
from agent.core.segmenter import Segmenter
from agent.engines.nlu.protocol_files import current_book
from agent.errors import AriError, AriNotFound
from agent.log import get_logger
from agent.runtime.engines import Engines
from agent.runtime.fallback import OUR_CHANNEL_PREFIX, hand_to_fallback
from agent.runtime.hearing import Ears
from agent.runtime.hooks import CallObserver, Records
from agent.runtime.practice_data import CallServices, demo_services
from agent.runtime.taskset import TaskSet
from agent.runtime.transfer import Transfers
from agent.runtime.turns import TurnTaker

log = get_logger(__name__)


class CallerGone(Exception):
    """The caller hung up (or left Stasis): stop everything, keep what they said."""


class HelperFailed(Exception):
    """One of the call's own tasks (media pump, event pump…) died: a crash, not a hang-up."""


def dialog_settings(cfg: Config, *, protocols: bool = True) -> DialogSettings:
    """The dialog's settings from the configuration; ``protocols=False`` leaves the nurse-line
    protocols out (reading them the first time takes seconds: a call does it off the loop)."""
    return DialogSettings(
        greeting=cfg.practice.greeting,
        emergency_number=cfg.practice.emergency_number,
        on_call=tuple(cfg.transfer.on_call),
        front_desk=cfg.transfer.front_desk,
        ring_timeout_s=cfg.transfer.ring_timeout_s,
        min_confidence=cfg.nlu.min_confidence,
        # The hours answer comes from the configured office hours unless the practice wrote its own.
        faq={"hours": hours_sentence(cfg.practice.office_hours), **cfg.practice.faq},
        no_input_timeout_s=cfg.calls.no_input_timeout_s,
        billing=cfg.transfer.billing,
        providers=tuple(
            ProviderInfo(p.id, p.name, tuple(p.appointment_types)) for p in cfg.practice.providers
        ),
        cancellation_policy=cfg.practice.cancellation_policy,
        controlled_substances=frozenset(m.lower() for m in cfg.practice.controlled_substances),
        self_care=dict(cfg.practice.self_care),
        protocols=current_book(cfg.practice.specialty_packs) if protocols else None,
    )


class CallSession:
    def __init__(
        self,
        *,
        channel: Channel,
        ari: AriClient,
        cfg: Config,
        engines: Engines,
        ports: PortPool,
        records: Records,
        observer: CallObserver | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        keep_raw_media: bool = False,
        services: CallServices | None = None,
    ) -> None:
        self.channel = channel
        self.call_id = uuid.uuid4().hex[:12]
        self.ari = ari
        self.cfg = cfg
        self.engines = engines
        self.ports = ports
        self.records = records
        self.observer = observer or CallObserver()
        self.clock = clock
        self.keep_raw_media = keep_raw_media
        # The patient directory and schedule the dialog's data commands reach. Without one passed
        # in, clearly fake in-memory data (stand-in, tests, demo), built on first use.
        self.services = services
        self.dialog = Dialog(dialog_settings(cfg, protocols=False))
        self.outcome = "unknown"
        """How the call ended: ``caller_hangup``, ``agent_hangup``, ``handed_back:<reason>``,
        ``transferred``, ``crashed``, ``cancelled``."""
        self.media: RtpSession | None = None
        self.bridge_id: str | None = None
        self.em_channel_id: str | None = None
        self._events: CallEvents | None = None
        prefix = f"call:{channel.id}"
        self._tasks = TaskSet(prefix)
        self._caller_gone = asyncio.Event()
        self._stop = asyncio.Event()
        """Wakes every wait of the call: the caller hung up, or one of its tasks failed."""
        self._failure: HelperFailed | None = None
        self._handed_back = False
        self.turns = TurnTaker(
            call_id=self.call_id,
            task_prefix=prefix,
            ears=Ears(
                engines.stt,
                engines.nlu,
                second_stt=engines.second_stt,
                min_confidence=cfg.nlu.min_confidence,
            ),
            segmenter=Segmenter(segmenter_settings(cfg.vad), audio_format="pcm16"),
            vad=engines.make_vad(),
            observer=self.observer,
            clock=clock,
            tasks=self._tasks,
            stop=self._stop,
            check=self._check_caller,
            end_silence_ms=cfg.vad.end_silence_ms,
        )
        self.transfers = Transfers(
            call_id=self.call_id,
            caller_channel_id=channel.id,
            ari=ari,
            cfg=cfg,
            ports=ports,
            prompts=engines.prompts,
            observer=self.observer,
            clock=clock,
            follow_channel=self._follow_channel,
            check=self._check_caller,
            stop=self._stop,
            caller_gone=self._caller_gone,
        )

    # ------------------------------------------------------------------------------------------
    # Lifecycle

    async def run(self) -> None:
        with structlog.contextvars.bound_contextvars(
            call_id=self.call_id, channel_id=self.channel.id
        ):
            log.info("call started", caller_number=self.channel.caller.number)
            self.observer.call_started(self.call_id, self.channel.id)
            with self.ari.channel_events(self.channel.id) as events:
                self._events = events
                self._start_helper(self._pump_events(events), "events")
                try:
                    # The protocols in force (compiled once; the first call after start-up or a
                    # reload may wait for it in a worker thread, never the event loop).
                    book = await asyncio.to_thread(current_book, self.cfg.practice.specialty_packs)
                    self.dialog = Dialog(dataclasses.replace(self.dialog.settings, protocols=book))
                    await self.records.call_started(
                        self.call_id,
                        channel_id=self.channel.id,
                        caller_number=self.channel.caller.number,
                        at=self.clock(),
                    )
                    await self._setup()
                    await self._converse()
                except CallerGone:
                    self.outcome = "caller_hangup"
                    await self._dialog_event(CallerHungUp(self.clock()))
                except asyncio.CancelledError:
                    self.outcome = "cancelled" if self.outcome == "unknown" else self.outcome
                    raise
                except Exception as exc:
                    if await self._caller_left(exc):
                        # An ARI request on a channel that had just hung up (the StasisEnd was
                        # still on its way): a hang-up, not a crash.
                        self.outcome = "caller_hangup"
                        await self._dialog_event(CallerHungUp(self.clock()))
                    else:
                        self.outcome = "crashed"
                        log.error("call crashed", error=type(exc).__name__, exc_info=exc)
                        await self._rescue()
                finally:
                    await self._teardown_even_if_cancelled()

    async def _setup(self) -> None:
        """Media first, answer last: the caller hears the greeting within a frame of the answer."""
        cfg = self.cfg
        self.media = await RtpSession.open(
            cfg.media, self.ports, self.call_id, keep_raw=self.keep_raw_media
        )
        host = cfg.media.advertise_host or cfg.media.bind_host
        em_id = f"{OUR_CHANNEL_PREFIX}em-{self.call_id}"
        self.em_channel_id = em_id
        self._follow_channel(em_id)
        em = await self.ari.external_media_ready(
            None, f"{host}:{self.media.local_port}", format="ulaw", channel_id=em_id
        )
        rtp_host = em.channelvars.get("UNICASTRTP_LOCAL_ADDRESS")
        rtp_port = em.channelvars.get("UNICASTRTP_LOCAL_PORT")
        if not rtp_host or not rtp_port or not str(rtp_port).isdigit():
            raise AriError(f"externalMedia channel {em_id} did not say where to send RTP")
        self.media.set_remote(rtp_host, int(rtp_port))
        bridge = await self.ari.create_bridge(
            "mixing", bridge_id=f"{OUR_CHANNEL_PREFIX}br-{self.call_id}"
        )
        self.bridge_id = bridge.id
        assert self._events is not None
        self._events.follow_bridge(bridge.id)
        self._check_caller()
        await self.ari.answer(self.channel.id)
        await self.ari.add_channel(bridge.id, [self.channel.id, em_id])
        self._start_helper(self.turns.pump(self.media), "media")

    async def _converse(self) -> None:
        commands = self.dialog.handle(
            CallStarted(
                self.clock(),
                caller_number=self.channel.caller.number,
                caller_name=self.channel.caller.name,
                office_open=is_office_open(self.clock(), office_hours(self.cfg.practice)),
            )
        )
        while True:
            follow_up = await self._execute(commands)
            if follow_up is None:
                return
            commands = self.dialog.handle(follow_up)

    def _follow_channel(self, channel_id: str) -> None:
        assert self._events is not None
        self._events.follow_channel(channel_id)

    # ------------------------------------------------------------------------------------------
    # Carrying out commands

    async def _execute(self, commands: list[Command]) -> DialogEvent | None:
        """Run commands in order; return the event that answers the last one (None: call over)."""
        for cmd in commands:
            self._check_caller()
            match cmd:
                case Say():
                    await self._say(cmd)
                case SaveRecord():
                    await self._save(cmd)
                case Listen():
                    return await self._listen(cmd)
                case Transfer():
                    return await self._transfer(cmd)
                case HandBack():
                    await self._hand_back(cmd.reason)
                    return None
                case Hangup():
                    await self._hangup(cmd)
                    return None
                case (
                    LookupPatient()
                    | FindSlots()
                    | BookSlot()
                    | ListAppointments()
                    | CancelAppointment()
                    | RescheduleAppointment()
                ):
                    if self.services is None:
                        self.services = demo_services(self.cfg.practice, self.clock())
                    return await self.services.execute(
                        cmd, now=self.clock(), actor=f"agent:{self.call_id}"
                    )
        if self.dialog.state is State.ENDED:
            # The dialog ended the call with no hang-up command (a transfer was bridged).
            await self.transfers.stay_bridged()
            return None
        raise RuntimeError(
            f"dialog returned no command to wait on in state {self.dialog.state.value}"
        )

    async def _say(self, cmd: Say) -> None:
        assert self.media is not None
        if cmd.barge_in and self.turns.spoken_over():
            # A request said over the emergency line is answered, not made to wait for the rest
            # of the greeting.
            log.info("prompt skipped: the caller is speaking", prompt=cmd.prompt_key or "dynamic")
            return
        voice = self.engines.voice(cmd.lang)
        frames = self._prompt_frames(cmd.prompt_key, cmd.lang) if cmd.prompt_key else None
        if frames is None:
            frames = await voice.render(cmd.text)
        self.observer.said(self.call_id, cmd.text)
        await self.records.turn(self.call_id, speaker="agent", text=cmd.text, at=self.clock())
        if self.turns.reply_due_since is not None:
            # The reply's first frame goes out within one 20 ms slot of being queued.
            self.observer.turn_latency(
                self.call_id, asyncio.get_running_loop().time() - self.turns.reply_due_since
            )
            self.turns.reply_due_since = None
        self.turns.agent_speaking(True, interruptible=cmd.barge_in)
        try:
            played = await self._unless_caller_gone(
                self.media.play(frames, cmd.prompt_key or "say")
            )
        finally:
            self.turns.agent_speaking(False)
        if not played:
            log.info("prompt interrupted", prompt=cmd.prompt_key or "dynamic")

    async def _unless_caller_gone(self, coro: Any) -> Any:
        """Await ``coro``, but raise ``CallerGone`` as soon as the caller hangs up."""
        work = asyncio.ensure_future(coro)
        gone = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not work.done():
            work.cancel()
            await asyncio.wait({work})
            self._check_caller()
        return work.result()

    def _prompt_frames(self, key: str, lang: str = "en") -> list[bytes] | None:
        """A pre-rendered prompt in the call's voice (``es:goodbye`` is the Spanish one)."""
        try:
            return self.engines.voice(lang).get(key.removeprefix(f"{lang}:"))
        except KeyError:
            return None

    async def _listen(self, cmd: Listen) -> DialogEvent:
        event = await self.turns.listen(cmd)
        if isinstance(event, Heard):
            understanding = event.understanding
            # The words acted on (the second hearing's after a second listen) are what staff read.
            self.observer.heard(self.call_id, understanding.text)
            await self.records.turn(
                self.call_id, speaker="caller", text=understanding.text, at=self.clock()
            )
            log.info(
                "caller understood",
                intent=understanding.intent,
                confidence=round(understanding.confidence, 3),
                urgency=understanding.urgency,
                red_flags=[f.rule_id for f in understanding.red_flags],
                lang=understanding.lang,
            )
        return event

    async def _transfer(self, cmd: Transfer) -> DialogEvent:
        assert self.bridge_id is not None and self.em_channel_id is not None
        ended = await self.transfers.transfer(
            cmd, bridge_id=self.bridge_id, media_channel_id=self.em_channel_id
        )
        if ended.status == "answered":
            self.outcome = "transferred"
        return ended

    async def _save(self, cmd: SaveRecord) -> None:
        self.observer.record(self.call_id, cmd.kind, cmd.data, cmd.urgent)
        await self.records.save(
            self.call_id, kind=cmd.kind, data=cmd.data, urgent=cmd.urgent, at=self.clock()
        )
        log.info("record saved", kind=cmd.kind, urgent=cmd.urgent)

    async def _hand_back(self, reason: str) -> None:
        t = self.cfg.transfer
        await hand_to_fallback(self.ari, self.channel.id, t, reason)
        self._handed_back = True
        self.outcome = f"handed_back:{reason}"
        log.info("call handed back to the dialplan", reason=reason, context=t.fallback_context)

    def owned_channel_ids(self) -> set[str]:
        """Every channel this call created (externalMedia, transfer legs)."""
        ids = set(self.transfers.legs)
        if self.em_channel_id is not None:
            ids.add(self.em_channel_id)
        ids.add(self.transfers.briefing_channel_id)
        return ids

    async def hand_back_now(self, reason: str) -> None:
        """From outside the call (shutdown): hand the caller back unless they are gone or bridged."""
        if self._caller_gone.is_set() or self._handed_back or self.transfers.bridged_to is not None:
            return
        try:
            await self._hand_back(reason)
        except AriError as exc:
            log.error("could not hand the call back", reason=reason, error=str(exc))

    async def _hangup(self, cmd: Hangup) -> None:
        assert self.media is not None
        if cmd.drain:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self.media.drain()
        self.outcome = "agent_hangup"
        with contextlib.suppress(AriNotFound):
            await self.ari.hangup(self.channel.id)

    async def _dialog_event(self, event: DialogEvent) -> None:
        """Feed a final event (hangup) to the dialog and keep what it wants recorded."""
        try:
            commands = self.dialog.handle(event)
        except Exception as exc:
            log.error("dialog failed on final event", error=type(exc).__name__)
            return
        for cmd in commands:
            if isinstance(cmd, SaveRecord):
                await self._save(cmd)

    # ------------------------------------------------------------------------------------------
    # The call's own tasks

    def _start_helper(self, coro: Any, role: str) -> None:
        task = self._tasks.start(coro, name=f"call:{self.channel.id}:{role}")
        task.add_done_callback(self._helper_done)

    def _helper_done(self, task: asyncio.Task[Any]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is None or self._stop.is_set():
            return
        # The type only: a message may quote what the caller said.
        log.error("call helper failed", task=task.get_name(), error=type(exc).__name__)
        self._failure = HelperFailed(f"{task.get_name().rsplit(':', 1)[-1]}: {type(exc).__name__}")
        self._stop.set()  # wake the call: it goes through the rescue path

    async def _pump_events(self, events: CallEvents) -> None:
        async for ev in events:
            if not isinstance(ev, Event):
                continue
            ids = _channel_ids(ev)
            if self.channel.id in ids:
                match ev:
                    case ChannelDtmfReceived():
                        self.turns.key_pressed(ev.digit)
                    case StasisEnd() | ChannelHangupRequest() | ChannelDestroyed():
                        if not self._caller_gone.is_set():
                            log.info("caller left", ari_event=type(ev).__name__)
                        self._caller_gone.set()
                        self._stop.set()
            self.transfers.route(ev, ids)
            if self.em_channel_id in ids and isinstance(ev, StasisEnd | ChannelDestroyed):
                if (
                    self.transfers.bridged_to is None
                    and not self._caller_gone.is_set()
                    and not self._handed_back
                ):
                    log.warning("externalMedia channel ended under the call")

    # ------------------------------------------------------------------------------------------
    # Failure and cleanup

    def _check_caller(self) -> None:
        """Raise when the call must stop: ``CallerGone`` on a hang-up, ``HelperFailed`` (handled
        as a crash: apology and the front desk) when one of the call's tasks died."""
        if self._caller_gone.is_set():
            raise CallerGone
        if self._failure is not None:
            raise self._failure

    async def _caller_left(self, exc: Exception) -> bool:
        if self._caller_gone.is_set():
            return True
        if not isinstance(exc, AriError):
            return False
        try:
            await self.ari.get_channel(self.channel.id)
        except AriNotFound:
            return True
        except AriError:
            return False
        return False

    async def _rescue(self) -> None:
        """After a crash: apologise and hand the caller to staff. Never dead air."""
        if self._caller_gone.is_set() or self._handed_back:
            return
        try:
            if self.media is not None and not self.media.closed and self.media.remote is not None:
                frames = self._prompt_frames("sorry_transfer")
                if frames:
                    # Cut short when the caller hangs up meanwhile: nobody to hand on.
                    sorry = asyncio.ensure_future(self.media.play(frames, "sorry"))
                    gone = asyncio.ensure_future(self._caller_gone.wait())
                    await asyncio.wait(
                        {sorry, gone}, timeout=8, return_when=asyncio.FIRST_COMPLETED
                    )
                    gone.cancel()
                    if not sorry.done():
                        self.media.flush()
                        await asyncio.wait({sorry})
                    if self._caller_gone.is_set():
                        return
            await self._hand_back("error")
        except Exception as exc:
            log.error("could not hand the call back after a crash", error=type(exc).__name__)

    async def _teardown_even_if_cancelled(self) -> None:
        """Run the teardown to its end even when this task is cancelled meanwhile (the
        supervisor reaps a call that overstays StasisEnd): a teardown cut short leaves the call's
        bridge in Asterisk. The teardown's own steps are bounded; the cancellation is passed on
        once it is done."""
        cleanup = asyncio.ensure_future(self._teardown())
        cancelled = False
        while not cleanup.done():
            try:
                await asyncio.shield(cleanup)
            except asyncio.CancelledError:
                cancelled = True
        cleanup.result()
        if cancelled:
            raise asyncio.CancelledError

    async def _teardown(self) -> None:
        await self._tasks.close(timeout_s=5)
        if self.media is not None:
            await self.media.close()
            self.observer.media_stats(self.call_id, self.media.stats)
        await self.transfers.hang_up_unbridged_legs()
        if self.em_channel_id is not None:
            with contextlib.suppress(AriError):
                await self.ari.hangup(self.em_channel_id)
        bridged = self.transfers.bridged_to is not None
        if self.bridge_id is not None and (not bridged or self._caller_gone.is_set()):
            # A bridged call keeps its bridge until both parties are gone.
            with contextlib.suppress(AriError):
                await self.ari.destroy_bridge(self.bridge_id)
        summary = self.dialog.summary()
        try:
            await self.records.call_ended(
                self.call_id, summary=summary, outcome=self.outcome, at=self.clock()
            )
        except Exception as exc:
            log.error("could not record the end of the call", error=type(exc).__name__)
        self.observer.ended(self.call_id, self.outcome)
        log.info("call ended", outcome=self.outcome)


def _channel_ids(ev: Event) -> tuple[str, ...]:
    from agent.adapters.ari.models import channel_ids

    return channel_ids(ev)
