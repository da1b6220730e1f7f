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

Choices (also in ``DEPENDENCIES.md``):

- **Reconnect**: one task (``ari-events:<app>``) owns the websocket and reconnects with exponential
  backoff and jitter (``reconnect_initial_s`` … ``reconnect_max_s``) after any drop: a close frame,
  a transport closed without one (``core stop now`` → 1006), connection refused while Asterisk
  restarts, a 404/503 from a half-started Asterisk. Every retry path sleeps at least
  ``_MIN_RETRY_S``, so a dead server never spins the loop. After each (re)connect, subscribers get
  ``Connected(reconnect=...)``; events during the gap are lost (Asterisk does not replay them).
- **Wrong credentials** (HTTP 401/403 on the upgrade) stop the task at once: retrying cannot fix
  the config, and a clear error naming the user and URL beats a log full of retries. Subscribers'
  iteration and ``wait_connected()`` raise :class:`~agent.errors.AriUnauthorized`.
- **Slow consumers** never block the websocket reader: each subscriber/call queue is bounded and
  drops its *oldest* event when full (logged, counted in ``EventStream.dropped``). Dropping the
  oldest keeps the newest state (a ``StasisEnd`` still arrives).
- **Bad frames** (not JSON, not an object, nested too deep, fields of the wrong type) are dropped,
  counted in ``AriClient.bad_frames`` by reason and logged with the exception's type (and our own
  parser's field path, which never holds a value), never the frame or a decoder's message: frames
  carry caller names and numbers. The websocket stays up: reconnecting would lose the events of
  the gap.
- **The externalMedia race**: Asterisk answers ``POST /channels/externalMedia`` *before* the new
  channel's ``StasisStart``; ``addChannel`` in between gets 422. :meth:`AriClient.external_media_ready`
  registers for that ``StasisStart`` before sending the request and returns once it arrived.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from agent.adapters.ari.models import (
    Application,
    ApplicationReplaced,
    Bridge,
    Channel,
    Connected,
    DeviceState,
    Disconnected,
    Endpoint,
    Event,
    EventFormatError,
    Playback,
    StasisStart,
    UnknownEvent,
    bridge_ids,
    channel_ids,
    parse_event,
    parse_model,
)
from agent.config import AriConfig
from agent.errors import AriConnectionError, AriError, ari_http_error
from agent.log import get_logger

log = get_logger("agent.adapters.ari")

M = TypeVar("M")
Item = Event | Connected | Disconnected

_MIN_RETRY_S = 0.05
"""Floor for every reconnect delay, whatever the config says: the loop must never spin."""
DEFAULT_QUEUE_SIZE = 1024
"""Events a subscriber may fall behind before the oldest are dropped (a call makes ~100)."""
_MAX_UNKNOWN_TYPES = 256
"""Unmodelled event types remembered (each is logged once); the names come from the wire."""


def backoff_delay(attempt: int, initial_s: float, max_s: float, jitter: float) -> float:
    """Seconds to wait before reconnect ``attempt`` (0 = first retry). ``jitter`` in [0, 1) comes
    from the caller, so this stays pure and testable. "Equal jitter": half the step is fixed and
    half random, so agents restarted together spread out but none retries at once."""
    step = min(max_s, initial_s * 2.0 ** min(attempt, 32))
    return max(_MIN_RETRY_S, step * (0.5 + 0.5 * jitter))


def events_url(base_url: str, app: str) -> str:
    """``http://host:8088/ari`` → ``ws://host:8088/ari/events?app=<app>&subscribeAll=false``.
    Credentials go in the ``Authorization`` header, never here (URLs end up in logs)."""
    scheme, sep, rest = base_url.rstrip("/").partition("://")
    ws_scheme = {"http": "ws", "https": "wss"}.get(scheme)
    if not sep or ws_scheme is None:
        raise ValueError(f"ARI URL must start with http:// or https://, got {base_url!r}")
    query = urlencode({"app": app, "subscribeAll": "false"})
    return f"{ws_scheme}://{rest}/events?{query}"


