"""The RTP media edge: one UDP socket per call, between Asterisk's externalMedia channel and us.

Thin asyncio plumbing around the pure core: datagrams are parsed (``core.rtp``), fed to the
reorder buffer (``core.jitter``) and come out as ordered 20 ms μ-law frames on ``frames()``;
prompts are queued on the pacer (``core.pacer``) and one clock task per call sends its packets at
absolute ``loop.time()`` deadlines, so sleep overshoot never turns into drift.

Inbound rules follow what Asterisk itself does with an externalMedia port (see
``asterisk-reference/README.md``): datagrams from any address but the learned/configured remote are
dropped (strict RTP), malformed ones are logged and dropped (never the call), PT 8 is transcoded
from A-law, any other payload type is dropped. Every drop is counted in ``MediaStats``.

The remote is ARI externalMedia's ``channelvars.UNICASTRTP_LOCAL_ADDRESS``/``_PORT``: where Asterisk
sends from and expects our audio. Until it is set we learn it from the first datagram (symmetric
RTP) and then hold to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.config import MediaConfig
from agent.core import g711
from agent.core.jitter import JitterBuffer, JitterFrame, JitterStats
from agent.core.pacer import FRAME_S, Pacer, PacerStats, split_frames
from agent.core.rtp import PT_PCMA, PT_PCMU, RtpPacket
from agent.errors import MediaError
from agent.log import get_logger

log = get_logger(__name__)

Address = tuple[str, int]

SEND_LEAD_S = 0.0005
"""How early a packet may leave before its slot's deadline (see ``RtpSession._run_clock``)."""

# Frames kept for a consumer that has fallen behind: 10 s. Older ones are dropped and counted,
# so a stuck consumer cannot grow memory without bound.
DEFAULT_MAX_QUEUED_FRAMES = 500


class PortPool:
    """Hands out free UDP ports in ``[port_min, port_max]`` as sockets already bound to them.

    Binding is the test of "free": a port another process holds is skipped. The socket itself is
    handed over, so nobody can take the port between the test and its use.
    """

    def __init__(self, port_min: int, port_max: int, host: str = "127.0.0.1") -> None:
        if not 0 < port_min <= port_max <= 65535:
            raise ValueError(f"bad RTP port range {port_min}-{port_max}")
        self.port_min = port_min
        self.port_max = port_max
        self.host = host
        self._in_use: set[int] = set()
        self._cursor = port_min
        """Next port to try: rotating, so a just-released port is not reused at once and late
        packets of an old call do not land in a new one."""

    @classmethod
    def from_config(cls, cfg: MediaConfig) -> PortPool:
        return cls(cfg.port_min, cfg.port_max, cfg.bind_host)

    @property
    def in_use(self) -> frozenset[int]:
        return frozenset(self._in_use)

    def acquire(self) -> socket.socket:
        """A non-blocking UDP socket bound to ``host`` and a free port. Raises ``MediaError``."""
        size = self.port_max - self.port_min + 1
        for i in range(size):
            port = self.port_min + (self._cursor - self.port_min + i) % size
            if port in self._in_use:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            self._in_use.add(port)
            self._cursor = port + 1 if port < self.port_max else self.port_min
            return sock
        raise MediaError(f"no free RTP port in {self.host}:{self.port_min}-{self.port_max}")

    def release(self, port: int) -> None:
        self._in_use.discard(port)


@dataclass
class MediaStats:
    """Counters of one session, for metrics. ``jitter`` and ``pacer`` are the cores' own."""

    datagrams: int = 0
    wrong_source: int = 0
    malformed: int = 0
    transcoded_alaw: int = 0
    unsupported_payload: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    """Frames discarded because the consumer fell more than the queue bound behind."""
    packets_sent: int = 0
    unsent_no_remote: int = 0
    """Pacer slots that passed before the remote address was known."""
    send_errors: int = 0
    jitter: JitterStats = field(default_factory=JitterStats)
    pacer: PacerStats = field(default_factory=PacerStats)


