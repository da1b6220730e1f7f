"""One call, one task: answer, connect media, run the dialog, carry out its commands, clean up.

    caller channel ──┐ mixing bridge ┌── externalMedia channel ⇄ RTP ⇄ RtpSession (our UDP port)
                     └───────────────┘                                 │            ▲
                                             frames → VAD → segmenter → STT → NLU → dialog → Say

The dialog (``core/dialog``) decides; this module only does what it is told, with ARI, RTP and the
engines, and feeds back what happened. Three helper tasks belong to the call and die with it: the
ARI event pump (DTMF, hangup, transfer legs), the media pump (frames → utterances, barge-in) and, per
prompt, playback. A crash anywhere in the call never leaves dead air: the caller hears an apology
and is continued in the dialplan fallback (front desk / voicemail), and the crash is logged with the
call id. Whatever happens, ``_teardown`` releases the port, the bridge and the externalMedia channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.adapters.ari.client import AriClient, CallEvents
from agent.adapters.ari.models import (
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelStateChange,
    Dial,
    Event,
    StasisEnd,
)
from agent.adapters.media import PortPool, RtpSession
from agent.config import Config, office_hours, segmenter_settings
from agent.core import g711
from agent.core.dialog.commands import (
    BookSlot,
    CallerHungUp,
    CallStarted,
    CancelAppointment,
    Command,
    DtmfReceived,
    FindSlots,
    HandBack,
    Hangup,
    Heard,
    ListAppointments,
    Listen,
    LookupPatient,
    NothingHeard,
    RescheduleAppointment,
    SaveRecord,
    Say,
    Transfer,
    TransferEnded,
)
from agent.core.dialog.commands import Event as DialogEvent
from agent.core.dialog.machine import Dialog, DialogSettings, ProviderInfo, State
from agent.core.frames import FRAME_S
from agent.core.jitter import JitterFrame
from agent.core.office import hours_sentence, is_office_open
from agent.core.segmenter import BargeIn, Segmenter, SilenceBegan, SpeechResumed, UtteranceEnded
from agent.core.understanding import Understanding, other_hypotheses, worth_a_second_listen
from agent.errors import AriError, AriNotFound
from agent.log import get_logger
from agent.runtime.engines import Engines, SpeechResult
from agent.runtime.fallback import OUR_CHANNEL_PREFIX, hand_to_fallback
from agent.runtime.hooks import CallObserver, Records
from agent.runtime.practice_data import CallServices, demo_services

log = get_logger(__name__)

STREAM_GAP_S = 0.2
"""No inbound frame for this long: the stream paused; count the gap as silence."""


class CallerGone(Exception):
    """The caller hung up (or left Stasis): stop everything, keep what they said."""


class HelperFailed(Exception):
    """One of the call's own tasks (media pump, event pump…) died: a crash, not a hang-up."""


class MediaLost(Exception):
    """Our externalMedia channel disappeared under us."""


@dataclass(frozen=True)
class _Dtmf:
    digit: str


@dataclass(frozen=True)
class _Utterance:
    pcm16: bytes
    duration_ms: int
    ended_at: float
    """Loop time the segmenter saw the end of the utterance."""
    early: asyncio.Task[Understanding | None] | None = None
    """The speculative hearing started when the caller fell silent (same words, less the
    trailing silence), when it was still valid at the end of the utterance."""


Inbox = asyncio.Queue[_Dtmf | _Utterance]


