"""FastAGI server (panoramisk), for sites that route calls with ``AGI(agi://…)``.

panoramisk 1.4 is the design card's package. Its FastAGI code predates Python 3.11 in two places, so
this module subclasses it minimally (see README "Dependencies"):

1. ``Application.add_route`` wraps plain functions with ``asyncio.coroutine``, which Python 3.11
   removed → we wrap them in a coroutine ourselves.
2. ``Application.handler`` reads the environment block with ``while b"\\n\\n" not in buffer: buffer +=
   await reader.read()``, which spins forever on EOF (``read`` returns ``b""`` at once), freezing the
   whole event loop when a client sends half a block and disconnects → we read the block with
   ``readuntil`` under a timeout and a size limit, then hand panoramisk a reader that replays it.

We also harden the rest, because anything on the network can open this port:

- The environment block must be ``agi_<name>: <value>`` lines (:func:`parse_environment`); anything
  else (an HTTP request, binary noise, a line without ``: ``) is a log line and a closed connection.
  Values are decoded as UTF-8 with replacement: a caller name from a Latin-1 trunk must not cost the
  call its route. A block over ``ENV_LIMIT_BYTES`` or slower than ``ENV_TIMEOUT_S`` is refused too.
- ``Request.send_command``: a reply line that is not an AGI status line becomes an error result
  (``AGIGarbage``) and the route goes on; Asterisk's unsolicited ``HANGUP`` line (sent once when the
  channel hangs up) is remembered and skipped. A session that can no longer be trusted (the peer
  closed or reset it, a reply line over the limit or cut off, no reply within
  ``COMMAND_TIMEOUT_S``, after which replies could no longer be matched to commands) raises
  :class:`AgiConnectionLost`: a warning, no traceback, and the connection is closed.
- Arguments from the dialplan that end up in commands are whitelisted: a prompt name must be a
  plain sound name (:data:`PROMPT_NAME`), else the default prompt plays; a timeout must be digits.
- ``FastAgiServer`` owns one named task per connection, refuses connections over
  ``max_connections`` at once, and ``close()`` cancels and awaits them all.

Routes:
- ``route``: where should this call go? Sets ``MEDAGENT_ROUTE`` to ``agent`` (→ ``Stasis``) or
  ``staff`` and ``MEDAGENT_REASON`` (``ok``, ``office_hours``, ``capacity``, ``unhealthy``).
- ``menu``: AGI-only operation: play a prompt (``agi_arg_1``), wait for one DTMF digit, set
  ``MEDAGENT_DIGIT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from panoramisk import fast_agi

from agent.config import AgiConfig, PracticeConfig, office_hours
from agent.core.office import route_call
from agent.log import get_logger

log = get_logger(__name__)

ENV_TIMEOUT_S = 5.0
ENV_LIMIT_BYTES = 16_384
"""The environment block, and any one reply line, may be this long (Asterisk's is about 600 bytes)."""
COMMAND_TIMEOUT_S = 30.0
DEFAULT_MAX_CONNECTIONS = 64
"""Open FastAGI sessions at once. Each call routed with ``AGI()`` holds one for well under a second
(``route``) or a few seconds (``menu``); more than this at once is a flood, not a busy practice."""
DEFAULT_MENU_PROMPT = "beep"
"""Played by ``menu`` when ``agi_arg_1`` is not a plain sound name."""

PROMPT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}(?:/[A-Za-z0-9_-]{1,64}){0,3}")
"""A sound name as Asterisk resolves it under its sounds directory: letters, digits, ``_`` and
``-``, up to three folders. No dots (so no ``..`` and no extension), no leading ``/`` (no absolute
paths), no spaces or quotes (``STREAM FILE`` takes it unquoted, then the escape digits)."""
_TIMEOUT_MS = re.compile(r"[0-9]{1,5}")
_MAX_TIMEOUT_MS = 60_000
_ENV_LINE = re.compile(rb"(agi_[A-Za-z0-9_]{1,64}): ?(.*)")
_STATUS_LINE = re.compile(r"[0-9]{3}(?:[ -]|$)")
_DTMF = {str(ord(c)): c for c in "0123456789*#ABCD"}


class AgiConnectionLost(Exception):
    """The session cannot go on (closed, reset, a reply we can no longer frame or match). The
    message says which, never what was received."""


