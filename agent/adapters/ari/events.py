"""ARI's events websocket: one connection that reconnects after any drop, and frames made events.

- **Reconnect**: :meth:`EventsSocket.run` (the client runs it as the task ``ari-events:<app>``)
  reconnects with exponential backoff and jitter (``reconnect_initial_s`` … ``reconnect_max_s``)
  after any drop: a close frame, a transport closed without one (``core stop now`` → 1006),
  connection refused while Asterisk restarts, a 404/503 from a half-started Asterisk. Every retry
  path sleeps at least ``MIN_RETRY_S``, so a dead server never spins the loop. After each
  (re)connect it signals ``Connected(reconnect=...)``; events during the gap are lost (Asterisk does
  not replay them).
- **Wrong credentials** (HTTP 401/403 on the upgrade) end the task at once: retrying cannot fix the
  config, and a clear error naming the user and URL beats a log full of retries.
- **Bad frames** (not JSON, not an object, nested too deep, fields of the wrong type) are dropped by
  :class:`FrameParser`, counted by reason and logged with the exception's type (and our own
  parser's field path, which never holds a value), never the frame or a decoder's message: frames
  carry caller names and numbers. The websocket stays up: reconnecting would lose the events of
  the gap.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from urllib.parse import urlencode

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from agent.adapters.ari.models import (
    ApplicationReplaced,
    Connected,
    Disconnected,
    Event,
    EventFormatError,
    UnknownEvent,
    parse_event,
)
from agent.config import AriConfig
from agent.errors import AriError, ari_http_error
from agent.log import get_logger

log = get_logger("agent.adapters.ari")

MIN_RETRY_S = 0.05
"""Floor for every reconnect delay, whatever the config says: the loop must never spin."""
_MAX_UNKNOWN_TYPES = 256
"""Unmodelled event types remembered (each is logged once); the names come from the wire."""


def backoff_delay(attempt: int, initial_s: float, max_s: float, jitter: float) -> float:
    """Seconds to wait before reconnect ``attempt`` (0 = first retry). ``jitter`` in [0, 1) comes
    from the caller, so this stays pure and testable. "Equal jitter": half the step is fixed and
    half random, so agents restarted together spread out but none retries at once."""
    step = min(max_s, initial_s * 2.0 ** min(attempt, 32))
    return max(MIN_RETRY_S, step * (0.5 + 0.5 * jitter))


def events_url(base_url: str, app: str) -> str:
    """``http://host:8088/ari`` → ``ws://host:8088/ari/events?app=<app>&subscribeAll=false``.
    Credentials go in the ``Authorization`` header, never here (URLs end up in logs)."""
    scheme, sep, rest = base_url.rstrip("/").partition("://")
    ws_scheme = {"http": "ws", "https": "wss"}.get(scheme)
    if not sep or ws_scheme is None:
        raise ValueError(f"ARI URL must start with http:// or https://, got {base_url!r}")
    query = urlencode({"app": app, "subscribeAll": "false"})
    return f"{ws_scheme}://{rest}/events?{query}"


class FrameParser:
    """One websocket message → one :class:`~agent.adapters.ari.models.Event`, or a counted drop."""

    def __init__(self, app: str) -> None:
        self._app = app
        self._unknown_types: set[str] = set()
        self.bad_frames: dict[str, int] = {}
        """Frames dropped, by reason: ``not_json``, ``not_object``, ``too_deep``, ``invalid``."""

    def parse(self, frame: str | bytes) -> Event | None:
        """The frame's event, or ``None`` when it was dropped. Bad input is logged, never raised."""
        try:
            raw = json.loads(frame)
        except RecursionError as exc:
            self._skip(frame, "too_deep", exc)
            return None
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            self._skip(frame, "not_json", exc)
            return None
        try:
            event = parse_event(raw)
        except EventFormatError as exc:
            self._skip(frame, exc.reason, exc, detail=str(exc))
            return None
        except Exception as exc:
            # A frame our parser did not foresee: a bug of ours, but dropping one frame beats
            # reconnecting (which loses every event of the gap). The type only: see _skip.
            self._skip(frame, "invalid", exc)
            return None
        if isinstance(event, UnknownEvent) and event.type not in self._unknown_types:
            if len(self._unknown_types) < _MAX_UNKNOWN_TYPES:
                self._unknown_types.add(event.type)
                log.info(
                    "ari event type not modelled; delivered as UnknownEvent", type=event.type[:64]
                )
        if isinstance(event, ApplicationReplaced):
            log.error(
                "another websocket took over the ARI application; no more events here",
                app=self._app,
            )
        return event

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


class EventsSocket:
    """The events websocket of ``cfg.app``. It hands each frame to ``on_frame``, connection news to
    ``on_signal`` and, if Asterisk rejects the credentials, the error to ``on_fatal``."""

    def __init__(
        self,
        cfg: AriConfig,
        auth_header: str,
        *,
        on_frame: Callable[[str | bytes], None],
        on_signal: Callable[[Connected | Disconnected], None],
        on_fatal: Callable[[AriError], None],
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._cfg = cfg
        self.url = events_url(cfg.url.rstrip("/"), cfg.app)
        self._auth_header = auth_header
        self._on_frame = on_frame
        self._on_signal = on_signal
        self._on_fatal = on_fatal
        self._jitter = jitter
        self._connected = asyncio.Event()
        self.fatal: AriError | None = None
        """Set when the credentials were rejected; :meth:`run` has then returned for good."""
        self.connects = 0
        """How many times the websocket opened (1 + reconnects); for tests and metrics."""

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(
        self, timeout_s: float | None, task: asyncio.Task[None] | None
    ) -> None:
        """Until the websocket is open. Raises the fatal error (wrong credentials) or
        ``TimeoutError``. ``task`` runs :meth:`run`: if it ends, the wait ends with it."""
        if self.fatal is not None:
            raise self.fatal
        waiter = asyncio.ensure_future(self._connected.wait())
        watch = [waiter] if task is None else [waiter, task]
        try:
            await asyncio.wait(watch, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self.fatal is not None:
            raise self.fatal
        if not self._connected.is_set():
            raise TimeoutError(f"ARI events websocket not open after {timeout_s} s")

    async def run(self) -> None:
        """Connect, read, reconnect, until cancelled or the credentials are rejected."""
        attempt = 0
        was_open = False
        while True:
            try:
                async with connect(
                    self.url,
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
                        self._on_frame(frame)
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
                self._on_signal(Disconnected(reason))
            delay = backoff_delay(
                attempt, self._cfg.reconnect_initial_s, self._cfg.reconnect_max_s, self._jitter()
            )
            attempt += 1
            log.warning(
                "ari events websocket down; reconnecting",
                url=self.url,
                reason=reason,
                attempt=attempt,
                retry_in_s=round(delay, 3),
            )
            await asyncio.sleep(delay)

    def _opened(self, *, reconnect: bool) -> None:
        self.connects += 1
        self._connected.set()
        log.info("ari events websocket open", url=self.url, reconnect=reconnect)
        self._on_signal(Connected(reconnect=reconnect))

    def _fail(self, status: int) -> None:
        error = ari_http_error(
            status,
            f"Asterisk rejected ARI user {self._cfg.username!r} at {self.url}; "
            "check [ari] username/password here and the user in Asterisk's ari.conf",
            method="GET",
            path="/events",
        )
        self.fatal = error
        log.error("ari credentials rejected; not retrying", url=self.url, status=status)
        self._on_fatal(error)
