"""Asterisk Manager Interface client on panoramisk's ``Manager``: device and extension state before a
transfer, Originate for clinician call-backs and pages, and the event stream for a dashboard.

AMI is an optional helper, never on a call's critical path. ``start()`` runs one owned task
(``ami``) that logs in, keeps the session alive with ``Ping``, and when the connection drops waits
with capped exponential backoff and logs in again. A lost AMI is logged once (and its return once);
meanwhile every action raises :class:`AmiUnavailable` at once, so callers fall back (a transfer
without a presence check) instead of waiting.

panoramisk reconnects on its own with a fixed 2 s delay, forever, even after a failed login, and
re-sends queued actions on the new session (an Originate could ring a clinician twice). Both are
switched off in :class:`_Manager`: this module owns reconnection, and actions cut off by a drop fail.
The ``Manager`` is created inside the running loop (it calls ``asyncio.get_event_loop()``).

Wire facts (recorded from Asterisk 23, ``../shared/asterisk-reference/ami``): a failed Login gets
``Response: Error`` / ``Message: Authentication failed`` and Asterisk closes the socket; an async
Originate answers ``Originate successfully queued`` and later an ``OriginateResponse`` event with
the same ActionID (``Reason`` 4 = answered, 0 = failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager

from agent.adapters.ari.client import backoff_delay
from agent.config import AmiConfig
from agent.errors import MedAgentError
from agent.log import get_logger

log = get_logger(__name__)


class AmiError(MedAgentError):
    """Talking to the Asterisk Manager Interface failed."""

    code = "ami_error"


class AmiUnavailable(AmiError):
    """Not connected (AMI disabled, Asterisk down, or between reconnects)."""

    code = "ami_unavailable"


class AmiLoginError(AmiError):
    """Asterisk refused the user name or secret."""

    code = "ami_login"


class AmiActionError(AmiError):
    """Asterisk answered an action with ``Response: Error``; ``message`` is its text."""

    code = "ami_action"

    def __init__(self, action: str, message: str) -> None:
        self.action = action
        self.message = message
        super().__init__(f"AMI {action}: {message}")


class AmiPermissionDenied(AmiActionError):
    """The user's ``write`` classes in manager.conf do not allow the action."""

    code = "ami_permission_denied"


# ExtensionState ``Status`` values (Asterisk's ast_extension_states).
EXTENSION_STATES = {
    -2: "Removed",
    -1: "Unknown",
    0: "Idle",
    1: "InUse",
    2: "Busy",
    4: "Unavailable",
    8: "Ringing",
    9: "InUse&Ringing",
    16: "Hold",
    17: "InUse&Hold",
}

# OriginateResponse ``Reason`` (Asterisk's AST_CONTROL_* values reported by the originate).
ORIGINATE_REASONS = {
    0: "failed",
    1: "hangup",
    3: "noanswer",
    4: "answered",
    5: "busy",
    8: "congestion",
}


@dataclass(frozen=True)
class ExtensionState:
    status: int
    """0 Idle, 1 InUse, 4 Unavailable, 8 Ringing, -1 Unknown (no such extension or no hint)."""
    text: str
    hint: str = ""


@dataclass(frozen=True)
class OriginateResult:
    success: bool
    reason: int
    reason_text: str
    channel: str
    uniqueid: str


Event = dict[str, Any]