def _log_every(count: int) -> bool:
    """Log the 1st, 10th, 100th… occurrence: a flood of bad datagrams must not flood the log."""
    while count % 10 == 0:
        count //= 10
    return count == 1


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, session: RtpSession) -> None:
        self._session = session
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._session._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that is gone: not fatal, Asterisk may be restarting.
        self._session.stats.send_errors += 1
        if _log_every(self._session.stats.send_errors):
            log.warning("rtp socket error", error=repr(exc), count=self._session.stats.send_errors)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class RtpSession:
    """One call's RTP: ordered inbound frames, paced outbound prompts. Create with ``open``."""

    def __init__(
        self,
        *,
        call_id: str,
        pool: PortPool,
        sock: socket.socket,
        cfg: MediaConfig,
        remote: Address | None,
        rng: random.Random,
        keep_raw: bool,
        max_queued_frames: int,
    ) -> None:
        self.call_id = call_id
        self.cfg = cfg
        self._pool = pool
        self._sock = sock
        self.local_address: Address = sock.getsockname()[:2]
        self.remote: Address | None = remote
        self._keep_raw = keep_raw
        self.raw_received: list[RtpPacket] = []
        """With ``keep_raw``: every parsed packet from the remote, exactly as received (tests)."""
        self._max_queued = max_queued_frames
        self._jitter = JitterBuffer(cfg.jitter_delay_ms)
        loop = asyncio.get_running_loop()
        self._loop = loop
        # The first slot goes out one frame from now: Asterisk is ready once it gave us its address.
        self._pacer = Pacer(
            ssrc=rng.getrandbits(32),
            initial_sequence_number=rng.getrandbits(16),
            initial_timestamp=rng.getrandbits(32),
            start=loop.time() + FRAME_S,
            max_catchup=max(1, cfg.max_stall_catchup_ms // round(FRAME_S * 1000)),
        )
        self.stats = MediaStats(jitter=self._jitter.stats, pacer=self._pacer.stats)
        self._frames: asyncio.Queue[JitterFrame | None] = asyncio.Queue()
        self._waiters: dict[str, asyncio.Future[bool]] = {}
        self._tags: dict[str, str] = {}
        self._keys = itertools.count(1)
        self._drained = asyncio.Event()
        self._closed = False
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Protocol | None = None
        self._clock: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        cfg: MediaConfig,
        pool: PortPool,
        call_id: str,
        *,
        remote: Address | None = None,
        rng: random.Random | None = None,
        keep_raw: bool = False,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
    ) -> RtpSession:
        """Bind a port from ``pool`` and start the media clock."""
        sock = pool.acquire()
        try:
            session = cls(
                call_id=call_id,
                pool=pool,
                sock=sock,
                cfg=cfg,
                remote=remote,
                rng=rng or random.SystemRandom(),
                keep_raw=keep_raw,
                max_queued_frames=max_queued_frames,
            )
            transport, protocol = await session._loop.create_datagram_endpoint(
                lambda: _Protocol(session), sock=sock
            )
        except BaseException:
            pool.release(sock.getsockname()[1])
            sock.close()
            raise
        session._transport = transport
        session._protocol = protocol
        session._clock = asyncio.get_running_loop().create_task(
            session._run_clock(), name=f"media-clock:{call_id}"
        )
        log.info("rtp session open", call_id=call_id, local=session.local_address, remote=remote)
        return session

    @property
    def local_port(self) -> int:
        return self.local_address[1]

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def external_host(self) -> str:
        """``host:port`` for ARI ``channels/externalMedia?external_host=``: where Asterisk sends."""
        return f"{self.cfg.advertise_host or self.local_address[0]}:{self.local_port}"

    @property
    def schedule_start(self) -> float:
        """``loop.time()`` at which outbound slot 0 was due; slot n is due 20 ms * n later."""
        return self._pacer.start

    @property
    def initial_timestamp(self) -> int:
        """RTP timestamp of slot 0 (with ``schedule_start``, maps a sent packet to its deadline)."""
        return self._pacer.initial_timestamp

    def set_remote(self, host: str, port: int) -> None:
        """Where Asterisk sends from and listens (``UNICASTRTP_LOCAL_ADDRESS``/``_PORT``)."""
        self.remote = (host, port)
        log.info("rtp remote set", call_id=self.call_id, remote=self.remote)

    # -- inbound -------------------------------------------------------------------------------

    async def frames(self) -> AsyncIterator[JitterFrame]:
        """Ordered 20 ms μ-law frames (RECEIVED, LOST or FILL) until the session closes."""
        while True:
            frame = await self._frames.get()
            if frame is None:
                # Leave the end marker for any other reader.
                self._frames.put_nowait(None)
                return
            yield frame

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        stats = self.stats
        stats.datagrams += 1
        if self.remote is None:
            self.remote = addr
            log.info("rtp remote learned", call_id=self.call_id, remote=addr)
        elif addr != self.remote:
            stats.wrong_source += 1
            if _log_every(stats.wrong_source):
                log.warning(
                    "rtp from unexpected source dropped",
                    call_id=self.call_id,
                    source=addr,
                    expected=self.remote,
                    count=stats.wrong_source,
                )
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError as exc:
            stats.malformed += 1
            if _log_every(stats.malformed):
                log.warning(
                    "malformed rtp dropped",
                    call_id=self.call_id,
                    error=str(exc),
                    size=len(data),
                    count=stats.malformed,
                )
            return
        if self._keep_raw:
            self.raw_received.append(packet)
        if packet.payload_type == PT_PCMA:
            packet = dataclasses.replace(
                packet, payload_type=PT_PCMU, payload=g711.alaw_to_ulaw(packet.payload)
            )
            stats.transcoded_alaw += 1
        elif packet.payload_type != PT_PCMU:
            stats.unsupported_payload += 1
            if _log_every(stats.unsupported_payload):
                log.warning(
                    "rtp payload type not supported, dropped",
                    call_id=self.call_id,
                    payload_type=packet.payload_type,
                    count=stats.unsupported_payload,
                )
            return
        now = self._loop.time()
        self._jitter.push(packet, now)
        self._deliver(self._jitter.pop(now))

    def _deliver(self, frames: list[JitterFrame]) -> None:
        for frame in frames:
            if self._frames.qsize() >= self._max_queued:
                self._frames.get_nowait()
                self.stats.frames_dropped += 1
            self._frames.put_nowait(frame)
            self.stats.frames_delivered += 1

    # -- outbound ------------------------------------------------------------------------------

    async def play(self, audio: bytes | Iterable[bytes], tag: str) -> bool:
        """Queue a prompt (μ-law bytes, or 160-byte frames) behind what is queued; wait for it.

        True when every frame was sent, False when ``flush`` (barge-in) or ``close`` cut it off.
        """
        if self._closed or self._pacer.drained:
            return False
        frames = split_frames(audio) if isinstance(audio, bytes | bytearray) else list(audio)
        key = f"{next(self._keys)}:{tag}"
        future: asyncio.Future[bool] = self._loop.create_future()
        self._waiters[key] = future
        self._tags[key] = tag
        try:
            self._pacer.enqueue(frames, key)
            self._resolve_done()
            return await future
        finally:
            self._waiters.pop(key, None)
            self._tags.pop(key, None)

    def flush(self) -> list[str]:
        """Drop queued audio at once (barge-in); returns the tags of the prompts cut off."""
        keys = self._pacer.flush()
        tags = [self._tags.get(key, key) for key in keys]
        self._resolve_done()
        return tags

    async def drain(self) -> None:
        """The goodbye: wait until everything queued has been sent; then the stream stops."""
        if self._closed:
            return
        self._pacer.drain()
        self._resolve_done()
        await self._drained.wait()

    def _resolve_done(self) -> None:
        for done in self._pacer.pop_done():
            future = self._waiters.get(done.tag)
            if future is not None and not future.done():
                future.set_result(done.played)
        if self._pacer.drained:
            self._drained.set()

    async def _run_clock(self) -> None:
        """Send due packets at absolute deadlines and let the jitter buffer time out its gaps.

        The clock wakes at pacer deadlines (every 20 ms) and at the jitter buffer's own deadline
        as known when it went to sleep; one that moved earlier because of a packet that arrived
        meanwhile is served at the next wake-up, at most one frame later.

        The loop's timers have 1 ms granularity (epoll rounds its timeout up), so a wake-up lands
        0-1 ms after the time asked for. Asking for ``SEND_LEAD_S`` before the deadline and
        sending then centres the error on the deadline instead of always being late.
        """
        loop = self._loop
        while True:
            now = loop.time()
            wake = now + FRAME_S if self._pacer.drained else self._pacer.next_deadline()
            jitter_deadline = self._jitter.next_deadline()
            if jitter_deadline is not None:
                wake = min(wake, jitter_deadline)
            if wake - SEND_LEAD_S > now:
                await asyncio.sleep(wake - SEND_LEAD_S - now)
            now = loop.time()
            self._send(self._pacer.due(now + SEND_LEAD_S))
            self._resolve_done()
            self._deliver(self._jitter.pop(now))

    def _send(self, packets: list[RtpPacket]) -> None:
        if not packets:
            return
        if self.remote is None or self._transport is None:
            self.stats.unsent_no_remote += len(packets)
            return
        for packet in packets:
            self._transport.sendto(packet.serialize(), self.remote)
            self.stats.packets_sent += 1

    # -- lifetime ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the clock (cancel-and-wait), close the socket, give the port back. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._clock is not None:
            self._clock.cancel()
            await asyncio.wait({self._clock})
        for future in self._waiters.values():
            if not future.done():
                future.set_result(False)
        self._drained.set()
        self._deliver(self._jitter.drain(self._loop.time()))
        self._frames.put_nowait(None)
        if self._transport is not None and self._protocol is not None:
            self._transport.close()
            await self._protocol.closed
        else:
            self._sock.close()
        self._pool.release(self.local_port)
        log.info("rtp session closed", call_id=self.call_id, **_summary(self.stats))


def _summary(stats: MediaStats) -> dict[str, int]:
    """Flat counters for the closing log line (no payloads: nothing about the caller)."""
    return {
        "datagrams": stats.datagrams,
        "wrong_source": stats.wrong_source,
        "malformed": stats.malformed,
        "packets_sent": stats.packets_sent,
        "lost": stats.jitter.lost,
        "late": stats.jitter.late,
        "duplicates": stats.jitter.duplicates,
        "dropped_slots": stats.pacer.dropped_slots,
    }