# --------------------------------------------------------------------------------------------------
# Event queues


class _End:
    """Queue sentinel: the stream is over (``error`` None) or failed."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class EventStream:
    """A bounded queue of events for one consumer; async-iterable. Close it (or use ``with``)."""

    def __init__(self, name: str, maxsize: int, on_close: Callable[[EventStream], None]) -> None:
        self.name = name
        self.dropped = 0
        """Events dropped because this consumer fell more than ``maxsize`` behind."""
        self.maxsize = maxsize
        # Unbounded underneath: the bound is enforced in _deliver so that the end-of-stream
        # marker always fits without pushing out an event.
        self._queue: asyncio.Queue[Item | _End] = asyncio.Queue()
        self._on_close = on_close
        self._closed = False

    def _deliver(self, item: Item | _End) -> None:
        """Called by the websocket reader; never blocks."""
        if self._closed:
            return
        if not isinstance(item, _End):
            while self._queue.qsize() >= self.maxsize:
                self._queue.get_nowait()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning(
                        "ari queue full, dropped oldest event",
                        queue=self.name,
                        dropped=self.dropped,
                    )
        self._queue.put_nowait(item)

    async def get(self) -> Item:
        """The next event. Raises ``StopAsyncIteration`` after ``close()`` / client close, or the
        client's fatal error (``AriUnauthorized``)."""
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # later get() calls end the same way
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    def get_nowait(self) -> Item | None:
        """The next event if one is queued (``None`` otherwise); for tests and draining."""
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if isinstance(item, _End):
            self._queue.put_nowait(item)
            return None
        return item

    def __aiter__(self) -> AsyncIterator[Item]:
        return self

    async def __anext__(self) -> Item:
        return await self.get()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(self)
            # Wake a consumer blocked in get().
            self._queue.put_nowait(_End(None))

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_S = TypeVar("_S", bound=EventStream)


class CallEvents(EventStream):
    """The events of one call: those of the channels and bridges it follows. An event that names
    several followed channels (``Dial``: peer + caller) is delivered once."""

    def __init__(
        self,
        name: str,
        maxsize: int,
        on_close: Callable[[EventStream], None],
        on_follow: Callable[[CallEvents], None],
    ) -> None:
        super().__init__(name, maxsize, on_close)
        self.channel_ids: set[str] = set()
        self.bridge_ids: set[str] = set()
        self._on_follow = on_follow

    def follow_channel(self, channel_id: str) -> None:
        self.channel_ids.add(channel_id)
        self._on_follow(self)

    def follow_bridge(self, bridge_id: str) -> None:
        self.bridge_ids.add(bridge_id)
        self._on_follow(self)


# --------------------------------------------------------------------------------------------------
# The client