class _Manager(Manager):  # type: ignore[misc]  # panoramisk ships no type information
    """panoramisk's Manager without its own reconnect loop and without re-sending actions."""

    def __init__(self, on_lost: Callable[[], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        # On a failed connect panoramisk schedules its own retry; the caller sees the exception.
        if f.cancelled() or f.exception() is not None:
            return
        super().connection_made(f)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._connected = False
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        self._on_lost()


def _check(action: str, msg: Any) -> Any:
    """Raise for ``Response: Error`` (panoramisk hands errors back as ordinary messages)."""
    first = msg[0] if isinstance(msg, list) else msg
    if first.get("Response") == "Error":
        text = first.get("Message", "")
        if text == "Permission denied":
            raise AmiPermissionDenied(action, text)
        raise AmiActionError(action, text)
    return msg


class AmiClient:
    """One AMI session with reconnect. ``connect()`` logs in once (``medagent check`` uses it and
    sees the exact failure); ``start()`` keeps a session up in the background for the agent."""

    def __init__(
        self,
        cfg: AmiConfig,
        *,
        action_timeout_s: float = 5.0,
        keepalive_s: float = 10.0,
        reconnect_initial_s: float = 0.25,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._cfg = cfg
        self._action_timeout_s = action_timeout_s
        self._keepalive_s = keepalive_s
        self._reconnect_initial_s = reconnect_initial_s
        self._jitter = jitter
        self._manager: _Manager | None = None
        self._lost = asyncio.Event()
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscriptions: list[tuple[str, Callable[[Event], None]]] = []
        self._in_flight: set[asyncio.Future[Any]] = set()
        self.connects = 0
        """Successful logins (1 + reconnects); for tests and metrics."""
        self.last_error: str = ""

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def connect(self) -> None:
        """Connect and log in once. Raises :class:`AmiLoginError` (wrong user or secret),
        :class:`AmiUnavailable` (nothing listening, or no answer)."""
        if self._manager is None:
            self._manager = _Manager(
                self._connection_lost,
                host=self._cfg.host,
                port=self._cfg.port,
                username=self._cfg.username,
                secret=self._cfg.password,
                loop=asyncio.get_running_loop(),
                # Our keepalive replaces panoramisk's pinger, which writes to dead transports.
                ping_delay=10**9,
                log=_PANORAMISK_LOG,
            )
            for pattern, callback in self._subscriptions:
                self._register(pattern, callback)
        manager = self._manager
        self._lost.clear()
        where = f"{self._cfg.host}:{self._cfg.port}"
        try:
            await asyncio.wait_for(manager.connect(), self._action_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise AmiUnavailable(f"cannot reach AMI at {where}: {_reason(exc)}") from None
        login = manager.authenticated_future
        if login is None:  # pragma: no cover - panoramisk sets it when a username is configured
            raise AmiError("panoramisk did not send Login")
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                [login, lost], timeout=self._action_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if login not in done:
            manager.close()
            raise AmiUnavailable(f"AMI at {where} closed or did not answer Login")
        response = login.result()
        if response.get("Response") != "Success":
            manager.close()
            raise AmiLoginError(
                f"AMI login refused for user {self._cfg.username!r} "
                f"({response.get('Message', 'no message')}): set ami.password to the secret of "
                f"[{self._cfg.username}] in manager.conf, and check its permit= allows this host"
            )
        self.connects += 1
        self._up.set()

    def start(self) -> None:
        """Keep a session up in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ami")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._up.clear()
        if self._manager is not None:
            self._manager.close()
            self._fail_pending()

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        await asyncio.wait_for(self._up.wait(), timeout_s)

    async def _run(self) -> None:
        attempt = 0
        announced_loss = False
        while True:
            try:
                await self.connect()
            except AmiError as exc:
                if not announced_loss or str(exc) != self.last_error:
                    log.warning(
                        "ami unavailable; transfers go ahead without presence checks",
                        code=exc.code,
                        error=str(exc),
                    )
                    announced_loss = True
                self.last_error = str(exc)
            else:
                if announced_loss:
                    log.info("ami connection back", connects=self.connects)
                announced_loss = False
                self.last_error = ""
                attempt = 0
                await self._keepalive()
                if not announced_loss:
                    log.warning("ami connection lost; reconnecting")
                    announced_loss = True
            await asyncio.sleep(
                backoff_delay(
                    attempt, self._reconnect_initial_s, self._cfg.reconnect_max_s, self._jitter()
                )
            )
            attempt += 1

    async def _keepalive(self) -> None:
        """Until the session is lost; a Ping that goes unanswered counts as lost (a half-open
        TCP connection after a host crash never reports a close)."""
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._keepalive_s)
                break
            try:
                await self.ping()
            except AmiError:
                if self._manager is not None:
                    self._manager.close()
                self._connection_lost()
                break

    def _connection_lost(self) -> None:
        self._up.clear()
        self._lost.set()
        self._fail_pending()

    def _fail_pending(self) -> None:
        """Actions cut off by a drop fail now; panoramisk would re-send them on the next session."""
        manager = self._manager
        if manager is None:
            return
        # panoramisk drops from its books an action that had a first answer (a queued
        # Originate) and "forgettable" ones (Ping) without resolving them; ours are tracked here.
        futures = set(self._in_flight)
        futures.update(action.future for action in manager.awaiting_actions)
        manager.awaiting_actions.clear()
        protocol = manager.protocol
        if protocol is not None:
            futures.update(action.future for action in protocol.responses.values())
            protocol.responses.clear()
        for future in futures:
            if not future.done():
                future.set_exception(AmiUnavailable("AMI connection lost"))
                future.exception()  # retrieved here, so a forgotten one is not "stray"

    # -- actions -------------------------------------------------------------------------------

    async def action(
        self,
        fields: Mapping[str, Any],
        *,
        timeout_s: float | None = None,
    ) -> Any:
        """Send one action; a ``Message`` (or a list of them for list actions). Raises
        :class:`AmiActionError` for ``Response: Error``."""
        name = str(fields.get("Action", "?"))
        if not self.connected or self._manager is None:
            raise AmiUnavailable(f"AMI {name}: not connected")
        future = self._manager.send_action(dict(fields))
        self._in_flight.add(future)
        try:
            msg = await asyncio.wait_for(
                asyncio.shield(future),
                timeout_s if timeout_s is not None else self._action_timeout_s,
            )
        except TimeoutError:
            raise AmiUnavailable(f"AMI {name}: no answer") from None
        except AmiUnavailable as exc:
            raise AmiUnavailable(f"AMI {name}: {exc}") from None
        finally:
            self._in_flight.discard(future)
        return _check(name, msg)

    async def ping(self) -> None:
        await self.action({"Action": "Ping"})

    async def extension_state(self, exten: str, context: str) -> ExtensionState:
        msg = await self.action({"Action": "ExtensionState", "Exten": exten, "Context": context})
        try:
            status = int(msg.get("Status", "-1"))
        except ValueError:
            raise AmiError(
                f"AMI ExtensionState: Status is not a number: {msg.get('Status')!r}"
            ) from None
        text = msg.get("StatusText") or EXTENSION_STATES.get(status, "Unknown")
        return ExtensionState(status, text, msg.get("Hint", ""))

    async def device_states(self) -> dict[str, str]:
        """Every device's state (``PJSIP/clinician100`` → ``NOT_INUSE``), via DeviceStateList."""
        messages = _as_list(await self.action({"Action": "DeviceStateList"}))
        return {
            m["Device"]: m.get("State", "UNKNOWN")
            for m in messages
            if m.get("Event") == "DeviceStateChange" and "Device" in m
        }

    async def device_state(self, device: str) -> str:
        """``NOT_INUSE``, ``INUSE``, ``RINGING``, ``UNAVAILABLE``...; ``UNKNOWN`` for a device
        Asterisk does not list."""
        return (await self.device_states()).get(device, "UNKNOWN")

    async def originate(
        self,
        channel: str,
        exten: str,
        context: str,
        priority: int = 1,
        caller_id: str | None = None,
        timeout_s: float = 30.0,
        variables: Mapping[str, str] | None = None,
        *,
        async_: bool = True,
    ) -> OriginateResult:
        """Call ``channel`` and, once it answers, send it to ``context,exten,priority``. With
        ``async_`` (the default) waits for the ``OriginateResponse`` event, so the result says
        whether the phone answered; the wait is bounded by the ring time plus a margin."""
        fields: dict[str, Any] = {
            "Action": "Originate",
            "Channel": channel,
            "Context": context,
            "Exten": exten,
            "Priority": str(priority),
            "Timeout": str(int(timeout_s * 1000)),
        }
        if caller_id:
            fields["CallerID"] = caller_id
        if async_:
            fields["Async"] = "true"
        if variables:
            # One "Variable: NAME=value" line each; panoramisk writes a list as repeated lines.
            pairs = [f"{k}={v}" for k, v in variables.items()]
            fields["Variable"] = pairs[0] if len(pairs) == 1 else pairs
        try:
            # No as_list: panoramisk then treats "successfully queued" as the start of a list that
            # the OriginateResponse ends, and an Error (e.g. Permission denied) as a whole answer.
            msg = await self.action(fields, timeout_s=timeout_s + self._action_timeout_s)
        except AmiPermissionDenied:
            raise
        except AmiActionError as exc:
            if async_:
                raise
            # A synchronous Originate that did not connect answers "Originate failed".
            return OriginateResult(False, 0, exc.message, channel, "")
        if not async_:
            return OriginateResult(True, 4, "answered", channel, msg.get("Uniqueid", ""))
        final = next(
            (m for m in reversed(_as_list(msg)) if m.get("Event") == "OriginateResponse"), None
        )
        if final is None:
            raise AmiError("AMI Originate: the list ended without an OriginateResponse")
        try:
            reason = int(final.get("Reason", "0"))
        except ValueError:
            reason = 0
        return OriginateResult(
            success=final.get("Response") == "Success",
            reason=reason,
            reason_text=ORIGINATE_REASONS.get(reason, str(reason)),
            channel=final.get("Channel", channel),
            uniqueid=final.get("Uniqueid", ""),
        )

    # -- events --------------------------------------------------------------------------------

    def subscribe(self, pattern: str, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` for each event whose name matches ``pattern`` (``*`` globs:
        ``DeviceStateChange``, ``Dial*``, ``*``). Survives reconnects. The callback must not
        block; events carry caller numbers, so never log them whole."""
        self._subscriptions.append((pattern, callback))
        if self._manager is not None:
            self._register(pattern, callback)

    def _register(self, pattern: str, callback: Callable[[Event], None]) -> None:
        assert self._manager is not None

        def deliver(_manager: Any, message: Any) -> None:
            try:
                callback(dict(message))
            except Exception:
                log.exception("ami event subscriber failed", pattern=pattern)

        self._manager.register_event(pattern, deliver)


def _as_list(msg: Any) -> list[Any]:
    return msg if isinstance(msg, list) else [msg]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or type(exc).__name__


class _QuietLog:
    """panoramisk logs 'Connection lost' at error level on every drop; we log the loss once."""

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *_a, **_k: None


_PANORAMISK_LOG = _QuietLog()
