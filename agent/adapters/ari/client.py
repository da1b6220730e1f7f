"""Our asyncio client for Asterisk's REST Interface: REST over httpx, events over one websocket.

Why our own: see ``DEPENDENCIES.md`` next to this file (ari-py does not import on Python 3, aioari is
dead, ari-client freezes the loop when the websocket drops).

Shape::

    async with AriClient(cfg.ari) as ari:                 # starts the events task
        events = ari.subscribe()                          # every event + Connected/Disconnected
        async for ev in events:
            match ev:
                case Connected(reconnect=True): reconcile(await ari.list_channels())
                case StasisStart(channel=ch): start_call(ch)

    # in the call's task
    with ari.channel_events(channel_id) as call_events:  # only this call's events
        em = await ari.external_media_ready(None, "127.0.0.1:40000")
        call_events.follow_channel(em.id)
        ...

:class:`AriClient` is put together from one module per concern:

- ``rest.py``: the HTTP request layer and ARI's errors mapped to ``agent.errors``;
  ``channels.py``, ``bridges.py`` (with playbacks), ``applications.py``: the resource operations,
  which the client inherits;
- ``events.py``: the events websocket (reconnect with backoff, wrong credentials, bad frames);
- ``routing.py``: the bounded streams of subscribers and of each call (:class:`CallEvents`).

What lives here is what needs both halves: the one-shot waiters (:meth:`AriClient.expect`), and
**the externalMedia race**: Asterisk answers ``POST /channels/externalMedia`` *before* the new
channel's ``StasisStart``; ``addChannel`` in between gets 422. :meth:`AriClient.external_media_ready`
registers for that ``StasisStart`` before sending the request and returns once it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping

from agent.adapters.ari.applications import ApplicationOperations
from agent.adapters.ari.bridges import BridgeOperations
from agent.adapters.ari.channels import ChannelOperations
from agent.adapters.ari.events import EventsSocket, FrameParser, backoff_delay, events_url
from agent.adapters.ari.models import Channel, Event, StasisStart
from agent.adapters.ari.rest import basic_auth
from agent.adapters.ari.routing import DEFAULT_QUEUE_SIZE, CallEvents, EventRouter, EventStream
from agent.config import AriConfig
from agent.errors import AriError
from agent.log import get_logger

# Names other modules import from here, where they lived before the split.
__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "AriClient",
    "CallEvents",
    "EventStream",
    "backoff_delay",
    "events_url",
]

log = get_logger("agent.adapters.ari")


class AriClient(ChannelOperations, BridgeOperations, ApplicationOperations):
    """REST calls and the events websocket of one Stasis application (``cfg.app``)."""

    def __init__(
        self,
        cfg: AriConfig,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        auth_header = basic_auth(cfg.username, cfg.password)
        self._router = EventRouter(queue_size)
        self._frames = FrameParser(cfg.app)
        # The socket before the HTTP client: a bad URL raises before there is a client to close.
        self._socket = EventsSocket(
            cfg,
            auth_header,
            on_frame=self._handle_frame,
            on_signal=self._router.signal,
            on_fatal=self._router.end,
            jitter=jitter,
        )
        super().__init__(cfg, auth_header)
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []

    @property
    def bad_frames(self) -> dict[str, int]:
        """Frames dropped, by reason: ``not_json``, ``not_object``, ``too_deep``, ``invalid``."""
        return self._frames.bad_frames

    @property
    def connects(self) -> int:
        """How many times the websocket opened (1 + reconnects); for tests and metrics."""
        return self._socket.connects

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the task that owns the events websocket (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._socket.run(), name=f"ari-events:{self._cfg.app}")

    async def close(self) -> None:
        """Cancel and await the events task, end every stream, close the HTTP client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._router.end(None)
        for _predicate, future in self._waiters:
            future.cancel()
        self._waiters.clear()
        await self._http.aclose()

    async def __aenter__(self) -> AriClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._socket.connected

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Until the websocket is open. Raises the fatal error (wrong credentials) or
        ``TimeoutError``."""
        await self._socket.wait_connected(timeout_s, self._task)

    # -- event delivery ----------------------------------------------------------------------

    def subscribe(self, maxsize: int | None = None) -> EventStream:
        """Every event of the application, plus ``Connected``/``Disconnected`` signals (only
        subscribers get those, not call streams). Subscribe before :meth:`start` to see the first
        ``Connected``. After wrong credentials, iterating raises
        :class:`~agent.errors.AriUnauthorized`."""
        return self._router.subscribe(maxsize, self._socket.fatal)

    def channel_events(self, channel_id: str, maxsize: int | None = None) -> CallEvents:
        """Events of ``channel_id`` (and whatever else the stream is told to follow)."""
        return self._router.channel_events(channel_id, maxsize)

    def expect(self, predicate: Callable[[Event], bool]) -> asyncio.Future[Event]:
        """A future for the first event matching ``predicate`` from now on. Registered at once,
        so call it *before* the request whose event it waits for."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future

    async def wait_for(
        self,
        predicate: Callable[[Event], bool],
        timeout: float,  # noqa: ASYNC109  # the name the callers use; a plain helper over expect()
    ) -> Event:
        """The first event matching ``predicate`` within ``timeout`` s (``TimeoutError``)."""
        future = self.expect(predicate)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel of the caller.
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._drop_waiter(future)

    def _drop_waiter(self, future: asyncio.Future[Event]) -> None:
        self._waiters = [(p, f) for p, f in self._waiters if f is not future]

    def _handle_frame(self, frame: str | bytes) -> None:
        """One websocket message: parse, route. Bad input is logged and skipped, never raised."""
        event = self._frames.parse(frame)
        if event is not None:
            self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        if self._waiters:
            remaining = []
            for predicate, future in self._waiters:
                if future.done():
                    continue
                try:
                    matched = predicate(event)
                except Exception:
                    log.exception("ari wait_for predicate failed")
                    matched = False
                if matched:
                    future.set_result(event)
                else:
                    remaining.append((predicate, future))
            self._waiters = remaining
        self._router.route(event)

    # -- externalMedia, which needs both REST and events -------------------------------------

    async def create_channel_ready(
        self,
        endpoint: str,
        *,
        channel_id: str,
        app_args: str | None = None,
        timeout_s: float | None = None,
    ) -> Channel:
        """:meth:`create_channel`, then wait for the channel's ``StasisStart``: like the
        externalMedia channel's, it comes after the REST answer, and a ``dial`` sent before it gets
        409 "Channel not in Stasis application" (seen on the real Asterisk under load). On timeout
        the channel is hung up (best effort) and ``AriError`` raised."""
        return await self._in_stasis(
            channel_id,
            lambda: self.create_channel(endpoint, app_args=app_args, channel_id=channel_id),
            "channel",
            timeout_s,
        )

    async def external_media_ready(
        self,
        app: str | None,
        external_host: str,
        format: str = "ulaw",
        encapsulation: str | None = "rtp",
        transport: str | None = "udp",
        direction: str | None = "both",
        channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Channel:
        """:meth:`external_media`, then wait for the channel's ``StasisStart`` so that
        ``add_channel`` cannot get 422. Needs the events websocket. On timeout the channel is hung
        up (best effort) and ``AriError`` raised."""
        em_id = channel_id or f"medagent-em-{uuid.uuid4().hex[:16]}"
        return await self._in_stasis(
            em_id,
            lambda: self.external_media(
                app, external_host, format, encapsulation, transport, direction, em_id, variables
            ),
            "externalMedia channel",
            timeout_s,
        )

    async def _in_stasis(
        self,
        channel_id: str,
        create: Callable[[], Awaitable[Channel]],
        what: str,
        timeout_s: float | None,
    ) -> Channel:
        """``create()`` the channel, then wait for its ``StasisStart`` (registered before the
        request: the event may come before the REST answer is read)."""
        started = self.expect(lambda e: isinstance(e, StasisStart) and e.channel.id == channel_id)
        timeout_s = self._cfg.request_timeout_s if timeout_s is None else timeout_s
        try:
            channel = await create()
            try:
                async with asyncio.timeout(timeout_s):
                    await started
            except TimeoutError:
                with contextlib.suppress(AriError):
                    await self.hangup(channel_id)
                raise AriError(
                    f"{what} {channel_id}: no StasisStart within {timeout_s} s"
                ) from None
            return channel
        finally:
            started.cancel()
            self._drop_waiter(started)
