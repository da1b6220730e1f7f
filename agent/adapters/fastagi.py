"""FastAGI server (panoramisk), for sites that route calls with ``AGI(agi://…)``.

panoramisk 1.4 is the design card's package. Its FastAGI code predates Python 3.11 in two places, so
this module subclasses it minimally (see README "Dependencies"):

1. ``Application.add_route`` wraps plain functions with ``asyncio.coroutine``, which Python 3.11
   removed → we wrap them in a coroutine ourselves.
2. ``Application.handler`` reads the environment block with ``while b"\\n\\n" not in buffer: buffer +=
   await reader.read()``, which spins forever on EOF (``read`` returns ``b""`` at once), freezing the
   whole event loop when a client sends half a block and disconnects → we read the block with
   ``readuntil`` under a timeout and a size limit, then hand panoramisk a reader that replays it.

We also harden ``Request.send_command``: a reply that is not an AGI status line (garbage) or no reply
within a timeout becomes an error result instead of an exception, and Asterisk's unsolicited
``HANGUP`` line (sent once when the channel hangs up) is remembered and skipped.

Routes:
- ``route``: where should this call go? Sets ``MEDAGENT_ROUTE`` to ``agent`` (→ ``Stasis``) or
  ``staff`` and ``MEDAGENT_REASON`` (``ok``, ``office_hours``, ``capacity``, ``unhealthy``).
- ``menu``: AGI-only operation: play a prompt (``agi_arg_1``), wait for one DTMF digit, set
  ``MEDAGENT_DIGIT``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from panoramisk import fast_agi

from agent.config import AgiConfig, PracticeConfig
from agent.core.office import route_call
from agent.log import get_logger

log = get_logger(__name__)

ENV_TIMEOUT_S = 5.0
ENV_LIMIT_BYTES = 16_384
COMMAND_TIMEOUT_S = 30.0


class _Replay(asyncio.StreamReader):
    """A reader that first yields the already-read environment block, then reads the socket."""

    def __init__(self, head: bytes, rest: asyncio.StreamReader) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    async def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = (self._head, b"") if n < 0 else (self._head[:n], self._head[n:])
            return out
        return await self._rest.read(n)

    async def readline(self) -> bytes:
        return await self._rest.readline()


class AgiRequest(fast_agi.Request):  # type: ignore[misc]  # panoramisk is untyped
    hung_up = False

    async def send_command(self, command: str) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await asyncio.wait_for(
                super().send_command(command), COMMAND_TIMEOUT_S
            )
        except TimeoutError:
            return {
                "error": "AGITimeout",
                "msg": f"no reply to {command.split()[0]} within {COMMAND_TIMEOUT_S} s",
            }
        except (ValueError, UnicodeDecodeError) as exc:
            return {"error": "AGIGarbage", "msg": f"unparseable reply: {exc}"}
        return result

    async def _read_result(self) -> dict[str, Any]:
        while True:
            line = await self.reader.readline()
            if not line:
                return {"error": "AGIClosed", "msg": "Asterisk closed the connection"}
            text = line.decode(self.encoding).rstrip("\r\n")
            if text == "HANGUP":
                # Unsolicited notice; the reply to our command follows it.
                self.hung_up = True
                continue
            if not text[:3].isdigit():
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
        peer = writer.get_extra_info("peername")
        try:
            try:
                env = await asyncio.wait_for(reader.readuntil(b"\n\n"), ENV_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
                log.warning(
                    "fastagi: bad or incomplete environment block, closing",
                    peer=str(peer),
                    error=type(exc).__name__,
                )
                return
            headers = dict(
                line.split(": ", 1)
                for line in env.decode(self.default_encoding, "replace").splitlines()
                if ": " in line
            )
            script = headers.get("agi_network_script")
            route = self._route.get(script) if script else None
            if route is None:
                log.warning("fastagi: no route", script=script, peer=str(peer))
                return
            request = AgiRequest(self, headers, reader, writer, self.default_encoding)
            try:
                await route(request)
            except Exception as exc:
                log.error("fastagi: route failed", script=script, error=repr(exc), exc_info=exc)
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
    ) -> None:
        self.cfg = cfg
        self.practice = practice
        self.capacity = capacity
        self._clock = clock
        self._server: asyncio.Server | None = None
        self.app = AgiApplication()
        self.app.add_route("route", self.route)
        self.app.add_route("menu", self.menu)

    async def start(self) -> int:
        """Listen on the configured address; returns the bound port (0 in config = any free port)."""
        self._server = await asyncio.start_server(
            self.app.handler, self.cfg.bind_host, self.cfg.port, limit=ENV_LIMIT_BYTES
        )
        port: int = self._server.sockets[0].getsockname()[1]
        log.info("fastagi listening", host=self.cfg.bind_host, port=port)
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def route(self, request: AgiRequest) -> None:
        decision = route_call(
            self._clock(),
            self.practice,
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
        prompt = request.headers.get("agi_arg_1", "")
        timeout_ms = request.headers.get("agi_arg_2", "5000")
        if not timeout_ms.isdigit():
            timeout_ms = "5000"
        await request.send_command("ANSWER")
        if prompt:
            played = await request.send_command(f'STREAM FILE {prompt} "0123456789*#"')
            if "error" in played:
                log.warning("fastagi menu: prompt failed", prompt=prompt, error=played.get("error"))
        reply = await request.send_command(f"WAIT FOR DIGIT {timeout_ms}")
        digit = ""
        value = reply.get("result", ("", ""))[0]
        if value.isdigit() and int(value) > 0:
            digit = chr(int(value))
        await request.send_command(f"SET VARIABLE MEDAGENT_DIGIT {digit or 'none'}")