def parse_environment(block: bytes, encoding: str = "utf-8") -> dict[str, str]:
    """The ``agi_*`` environment block (lines ending with an empty line) → its variables.

    Raises ``ValueError`` naming the first bad line by number, not its content."""
    lines = block.split(b"\n")
    while lines and lines[-1] in (b"", b"\r"):
        lines.pop()
    if not lines:
        raise ValueError("empty environment block")
    headers: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        match = _ENV_LINE.fullmatch(line.removesuffix(b"\r"))
        if match is None:
            raise ValueError(f"environment line {number} is not 'agi_<name>: <value>'")
        headers[match[1].decode("ascii")] = match[2].decode(encoding, "replace")
    return headers


class AgiRequest(fast_agi.Request):  # type: ignore[misc]  # panoramisk is untyped
    hung_up = False

    async def send_command(self, command: str) -> dict[str, Any]:
        verb = command.split()[0]
        try:
            result: dict[str, Any] = await asyncio.wait_for(
                super().send_command(command), COMMAND_TIMEOUT_S
            )
        except TimeoutError:
            # A late reply would be taken for the next command's: the session is over.
            raise AgiConnectionLost(f"no reply to {verb} within {COMMAND_TIMEOUT_S} s") from None
        except ValueError:
            # StreamReader.readline: a line over the limit (panoramisk reads a 520 usage line
            # itself). What follows cannot be framed.
            raise AgiConnectionLost(
                f"reply to {verb} longer than {ENV_LIMIT_BYTES} bytes"
            ) from None
        except (ConnectionError, OSError) as exc:
            raise AgiConnectionLost(f"{type(exc).__name__} while sending {verb}") from None
        return result

    async def _read_result(self) -> dict[str, Any]:
        while True:
            line = await self.reader.readline()
            if not line:
                raise AgiConnectionLost("Asterisk closed the connection")
            if not line.endswith(b"\n"):
                raise AgiConnectionLost("connection closed in the middle of a reply")
            text = line.decode(self.encoding, "replace").rstrip("\r\n")
            if text == "HANGUP":
                # Unsolicited notice; the reply to our command follows it.
                self.hung_up = True
                continue
            if not _STATUS_LINE.match(text):
                return {"error": "AGIGarbage", "msg": "unparseable reply line"}
            result: dict[str, Any] = fast_agi.parse_agi_result(text)
            return result


Endpoint = Callable[[AgiRequest], Awaitable[None]]


class AgiApplication(fast_agi.Application):  # type: ignore[misc]  # panoramisk is untyped
    def add_route(self, path: str, endpoint: Callable[[AgiRequest], Any]) -> None:
        if not asyncio.iscoroutinefunction(endpoint):
            sync = endpoint

            async def wrapped(request: AgiRequest) -> None:
                sync(request)

            endpoint = wrapped
        super().add_route(path, endpoint)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername"))
        try:
            try:
                env = await asyncio.wait_for(reader.readuntil(b"\n\n"), ENV_TIMEOUT_S)
            except (
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                TimeoutError,
                ConnectionError,
            ) as exc:
                log.warning(
                    "fastagi: bad or incomplete environment block, closing",
                    peer=peer,
                    error=type(exc).__name__,
                )
                return
            try:
                headers = parse_environment(env, self.default_encoding)
            except ValueError as exc:
                log.warning("fastagi: not an AGI environment, closing", peer=peer, error=str(exc))
                return
            script = headers.get("agi_network_script")
            route = self._route.get(script) if script else None
            if route is None:
                log.warning("fastagi: no route", script=(script or "")[:64], peer=peer)
                return
            request = AgiRequest(self, headers, reader, writer, self.default_encoding)
            try:
                await route(request)
            except AgiConnectionLost as exc:
                log.warning("fastagi: connection lost, closing", script=script, reason=str(exc))
            except Exception as exc:
                # A bug of ours: the traceback is wanted. The message is not logged (it may
                # quote what the peer sent).
                log.error(
                    "fastagi: route failed", script=script, error=type(exc).__name__, exc_info=exc
                )
        finally:
            # panoramisk never closes the writer; Asterisk keeps the socket open until we do.
            writer.close()


