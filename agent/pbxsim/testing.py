"""A bare ARI probe for tests of the stand-in: plain aiohttp REST calls and an event reader.

Deliberately not the agent's ARI client: the stand-in is checked against the recordings with
nothing of ours in between. ``RtpPeer`` is a UDP socket playing the agent's externalMedia side.
"""

from __future__ import annotations

import asyncio
import json
import typing
from typing import Any

import aiohttp

from agent.core.rtp import RtpPacket


class AriProbe:
    def __init__(self, base_url: str, username: str = "medagent", password: str = "secret") -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth(username, password)}
        )
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.all_events: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, app: str = "medical-agent") -> None:
        self.closed.clear()
        self.ws = await self.session.ws_connect(
            self.base_url + "/events", params={"app": app, "subscribeAll": "false"}
        )
        self._reader = asyncio.get_running_loop().create_task(
            self._read(self.ws), name="probe-events"
        )

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    event = json.loads(msg.data)
                    self.all_events.append(event)
                    self.events.put_nowait(event)
        finally:
            self.close_code = ws.close_code
            self.closed.set()

    async def request(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        body = params.pop("json", None)
        query = {k: str(v) for k, v in params.items()}
        async with self.session.request(
            method, self.base_url + path, params=query, json=body
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def event(self, type_: str, timeout_s: float = 3.0, **match: Any) -> dict[str, Any]:
        """The next event of ``type_`` (others before it are skipped) whose channel id matches."""

        async def _next() -> dict[str, Any]:
            while True:
                ev = await self.events.get()
                if ev["type"] != type_:
                    continue
                ch = ev.get("channel") or ev.get("peer") or {}
                if all(ch.get(k) == v or ev.get(k) == v for k, v in match.items()):
                    return ev

        return await asyncio.wait_for(_next(), timeout_s)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.session.close()


class RtpPeer(asyncio.DatagramProtocol):
    """The agent's side of externalMedia: records what arrives, sends what it is told."""

    def __init__(self) -> None:
        self.received: list[tuple[float, RtpPacket, tuple[str, int]]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.arrived = asyncio.Event()

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0) -> RtpPeer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=(host, port))
        return peer

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport is not registered as a DatagramTransport subclass.
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((asyncio.get_running_loop().time(), RtpPacket.parse(data), addr))
        self.arrived.set()

    def send(self, packet: RtpPacket | bytes, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(packet if isinstance(packet, bytes) else packet.serialize(), to)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
