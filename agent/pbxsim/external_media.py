"""The UDP side of an externalMedia channel (``UnicastRTP/…``): RTP in from the agent's media
socket, RTP out to it. The channel itself is made by ``originate.Originator.external_media``; the
packet rules (strict source learning, SSRC and sequence handling) are ``media.py``'s."""

from __future__ import annotations

import asyncio
import typing
from typing import TYPE_CHECKING

from agent.core.rtp import SEQ_MOD
from agent.pbxsim.media import Frame, RtpReceiver, RtpSender

if TYPE_CHECKING:  # annotations only: the engine imports this module
    from agent.pbxsim.engine import PbxSim
    from agent.pbxsim.model import SimChannel


class ExternalMediaPort(asyncio.DatagramProtocol):
    """The UDP side of an externalMedia channel (``UnicastRTP/…``)."""

    def __init__(self, sim: PbxSim, remote: tuple[str, int]) -> None:
        self._sim = sim
        self.remote = remote
        self.channel: SimChannel | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.receiver = RtpReceiver()
        rng = sim.rng
        self.sender = RtpSender(
            ssrc=rng.getrandbits(32),
            next_seq=rng.randrange(SEQ_MOD),
            ts_base=rng.getrandbits(32),
            new_ssrc=[rng.getrandbits(32) for _ in range(8)],
        )
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport is not registered as a DatagramTransport subclass.
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        frame = self.receiver.receive(data, (addr[0], addr[1]))
        if frame is not None and self.channel is not None:
            self._sim.bridging.media_in(self.channel, frame)

    def send(self, frame: Frame, resync: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if resync:
            self.sender.resync()
        self.transport.sendto(self.sender.packet(frame).serialize(), self.remote)
        self.sent += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