class CallCapacity(Protocol):
    """What the FastAGI ``route`` needs to know about the agent (the supervisor provides it)."""

    @property
    def healthy(self) -> bool: ...

    @property
    def active_calls(self) -> int: ...

    @property
    def max_calls(self) -> int: ...


class FastAgiServer:
    def __init__(
        self,
        cfg: AgiConfig,
        practice: PracticeConfig,
        capacity: CallCapacity,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        menu_default_prompt: str = DEFAULT_MENU_PROMPT,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if not PROMPT_NAME.fullmatch(menu_default_prompt):
            raise ValueError(
                f"menu_default_prompt is not a plain sound name: {menu_default_prompt!r}"
            )
        self.cfg = cfg
        self.practice = practice
        self.capacity = capacity
        self.max_connections = max_connections
        self.menu_default_prompt = menu_default_prompt
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._serial = 0
        self.rejected = 0
        """Connections refused because ``max_connections`` were open."""
        self.app = AgiApplication()
        self.app.add_route("route", self.route)
        self.app.add_route("menu", self.menu)

    @property
    def open_connections(self) -> int:
        return len(self._sessions)

    async def start(self) -> int:
        """Listen on the configured address; returns the bound port (0 in config = any free port)."""
        self._server = await asyncio.start_server(
            self._accept, self.cfg.bind_host, self.cfg.port, limit=ENV_LIMIT_BYTES
        )
        port: int = self._server.sockets[0].getsockname()[1]
        log.info("fastagi listening", host=self.cfg.bind_host, port=port)
        return port

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A plain callback, so each session is a task of ours (named, held, cancelled on close)
        rather than one asyncio's streams module creates and reports on by itself."""
        if len(self._sessions) >= self.max_connections or self._server is None:
            writer.close()
            self.rejected += 1
            count = self.rejected
            while count % 10 == 0:
                count //= 10
            if count == 1:
                log.warning(
                    "fastagi: too many connections, closing",
                    limit=self.max_connections,
                    rejected=self.rejected,
                )
            return
        self._serial += 1
        task = asyncio.get_running_loop().create_task(
            self._session(reader, writer), name=f"fastagi:{self._serial}"
        )
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.app.handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def close(self) -> None:
        """Stop listening, end every open session (cancel and wait), then return."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        if sessions:
            await asyncio.wait(sessions)
        if server is not None:
            await server.wait_closed()

    async def route(self, request: AgiRequest) -> None:
        decision = route_call(
            self._clock(),
            office_hours(self.practice),
            after_hours_only=self.practice.mode == "after_hours_only",
            healthy=self.capacity.healthy,
            active_calls=self.capacity.active_calls,
            max_calls=self.capacity.max_calls,
        )
        log.info(
            "fastagi route",
            route=decision.route,
            reason=decision.reason,
            channel=request.headers.get("agi_channel"),
        )
        await request.send_command(f"SET VARIABLE MEDAGENT_ROUTE {decision.route}")
        await request.send_command(f"SET VARIABLE MEDAGENT_REASON {decision.reason}")

    async def menu(self, request: AgiRequest) -> None:
        """``agi_arg_1``: the prompt (empty: none); ``agi_arg_2``: how long to wait, in ms."""
        prompt = request.headers.get("agi_arg_1", "")
        if prompt and not PROMPT_NAME.fullmatch(prompt):
            log.warning(
                "fastagi menu: prompt name refused, playing the default", length=len(prompt)
            )
            prompt = self.menu_default_prompt
        timeout_arg = request.headers.get("agi_arg_2", "")
        timeout_ms = 5000
        if _TIMEOUT_MS.fullmatch(timeout_arg) and 0 < int(timeout_arg) <= _MAX_TIMEOUT_MS:
            timeout_ms = int(timeout_arg)
        await request.send_command("ANSWER")
        if prompt:
            played = await request.send_command(f'STREAM FILE {prompt} "0123456789*#"')
            if "error" in played:
                log.warning("fastagi menu: prompt failed", prompt=prompt, error=played.get("error"))
        reply = await request.send_command(f"WAIT FOR DIGIT {timeout_ms}")
        value = reply.get("result", ("", ""))[0]
        # The ASCII code of the key pressed; anything else (0 = timeout, garbage) is no digit.
        digit = _DTMF.get(value, "none") if isinstance(value, str) else "none"
        await request.send_command(f"SET VARIABLE MEDAGENT_DIGIT {digit}")