class AriClient:
    """REST calls and the events websocket of one Stasis application (``cfg.app``)."""

    def __init__(
        self,
        cfg: AriConfig,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._cfg = cfg
        self._base_url = cfg.url.rstrip("/")
        self._events_url = events_url(self._base_url, cfg.app)
        self._auth_header = "Basic " + base64.b64encode(
            f"{cfg.username}:{cfg.password}".encode()
        ).decode("ascii")
        self._http = httpx.AsyncClient(
            base_url=self._base_url + "/",
            headers={"Authorization": self._auth_header},
            timeout=cfg.request_timeout_s,
        )
        self._queue_size = queue_size
        self._jitter = jitter
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._fatal: AriError | None = None
        self._subscribers: list[EventStream] = []
        self._by_channel: dict[str, set[CallEvents]] = {}
        self._by_bridge: dict[str, set[CallEvents]] = {}
        self._calls: set[CallEvents] = set()
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []
        self._unknown_types: set[str] = set()
        self.bad_frames: dict[str, int] = {}
        """Frames dropped, by reason: ``not_json``, ``not_object``, ``too_deep``, ``invalid``."""
        self.connects = 0
        """How many times the websocket opened (1 + reconnects); for tests and metrics."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the task that owns the events websocket (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run_events(), name=f"ari-events:{self._cfg.app}")

    async def close(self) -> None:
        """Cancel and await the events task, end every stream, close the HTTP client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for stream in [*self._subscribers, *self._calls]:
            stream._deliver(_End(None))
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
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Until the websocket is open. Raises the fatal error (wrong credentials) or
        ``TimeoutError``."""
        if self._fatal is not None:
            raise self._fatal
        waiter = asyncio.ensure_future(self._connected.wait())
        task = self._task
        watch = [waiter] if task is None else [waiter, task]
        try:
            await asyncio.wait(watch, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._fatal is not None:
            raise self._fatal
        if not self._connected.is_set():
            raise TimeoutError(f"ARI events websocket not open after {timeout_s} s")

    # -- event delivery ----------------------------------------------------------------------

    def subscribe(self, maxsize: int | None = None) -> EventStream:
        """Every event of the application, plus ``Connected``/``Disconnected`` signals (only
        subscribers get those, not call streams). Subscribe before :meth:`start` to see the first
        ``Connected``."""
        stream = EventStream("subscriber", maxsize or self._queue_size, self._unsubscribe)
        self._subscribers.append(stream)
        if self._fatal is not None:
            stream._deliver(_End(self._fatal))
        return stream

    def channel_events(self, channel_id: str, maxsize: int | None = None) -> CallEvents:
        """Events of ``channel_id`` (and whatever else the stream is told to follow)."""
        stream = CallEvents(
            f"call:{channel_id}", maxsize or self._queue_size, self._unsubscribe, self._index
        )
        self._calls.add(stream)
        stream.follow_channel(channel_id)
        return stream

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

    def _unsubscribe(self, stream: EventStream) -> None:
        if stream in self._subscribers:
            self._subscribers.remove(stream)
        if isinstance(stream, CallEvents):
            self._calls.discard(stream)
            for cid in stream.channel_ids:
                self._by_channel.get(cid, set()).discard(stream)
                if not self._by_channel.get(cid, True):
                    del self._by_channel[cid]
            for bid in stream.bridge_ids:
                self._by_bridge.get(bid, set()).discard(stream)
                if not self._by_bridge.get(bid, True):
                    del self._by_bridge[bid]

    def _index(self, stream: CallEvents) -> None:
        for cid in stream.channel_ids:
            self._by_channel.setdefault(cid, set()).add(stream)
        for bid in stream.bridge_ids:
            self._by_bridge.setdefault(bid, set()).add(stream)

    def _signal(self, item: Connected | Disconnected) -> None:
        for stream in list(self._subscribers):
            stream._deliver(item)

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
        for stream in list(self._subscribers):
            stream._deliver(event)
        targets: set[CallEvents] = set()
        for cid in channel_ids(event):
            targets |= self._by_channel.get(cid, set())
        for bid in bridge_ids(event):
            targets |= self._by_bridge.get(bid, set())
        for stream in targets:
            stream._deliver(event)

    def _handle_frame(self, frame: str | bytes) -> None:
        """One websocket message: parse, route. Bad input is logged and skipped, never raised."""
        try:
            raw = json.loads(frame)
        except RecursionError as exc:
            self._skip(frame, "too_deep", exc)
            return
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            self._skip(frame, "not_json", exc)
            return
        try:
            event = parse_event(raw)
        except EventFormatError as exc:
            self._skip(frame, exc.reason, exc, detail=str(exc))
            return
        except Exception as exc:
            # A frame our parser did not foresee: a bug of ours, but dropping one frame beats
            # reconnecting (which loses every event of the gap). The type only: see _skip.
            self._skip(frame, "invalid", exc)
            return
        if isinstance(event, UnknownEvent) and event.type not in self._unknown_types:
            if len(self._unknown_types) < _MAX_UNKNOWN_TYPES:
                self._unknown_types.add(event.type)
                log.info(
                    "ari event type not modelled; delivered as UnknownEvent", type=event.type[:64]
                )
        if isinstance(event, ApplicationReplaced):
            log.error(
                "another websocket took over the ARI application; no more events here",
                app=self._cfg.app,
            )
        self._dispatch(event)

    def _skip(self, frame: str | bytes, reason: str, exc: BaseException, **fields: str) -> None:
        """Count and log a dropped frame: the exception's type, never its message (a decoder's
        message may quote the frame, which holds caller names and numbers) nor the frame. Logged
        at the 1st, 10th, 100th… of each reason, so a broken sender cannot flood the log."""
        count = self.bad_frames.get(reason, 0) + 1
        self.bad_frames[reason] = count
        while count % 10 == 0:
            count //= 10
        if count == 1:
            log.warning(
                "ari event skipped",
                reason=reason,
                error=type(exc).__name__,
                size=len(frame),
                count=self.bad_frames[reason],
                **fields,
            )

    # -- the events task ---------------------------------------------------------------------

    async def _run_events(self) -> None:
        attempt = 0
        was_open = False
        while True:
            try:
                async with connect(
                    self._events_url,
                    additional_headers={"Authorization": self._auth_header},
                    open_timeout=self._cfg.request_timeout_s,
                    # Pings notice a peer that vanished without closing (a pulled cable).
                    ping_interval=10.0,
                    ping_timeout=self._cfg.request_timeout_s,
                ) as ws:
                    attempt = 0
                    self._opened(reconnect=was_open)
                    was_open = True
                    async for frame in ws:
                        self._handle_frame(frame)
                    reason = f"closed by Asterisk (code {ws.close_code})"
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    self._fail(status)
                    return
                reason = f"websocket upgrade refused with HTTP {status}"
            except ConnectionClosed as exc:
                # No close frame (Asterisk ``core stop now``, a dead link) reads as 1006.
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                reason = f"connection lost (close code {code})"
            except (OSError, TimeoutError, WebSocketException) as exc:
                # Refused connections while Asterisk restarts, handshake timeouts, bad handshakes.
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                # A bug of ours (in routing, say) must not end the only events task for good:
                # log it with its traceback and reconnect like after any other failure.
                log.exception("ari events task failed; reconnecting")
                reason = f"internal error: {type(exc).__name__}"
            if self._connected.is_set():
                self._connected.clear()
                self._signal(Disconnected(reason))
            delay = backoff_delay(
                attempt, self._cfg.reconnect_initial_s, self._cfg.reconnect_max_s, self._jitter()
            )
            attempt += 1
            log.warning(
                "ari events websocket down; reconnecting",
                url=self._events_url,
                reason=reason,
                attempt=attempt,
                retry_in_s=round(delay, 3),
            )
            await asyncio.sleep(delay)

    def _opened(self, *, reconnect: bool) -> None:
        self.connects += 1
        self._connected.set()
        log.info("ari events websocket open", url=self._events_url, reconnect=reconnect)
        self._signal(Connected(reconnect=reconnect))

    def _fail(self, status: int) -> None:
        error = ari_http_error(
            status,
            f"Asterisk rejected ARI user {self._cfg.username!r} at {self._events_url}; "
            "check [ari] username/password here and the user in Asterisk's ari.conf",
            method="GET",
            path="/events",
        )
        self._fatal = error
        log.error("ari credentials rejected; not retrying", url=self._events_url, status=status)
        for stream in [*self._subscribers, *self._calls]:
            stream._deliver(_End(error))

    # -- REST plumbing -----------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        query = _query(params or {})
        try:
            response = await self._http.request(
                method, path.lstrip("/"), params=query, json=body if body is not None else None
            )
        except httpx.TimeoutException as exc:
            raise AriConnectionError(
                f"ARI {method} {path}: no answer within {self._cfg.request_timeout_s} s"
            ) from exc
        except httpx.TransportError as exc:
            raise AriConnectionError(
                f"ARI {method} {path}: cannot reach {self._base_url}: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            raise ari_http_error(
                response.status_code, _error_message(response), method=method, path=path
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AriError(f"ARI {method} {path}: response is not JSON") from None

    def _model(self, cls: type[M], body: Any, method: str, path: str) -> M:
        try:
            return parse_model(cls, body)
        except ValueError as exc:
            raise AriError(f"ARI {method} {path}: unexpected response: {exc}") from None

    async def _get_model(
        self, cls: type[M], path: str, params: Mapping[str, Any] | None = None
    ) -> M:
        return self._model(cls, await self._request("GET", path, params), "GET", path)

    async def _post_model(
        self,
        cls: type[M],
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> M:
        return self._model(cls, await self._request("POST", path, params, body), "POST", path)

    # -- channels ----------------------------------------------------------------------------

    async def list_channels(self) -> list[Channel]:
        body = await self._request("GET", "/channels")
        if not isinstance(body, list):
            raise AriError("ARI GET /channels: expected a list")
        return [self._model(Channel, c, "GET", "/channels") for c in body]

    async def get_channel(self, channel_id: str) -> Channel:
        return await self._get_model(Channel, f"/channels/{_seg(channel_id)}")

    async def answer(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        """Indicate ringing to the caller (before answering)."""
        await self._request("POST", f"/channels/{_seg(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{_seg(channel_id)}/ring")

    async def hangup(
        self, channel_id: str, reason: str | None = "normal", *, reason_code: int | None = None
    ) -> None:
        """``reason``: ARI's names (normal, busy, congestion, no_answer …); ``reason_code``: a Q.850
        cause, which ARI prefers when both are given, so ``reason`` is then not sent."""
        params = {"reason_code": reason_code} if reason_code is not None else {"reason": reason}
        await self._request("DELETE", f"/channels/{_seg(channel_id)}", params)

    async def external_media(
        self,
        app: str | None,
        external_host: str,
        format: str = "ulaw",
        encapsulation: str | None = "rtp",
        transport: str | None = "udp",
        direction: str | None = "both",
        channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """``POST /channels/externalMedia``. The returned channel carries
        ``channelvars['UNICASTRTP_LOCAL_ADDRESS'/'UNICASTRTP_LOCAL_PORT']`` (where to send RTP).
        Its ``StasisStart`` comes *after* this returns: use :meth:`external_media_ready` before
        adding it to a bridge. ``app`` None: ``cfg.app``."""
        params = {
            "app": app or self._cfg.app,
            "external_host": external_host,
            "format": format,
            "encapsulation": encapsulation,
            "transport": transport,
            "direction": direction,
            "channelId": channel_id,
        }
        return await self._post_model(
            Channel, "/channels/externalMedia", params, _variables(variables)
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
        channel_id = channel_id or f"medagent-em-{uuid.uuid4().hex[:16]}"
        started = self.expect(lambda e: isinstance(e, StasisStart) and e.channel.id == channel_id)
        timeout_s = self._cfg.request_timeout_s if timeout_s is None else timeout_s
        try:
            channel = await self.external_media(
                app,
                external_host,
                format,
                encapsulation,
                transport,
                direction,
                channel_id,
                variables,
            )
            try:
                async with asyncio.timeout(timeout_s):
                    await started
            except TimeoutError:
                with contextlib.suppress(AriError):
                    await self.hangup(channel_id)
                raise AriError(
                    f"externalMedia channel {channel_id}: no StasisStart within {timeout_s} s"
                ) from None
            return channel
        finally:
            started.cancel()
            self._drop_waiter(started)

    async def create_channel(
        self,
        endpoint: str,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | Sequence[str] | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """``POST /channels/create``: a channel in Stasis that is not dialed yet (then :meth:`dial`)."""
        params = {
            "endpoint": endpoint,
            "app": app or self._cfg.app,
            "appArgs": _csv(app_args),
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": _csv(formats),
        }
        return await self._post_model(Channel, "/channels/create", params, _variables(variables))

    async def dial(
        self,
        channel_id: str,
        caller: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109  # ARI's ringing time, not our deadline
    ) -> None:
        """Dial a created channel. ``timeout`` in seconds; ``caller``: the channel id whose
        caller id and connected line to use."""
        params = {"caller": caller, "timeout": timeout}
        await self._request("POST", f"/channels/{_seg(channel_id)}/dial", params)

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        extension: str | None = None,
        context: str | None = None,
        priority: int | None = None,
        label: str | None = None,
        caller_id: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109  # ARI's ringing time, not our deadline
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | Sequence[str] | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """``POST /channels``: create and dial at once, into ``app`` or a dialplan extension.
        ``timeout`` in seconds. An unreachable endpoint gives 500 "Allocation failed"."""
        params = {
            "endpoint": endpoint,
            "extension": extension,
            "context": context,
            "priority": priority,
            "label": label,
            "app": app,
            "appArgs": _csv(app_args),
            "callerId": caller_id,
            "timeout": timeout,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": _csv(formats),
        }
        return await self._post_model(Channel, "/channels", params, _variables(variables))

    async def continue_in_dialplan(
        self,
        channel_id: str,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """Hand the channel back to the dialplan (leaves Stasis: ``StasisEnd`` follows)."""
        params = {"context": context, "extension": extension, "priority": priority, "label": label}
        await self._request("POST", f"/channels/{_seg(channel_id)}/continue", params)

    async def redirect(self, channel_id: str, endpoint: str) -> None:
        """Redirect an unanswered channel (PJSIP: SIP 302 to ``endpoint``)."""
        await self._request(
            "POST", f"/channels/{_seg(channel_id)}/redirect", {"endpoint": endpoint}
        )

    async def get_variable(self, channel_id: str, variable: str) -> str:
        body = await self._request(
            "GET", f"/channels/{_seg(channel_id)}/variable", {"variable": variable}
        )
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise AriError("ARI GET /channels/{id}/variable: expected {'value': string}")
        value: str = body["value"]
        return value

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        await self._request(
            "POST",
            f"/channels/{_seg(channel_id)}/variable",
            {"variable": variable, "value": value},
        )

    async def send_dtmf(
        self,
        channel_id: str,
        dtmf: str,
        *,
        before_ms: int | None = None,
        between_ms: int | None = None,
        duration_ms: int | None = None,
        after_ms: int | None = None,
    ) -> None:
        params = {
            "dtmf": dtmf,
            "before": before_ms,
            "between": between_ms,
            "duration": duration_ms,
            "after": after_ms,
        }
        await self._request("POST", f"/channels/{_seg(channel_id)}/dtmf", params)

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/moh", {"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{_seg(channel_id)}/moh")

    async def snoop(
        self,
        channel_id: str,
        app: str | None = None,
        *,
        spy: str | None = None,
        whisper: str | None = None,
        app_args: str | Sequence[str] | None = None,
        snoop_id: str | None = None,
    ) -> Channel:
        """A snoop channel on ``channel_id``; ``spy``/``whisper``: none, in, out, both."""
        params = {
            "spy": spy,
            "whisper": whisper,
            "app": app or self._cfg.app,
            "appArgs": _csv(app_args),
            "snoopId": snoop_id,
        }
        return await self._post_model(Channel, f"/channels/{_seg(channel_id)}/snoop", params)

    # -- playback ----------------------------------------------------------------------------

    async def play(
        self,
        media: str | Sequence[str],
        *,
        channel_id: str | None = None,
        bridge_id: str | None = None,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        """Play on a channel or a bridge (exactly one). Prefer the bridge while listening to the
        caller: a channel playback stops the caller's audio reaching externalMedia."""
        if (channel_id is None) == (bridge_id is None):
            raise ValueError("play: give exactly one of channel_id and bridge_id")
        target = (
            f"/channels/{_seg(channel_id)}"
            if channel_id is not None
            else f"/bridges/{_seg(bridge_id or '')}"
        )
        params = {"media": _csv(media), "lang": lang, "playbackId": playback_id}
        return await self._post_model(Playback, f"{target}/play", params)

    async def get_playback(self, playback_id: str) -> Playback:
        return await self._get_model(Playback, f"/playbacks/{_seg(playback_id)}")

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a playback. A finished playback is gone: that is ``AriNotFound``."""
        await self._request("DELETE", f"/playbacks/{_seg(playback_id)}")

    # -- bridges -----------------------------------------------------------------------------

    async def create_bridge(
        self, type: str = "mixing", bridge_id: str | None = None, name: str | None = None
    ) -> Bridge:
        params = {"type": type, "bridgeId": bridge_id, "name": name}
        return await self._post_model(Bridge, "/bridges", params)

    async def get_bridge(self, bridge_id: str) -> Bridge:
        return await self._get_model(Bridge, f"/bridges/{_seg(bridge_id)}")

    async def add_channel(
        self, bridge_id: str, channel_ids: str | Sequence[str], *, role: str | None = None
    ) -> None:
        """Unknown channel: 400 "Channel not found"; a channel not in Stasis (or whose
        ``StasisStart`` has not happened yet): 422."""
        params = {"channel": _csv(channel_ids), "role": role}
        await self._request("POST", f"/bridges/{_seg(bridge_id)}/addChannel", params)

    async def remove_channel(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        await self._request(
            "POST", f"/bridges/{_seg(bridge_id)}/removeChannel", {"channel": _csv(channel_ids)}
        )

    async def list_bridges(self) -> list[Bridge]:
        body = await self._request("GET", "/bridges")
        if not isinstance(body, list):
            raise AriError("ARI GET /bridges: expected a list")
        return [self._model(Bridge, b, "GET", "/bridges") for b in body]

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._request("DELETE", f"/bridges/{_seg(bridge_id)}")

    # -- applications, endpoints, device states, asterisk -----------------------------------

    async def get_application(self, app: str | None = None) -> Application:
        """The application's subscriptions: ``channel_ids`` are the channels in Stasis, which
        is how the supervisor reconciles after a reconnect."""
        return await self._get_model(Application, f"/applications/{_seg(app or self._cfg.app)}")

    async def get_endpoint(self, tech: str, resource: str) -> Endpoint:
        return await self._get_model(Endpoint, f"/endpoints/{_seg(tech)}/{_seg(resource)}")

    async def get_device_state(self, name: str) -> DeviceState:
        return await self._get_model(DeviceState, f"/deviceStates/{_seg(name)}")

    async def get_asterisk_info(self) -> dict[str, Any]:
        body = await self._request("GET", "/asterisk/info")
        if not isinstance(body, dict):
            raise AriError("ARI GET /asterisk/info: expected an object")
        return body

    async def ping(self) -> dict[str, Any]:
        body = await self._request("GET", "/asterisk/ping")
        if not isinstance(body, dict):
            raise AriError("ARI GET /asterisk/ping: expected an object")
        return body


# --------------------------------------------------------------------------------------------------
# helpers


def _seg(value: str) -> str:
    """One path segment: ``PJSIP/clinician100`` as a device name must not become two."""
    return quote(value, safe="")


def _csv(value: str | Iterable[str] | None) -> str | None:
    """ARI's ``allowMultiple`` parameters are comma-separated."""
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _variables(variables: Mapping[str, str] | None) -> dict[str, Any] | None:
    """Channel variables go in the JSON body (``{"variables": {...}}``), not the query string."""
    return None if variables is None else {"variables": dict(variables)}


def _error_message(response: httpx.Response) -> str:
    """ARI's own error text: ``{"message": ...}``, but ``{"error": ...}`` for "Allocation failed"."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                text: str = body[key]
                return text
    return response.reason_phrase or f"HTTP {response.status_code}"