def dialog_settings(cfg: Config) -> DialogSettings:
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
        self.dialog = Dialog(dialog_settings(cfg))
        self.outcome = "unknown"
        """How the call ended: ``caller_hangup``, ``agent_hangup``, ``handed_back:<reason>``,
        ``transferred``, ``crashed``, ``cancelled``."""
        self.media: RtpSession | None = None
        self.bridge_id: str | None = None
        self.em_channel_id: str | None = None
        self._events: CallEvents | None = None
        self._inbox: Inbox = asyncio.Queue()
        self._helpers: set[asyncio.Task[Any]] = set()
        self._segmenter = Segmenter(segmenter_settings(cfg.vad), audio_format="pcm16")
        self._vad = engines.make_vad()
        self._speaking_interruptible = True
        self._caller_gone = asyncio.Event()
        self._stop = asyncio.Event()
        """Wakes every wait of the call: the caller hung up, or one of its tasks failed."""
        self._failure: HelperFailed | None = None
        self._leg_queues: dict[str, asyncio.Queue[Event]] = {}
        self._handed_back = False
        self._bridged_to: str | None = None
        self._transfer_legs: set[str] = set()
        self._reply_due_since: float | None = None
        self._early: tuple[int, asyncio.Task[Understanding | None]] | None = None
        self._listening = Listen()
        """What the dialog last asked to listen for (the speculative pass hears with it)."""

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
        assert self._events is not None
        self._events.follow_channel(em_id)
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
        self._events.follow_bridge(bridge.id)
        self._check_caller()
        await self.ari.answer(self.channel.id)
        await self.ari.add_channel(bridge.id, [self.channel.id, em_id])
        self._start_helper(self._pump_media(self.media), "media")

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
            await self._stay_bridged()
            return None
        raise RuntimeError(
            f"dialog returned no command to wait on in state {self.dialog.state.value}"
        )

    async def _say(self, cmd: Say) -> None:
        assert self.media is not None
        frames = self._prompt_frames(cmd.prompt_key) if cmd.prompt_key else None
        if frames is None:
            frames = await self.engines.prompts.render(cmd.text)
        self.observer.said(self.call_id, cmd.text)
        await self.records.turn(self.call_id, speaker="agent", text=cmd.text, at=self.clock())
        if self._reply_due_since is not None:
            # The reply's first frame goes out within one 20 ms slot of being queued.
            self.observer.turn_latency(
                self.call_id, asyncio.get_running_loop().time() - self._reply_due_since
            )
            self._reply_due_since = None
        self._speaking_interruptible = cmd.barge_in
        self._segmenter.set_agent_speaking(True)
        try:
            played = await self._unless_caller_gone(
                self.media.play(frames, cmd.prompt_key or "say")
            )
        finally:
            self._segmenter.set_agent_speaking(False)
            self._speaking_interruptible = True
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

    def _prompt_frames(self, key: str) -> list[bytes] | None:
        try:
            return self.engines.prompts.get(key)
        except KeyError:
            return None

    async def _listen(self, cmd: Listen) -> DialogEvent:
        self._listening = cmd
        self._segmenter.expect_short_answer(cmd.expect != "open")
        self.observer.listening(self.call_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cmd.timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 and not self._segmenter.in_utterance:
                return NothingHeard(self.clock())
            try:
                item = await self._next_input(max(remaining, 0.5))
            except TimeoutError:
                if self._segmenter.in_utterance:
                    continue  # the caller is mid-sentence: let them finish
                return NothingHeard(self.clock())
            if isinstance(item, _Dtmf):
                return DtmfReceived(self.clock(), item.digit)
            stt_started = loop.time()
            understanding = await self._words_of(item, cmd)
            self.observer.stt_time(self.call_id, loop.time() - stt_started)
            self._reply_due_since = item.ended_at
            if understanding is None:
                continue  # noise, a cough: no words; keep listening within the same timeout
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
            return Heard(self.clock(), understanding)

    def _second_listen_due(
        self, cmd: Listen, speech: SpeechResult, u: Understanding | None
    ) -> bool:
        return (
            self.engines.second_stt is not None
            and cmd.expect == "open"
            and not cmd.detail
            and worth_a_second_listen(u, self.cfg.nlu.min_confidence, unclear=speech.unclear)
        )

    async def _hear(
        self, pcm16: bytes, cmd: Listen, *, silent_since: float | None = None
    ) -> Understanding | None:
        """What the caller said in ``pcm16``, understood: the first recogniser, then the second
        when the turn calls for it (``None``: no words).

        Run as the speculative pass when the caller falls silent (``silent_since``: that loop
        time), so a second listen mostly happens during the end-of-turn silence. It waits for half
        of that silence first: the first pass is cheap, but a second one spent on a pause
        mid-sentence costs a larger model's time on a 2-core box."""
        speech = await self.engines.stt.transcribe(pcm16, short_answer=cmd.expect != "open")
        understanding = None
        if speech.text:
            understanding = self.engines.nlu.understand(
                speech.text, now=self.clock(), expect=cmd.expect, alternatives=speech.alternatives
            )
        if self._second_listen_due(cmd, speech, understanding):
            if silent_since is not None:
                loop = asyncio.get_running_loop()
                settle_s = self.cfg.vad.end_silence_ms / 2000
                await asyncio.sleep(max(0.0, silent_since + settle_s - loop.time()))
            understanding = await self._listen_again(pcm16, speech, understanding, cmd)
        return understanding

    async def _listen_again(
        self,
        pcm16: bytes,
        first: SpeechResult,
        understanding: Understanding | None,
        cmd: Listen,
    ) -> Understanding | None:
        """The larger recogniser hears the turn again. Its words are the ones acted on (it hears
        better); triage reads both hearings. Any failure leaves the first hearing as it was."""
        assert self.engines.second_stt is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            again = await self.engines.second_stt.transcribe(pcm16)
        except Exception as exc:  # the screening question still follows a symptom turn
            log.warning("second listen failed", error=type(exc).__name__)
            return understanding
        self.observer.second_listen(self.call_id, loop.time() - started)
        if not again.text:
            return understanding
        merged = self.engines.nlu.understand(
            again.text,
            now=self.clock(),
            expect=cmd.expect,
            alternatives=other_hypotheses(
                again.text, again.alternatives, (first.text,), first.alternatives
            ),
        )
        if understanding is None or merged.urgency != understanding.urgency:
            log.info(
                "second listen changed what was heard",
                was=understanding.urgency if understanding else "nothing",
                urgency=merged.urgency,
                red_flags=[f.rule_id for f in merged.red_flags],
            )
        return merged

    async def _words_of(self, item: _Utterance, cmd: Listen) -> Understanding | None:
        if item.early is not None:
            try:
                return await item.early
            except Exception as exc:  # the speculative pass failed: do the normal one
                log.warning("speculative transcription failed", error=type(exc).__name__)
        return await self._hear(item.pcm16, cmd)

    def _start_early_pass(self, ev: SilenceBegan) -> None:
        """The caller went quiet: hear what they said so far now, while the end-of-utterance
        silence runs (~0.35-0.6 s saved per turn). Cancelled if they go on speaking."""
        self._cancel_early_pass()
        task = asyncio.get_running_loop().create_task(
            self._hear(ev.audio, self._listening, silent_since=asyncio.get_running_loop().time()),
            name=f"call:{self.channel.id}:early-stt",
        )
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)
        # Retrieve a failure even when nobody awaits the task (the call ended first).
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._early = (ev.utterance_id, task)

    def _cancel_early_pass(self) -> None:
        if self._early is not None:
            self._early[1].cancel()
            self._early = None

    def _take_early_pass(self, utterance_id: int) -> asyncio.Task[Understanding | None] | None:
        early, self._early = self._early, None
        if early is None:
            return None
        if early[0] != utterance_id:
            early[1].cancel()
            return None
        return early[1]

    async def _next_input(self, timeout_s: float) -> _Dtmf | _Utterance:
        getter = asyncio.ensure_future(self._inbox.get())
        gone = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, gone}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done:
            return getter.result()
        if gone in done:
            self._check_caller()
        raise TimeoutError

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
        ids = set(self._transfer_legs)
        if self.em_channel_id is not None:
            ids.add(self.em_channel_id)
        ids.add(f"{OUR_CHANNEL_PREFIX}em2-{self.call_id}")
        return ids

    async def hand_back_now(self, reason: str) -> None:
        """From outside the call (shutdown): hand the caller back unless they are gone or bridged."""
        if self._caller_gone.is_set() or self._handed_back or self._bridged_to is not None:
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
    # Transfers

    async def _transfer(self, cmd: Transfer) -> DialogEvent:
        status = "failed"
        target = ""
        for target in cmd.targets:
            status = await self._try_target(target, cmd)
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
            return (
                False  # unknown to ARI's endpoint list (a Local channel, a ring group): just dial
            )
        return endpoint.state == "offline"

    async def _try_target(self, target: str, cmd: Transfer) -> str:
        if await self._endpoint_offline(target):
            return "unavailable"
        leg_id = f"{OUR_CHANNEL_PREFIX}leg-{uuid.uuid4().hex[:12]}"
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._leg_queues[leg_id] = queue
        assert self._events is not None
        self._events.follow_channel(leg_id)
        self._transfer_legs.add(leg_id)
        try:
            try:
                await self.ari.create_channel(target, app_args="medagent-leg", channel_id=leg_id)
                await self.ari.dial(leg_id, caller=self.channel.id, timeout=cmd.ring_timeout_s)
            except AriError as exc:
                log.warning("transfer leg could not be created", target=target, error=str(exc))
                return "unavailable"
            status = await self._wait_answer(leg_id, queue, cmd.ring_timeout_s + 5)
            if status != "answered":
                with contextlib.suppress(AriError):
                    await self.ari.hangup(leg_id)
                return status
            if cmd.summary:
                await self._brief_clinician(leg_id, cmd.summary)
            await self._bridge_to(leg_id)
            return "answered"
        finally:
            self._leg_queues.pop(leg_id, None)

    async def _wait_answer(self, leg_id: str, queue: asyncio.Queue[Event], timeout_s: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self._check_caller()
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
        frames = await self.engines.prompts.render(summary)
        media = await RtpSession.open(self.cfg.media, self.ports, f"{self.call_id}-brief")
        bridge_id = f"{OUR_CHANNEL_PREFIX}brief-{self.call_id}"
        em_id = f"{OUR_CHANNEL_PREFIX}em2-{self.call_id}"
        assert self._events is not None
        self._events.follow_channel(em_id)
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

    async def _bridge_to(self, leg_id: str) -> None:
        """Caller and clinician in our bridge; our media leg leaves it."""
        assert self.bridge_id is not None and self.em_channel_id is not None
        await self.ari.add_channel(self.bridge_id, [leg_id])
        with contextlib.suppress(AriError):
            await self.ari.remove_channel(self.bridge_id, [self.em_channel_id])
        self._bridged_to = leg_id
        self.outcome = "transferred"

    async def _stay_bridged(self) -> None:
        """Caller and clinician talk; when either hangs up, hang up the other."""
        leg = self._bridged_to
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
                        await self.ari.hangup(self.channel.id)
                    return
        finally:
            gone.cancel()

    # ------------------------------------------------------------------------------------------
    # Pumps (helper tasks owned by the call)

    def _start_helper(self, coro: Any, role: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"call:{self.channel.id}:{role}")
        self._helpers.add(task)
        task.add_done_callback(self._helper_done)

    def _helper_done(self, task: asyncio.Task[Any]) -> None:
        self._helpers.discard(task)
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
                        self._inbox.put_nowait(_Dtmf(ev.digit))
                    case StasisEnd() | ChannelHangupRequest() | ChannelDestroyed():
                        if not self._caller_gone.is_set():
                            log.info("caller left", ari_event=type(ev).__name__)
                        self._caller_gone.set()
                        self._stop.set()
            for leg_id, queue in list(self._leg_queues.items()):
                if leg_id in ids:
                    queue.put_nowait(ev)
            if self.em_channel_id in ids and isinstance(ev, StasisEnd | ChannelDestroyed):
                if (
                    self._bridged_to is None
                    and not self._caller_gone.is_set()
                    and not self._handed_back
                ):
                    log.warning("externalMedia channel ended under the call")

    async def _pump_media(self, media: RtpSession) -> None:
        # A queue between the session's frame iterator and the timed wait below: cancelling a
        # pending ``anext`` of an async generator would finish the generator.
        queue: asyncio.Queue[JitterFrame | None] = asyncio.Queue()

        async def forward() -> None:
            async for f in media.frames():
                queue.put_nowait(f)
            queue.put_nowait(None)

        self._start_helper(forward(), "frames")
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            try:
                async with asyncio.timeout(STREAM_GAP_S):  # not wait_for: see _wait_answer
                    frame = await queue.get()
            except TimeoutError:
                frame = None
            else:
                if frame is None:
                    return
            now = loop.time()
            if frame is None:
                # The caller's side stopped sending RTP (some phones and bridges send nothing during
                # silence): media time still passes, so an utterance in progress can end.
                missing = int((now - last) / FRAME_S)
                events: list[Any] = []
                for _ in range(missing):
                    events += self._segmenter.lost(20)
                last += missing * FRAME_S
            else:
                last = now
                events = self._segment(frame)
            for ev in events:
                if isinstance(ev, SilenceBegan):
                    self._start_early_pass(ev)
                elif isinstance(ev, SpeechResumed):
                    self._cancel_early_pass()
                elif isinstance(ev, UtteranceEnded):
                    early = self._take_early_pass(ev.utterance_id) if ev.reason == "end" else None
                    if early is None:
                        self._cancel_early_pass()
                    self._inbox.put_nowait(_Utterance(ev.audio, ev.duration_ms, loop.time(), early))
                elif isinstance(ev, BargeIn) and self._speaking_interruptible:
                    cut = media.flush()
                    if cut:
                        log.info("barge-in: prompt cut", prompts=len(cut))

    def _segment(self, frame: JitterFrame) -> list[Any]:
        if frame.lost:
            return self._segmenter.lost(20)
        pcm = g711.ulaw_decode(frame.payload).tobytes()
        return self._segmenter.process(pcm, self._vad.is_speech(pcm), 20)

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
        for task in list(self._helpers):
            task.cancel()
        if self._helpers:
            await asyncio.wait(set(self._helpers), timeout=5)
        if self.media is not None:
            await self.media.close()
            self.observer.media_stats(self.call_id, self.media.stats)
        for leg in self._transfer_legs - ({self._bridged_to} if self._bridged_to else set()):
            with contextlib.suppress(AriError):
                await self.ari.hangup(leg)
        if self.em_channel_id is not None:
            with contextlib.suppress(AriError):
                await self.ari.hangup(self.em_channel_id)
        if self.bridge_id is not None and self._bridged_to is None:
            with contextlib.suppress(AriError):
                await self.ari.destroy_bridge(self.bridge_id)
        elif self.bridge_id is not None and self._caller_gone.is_set():
            # Bridged call over: both parties are gone by now.
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
