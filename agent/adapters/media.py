"""The RTP media edge: one UDP socket per call, between Asterisk's externalMedia channel and us.

Thin asyncio plumbing around the pure core: datagrams are parsed (``core.rtp``), fed to the
reorder buffer (``core.jitter``) and come out as ordered 20 ms μ-law frames on ``frames()``;
prompts are queued on the pacer (``core.pacer``) and one clock task per call sends its packets at
absolute ``loop.time()`` deadlines, so sleep overshoot never turns into drift.

Inbound rules follow what Asterisk itself does with an externalMedia port (see
``asterisk-reference/README.md``), applied cheapest first (``core.admission``); every drop is
counted in ``MediaStats`` by its reason and logged at the 1st, 10th, 100th… occurrence:

- ``no_remote``: nothing is accepted before ``set_remote``. The remote is ARI externalMedia's
  ``channelvars.UNICASTRTP_LOCAL_ADDRESS``/``_PORT``: where Asterisk sends from and expects our
  audio. We do not learn it from the first datagram: a stranger who guessed the port first would
  become "Asterisk" for the whole call. Nor do we buffer early datagrams to replay once the remote
  is known: Asterisk sends nothing before the channel is bridged, which the call does after
  ``set_remote``, so there is nothing of Asterisk's to keep, only a stranger's to hold on to.
- ``wrong_source``: only the remote's address and port (strict RTP). Once the remote is set the
  socket is also ``connect()``-ed to it, so the kernel drops other senders' datagrams before they
  take room in the socket buffer: a flood from elsewhere cannot crowd Asterisk's packets out (what
  still reaches us, queued before the connect, is dropped here).
- ``rate``: a token bucket per call (4x the 50 packets/s Asterisk sends), so a flood from the
  remote's address itself costs bounded work.
- ``malformed``: not RTP, or a payload longer than ``MAX_PACKET_SAMPLES``; ``payload_type``: not
  PCMU or PCMA (PT 8 is transcoded from A-law, as Asterisk accepts it too).
- ``wrong_ssrc``: the first SSRC is latched; a new one is accepted only as Asterisk changes it
  (marker bit on its first packet, or a run of consecutive packets; see ``SsrcLatch``).

Whatever the far end's packet size (10, 20, 30, 40 ms…), ``frames()`` yields 20 ms frames: the
jitter buffer re-frames.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import itertools
import random
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.config import MediaConfig
from agent.core import g711
from agent.core.admission import DropReason, SsrcLatch, TokenBucket
from agent.core.frames import FRAME_S
from agent.core.jitter import MAX_PACKET_SAMPLES, JitterBuffer, JitterFrame, JitterStats
from agent.core.pacer import Pacer, PacerStats, split_frames
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

DEFAULT_RATE_LIMIT_PPS = 200.0
"""Inbound packets per second a call accepts on average: 4x what Asterisk sends at 20 ms (2x at
10 ms packets)."""
DEFAULT_RATE_BURST = 200
"""Packets accepted at once above the rate: the backlog of a 4 s network stall at 20 ms."""


class PortPool:
    """Hands out free UDP ports in ``[port_min, port_max]`` as sockets already bound to them.

    Binding is the test of "free": a port another process holds is skipped. The socket itself is
    handed over, so nobody can take the port between the test and its use.
    """

    def __init__(
        self,
        port_min: int,
        port_max: int,
        host: str = "127.0.0.1",
        *,
        rng: random.Random | None = None,
        quarantine: int | None = None,
    ) -> None:
        if not 0 < port_min <= port_max <= 65535:
            raise ValueError(f"bad RTP port range {port_min}-{port_max}")
        self.port_min = port_min
        self.port_max = port_max
        self.host = host
        self._in_use: set[int] = set()
        # Ports are drawn at random, so nobody can tell the next call's port from the last one.
        self._rng = rng or random.SystemRandom()
        size = port_max - port_min + 1
        self._recent: deque[int] = deque(
            maxlen=quarantine if quarantine is not None else max(1, min(64, size // 2))
        )
        """Ports released last, oldest first: not handed out again while any other port is free,
        so late packets of an old call do not land in a new one."""

    @classmethod
    def from_config(cls, cfg: MediaConfig) -> PortPool:
        return cls(cfg.port_min, cfg.port_max, cfg.bind_host)

    @property
    def in_use(self) -> frozenset[int]:
        return frozenset(self._in_use)

    def acquire(self) -> socket.socket:
        """A non-blocking UDP socket bound to ``host`` and a free port. Raises ``MediaError``.

        A few random draws first (cheap however wide the range), then every port from a random
        offset (a nearly full range still finds its last free port), then the recently released
        ones, oldest first (better a reused port than a refused call)."""
        size = self.port_max - self.port_min + 1
        tried: set[int] = set()
        recent = set(self._recent)
        for _ in range(min(size, 32)):
            port = self._rng.randint(self.port_min, self.port_max)
            if port in tried or port in self._in_use or port in recent:
                continue
            tried.add(port)
            sock = self._bind(port)
            if sock is not None:
                return sock
        start = self._rng.randrange(size)
        for i in range(size):
            port = self.port_min + (start + i) % size
            if port in tried or port in self._in_use or port in recent:
                continue
            sock = self._bind(port)
            if sock is not None:
                return sock
        for port in list(self._recent):
            if port not in self._in_use:
                sock = self._bind(port)
                if sock is not None:
                    return sock
        raise MediaError(f"no free RTP port in {self.host}:{self.port_min}-{self.port_max}")

    def _bind(self, port: int) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        self._in_use.add(port)
        if port in self._recent:
            self._recent.remove(port)
        return sock

    def release(self, port: int) -> None:
        if port in self._in_use:
            self._in_use.discard(port)
            self._recent.append(port)


@dataclass
class MediaStats:
    """Counters of one session, for metrics. ``jitter`` and ``pacer`` are the cores' own."""

    datagrams: int = 0
    no_remote: int = 0
    """Datagrams dropped because they came before ``set_remote`` (reason ``no_remote``)."""
    wrong_source: int = 0
    """Datagrams from another address than the remote that reached us (``wrong_source``); once
    the socket is connected the kernel drops those without counting."""
    rate_limited: int = 0
    """Datagrams from the remote over the per-call rate (``rate``)."""
    malformed: int = 0
    """Not RTP, or a payload over ``MAX_PACKET_SAMPLES`` (``malformed``)."""
    unsupported_payload: int = 0
    """Payload types other than PCMU and PCMA (``payload_type``)."""
    wrong_ssrc: int = 0
    """Packets of another SSRC than the latched one (``wrong_ssrc``)."""
    ssrc_changes: int = 0
    """New SSRCs accepted after the first (Asterisk changed its source)."""
    transcoded_alaw: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    """Frames discarded because the consumer fell more than the queue bound behind."""
    packets_sent: int = 0
    unsent_no_remote: int = 0
    """Pacer slots that passed before the remote address was known."""
    send_errors: int = 0
    jitter: JitterStats = field(default_factory=JitterStats)
    pacer: PacerStats = field(default_factory=PacerStats)

    def dropped(self) -> dict[str, int]:
        """Inbound drops by reason (the ``reason`` label of ``medagent_rtp_dropped_total``)."""
        return {reason.value: getattr(self, _DROP_FIELDS[reason]) for reason in DropReason}


_DROP_FIELDS: dict[DropReason, str] = {
    DropReason.NO_REMOTE: "no_remote",
    DropReason.WRONG_SOURCE: "wrong_source",
    DropReason.RATE: "rate_limited",
    DropReason.MALFORMED: "malformed",
    DropReason.PAYLOAD_TYPE: "unsupported_payload",
    DropReason.WRONG_SSRC: "wrong_ssrc",
}
"""The ``MediaStats`` field that counts each drop reason."""


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
        rate_limit_pps: float = DEFAULT_RATE_LIMIT_PPS,
        rate_burst: int = DEFAULT_RATE_BURST,
    ) -> None:
        self.call_id = call_id
        self.cfg = cfg
        self._pool = pool
        self._sock = sock
        self.local_address: Address = sock.getsockname()[:2]
        self.remote: Address | None = _normalized(remote) if remote is not None else None
        self._keep_raw = keep_raw
        self.raw_received: list[RtpPacket] = []
        """With ``keep_raw``: every parsed packet from the remote, exactly as received (tests)."""
        self._max_queued = max_queued_frames
        self._jitter = JitterBuffer(cfg.jitter_delay_ms)
        self._bucket = TokenBucket(rate_per_s=rate_limit_pps, burst=rate_burst)
        self._latch = SsrcLatch()
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
        self._ended = False
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
        rate_limit_pps: float = DEFAULT_RATE_LIMIT_PPS,
        rate_burst: int = DEFAULT_RATE_BURST,
    ) -> RtpSession:
        """Bind a port from ``pool`` and start the media clock.

        ``remote``: Asterisk's RTP address when already known (else call ``set_remote``).
        ``rate_limit_pps``/``rate_burst``: the inbound token bucket (packets/s, packets)."""
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
                rate_limit_pps=rate_limit_pps,
                rate_burst=rate_burst,
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
        if session.remote is not None:
            session._connect()
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
        """Where Asterisk sends from and listens (``UNICASTRTP_LOCAL_ADDRESS``/``_PORT``).

        Until this is called every inbound datagram is dropped; from then on only this address's
        are accepted. A different address than before starts the SSRC latch afresh."""
        remote = _normalized((host, port))
        if remote != self.remote:
            self._latch.reset()
        self.remote = remote
        log.info("rtp remote set", call_id=self.call_id, remote=self.remote)
        self._connect()

    def _connect(self) -> None:
        """Let the kernel drop everyone else's datagrams (see the module docstring). Sending with
        an explicit address on a connected UDP socket is allowed, so the transport is unaffected."""
        if self.remote is None or self._closed:
            return
        try:
            self._sock.connect(self.remote)
        except OSError as exc:
            # Not fatal: the check in _on_datagram still drops strangers, only later.
            log.warning(
                "rtp socket could not be connected to the remote",
                call_id=self.call_id,
                remote=self.remote,
                error=type(exc).__name__,
            )

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

    async def next_frame(self, timeout_s: float) -> JitterFrame | None:
        """The next frame, or ``None`` when none came within ``timeout_s`` or the session has
        closed (``ended`` says which). A reader that must notice a pause in the stream waits
        here: a timeout on ``anext`` of ``frames()`` would finish that generator."""
        if self._ended:
            return None
        try:
            async with asyncio.timeout(timeout_s):
                frame = await self._frames.get()
        except TimeoutError:
            return None
        if frame is None:
            self._ended = True
            self._frames.put_nowait(None)  # the end marker stays for any other reader
        return frame

    @property
    def ended(self) -> bool:
        """The stream is over: the session closed and every frame before that was read."""
        return self._ended

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        self.stats.datagrams += 1
        if self.remote is None:
            self._drop(
                DropReason.NO_REMOTE, "rtp before the remote was known dropped", size=len(data)
            )
            return
        if addr != self.remote:
            self._drop(
                DropReason.WRONG_SOURCE,
                "rtp from unexpected source dropped",
                source=addr,
                expected=self.remote,
            )
            return
        now = self._loop.time()
        if not self._bucket.allow(now):
            self._drop(DropReason.RATE, "rtp rate limit exceeded, dropped")
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError as exc:
            # Parse errors name sizes and fields, never payload bytes.
            self._drop(
                DropReason.MALFORMED, "malformed rtp dropped", error=str(exc), size=len(data)
            )
            return
        if self._keep_raw:
            self.raw_received.append(packet)
        if packet.payload_type not in (PT_PCMU, PT_PCMA):
            self._drop(
                DropReason.PAYLOAD_TYPE,
                "rtp payload type not supported, dropped",
                payload_type=packet.payload_type,
            )
            return
        if len(packet.payload) > MAX_PACKET_SAMPLES:
            self._drop(
                DropReason.MALFORMED,
                "malformed rtp dropped",
                error=f"RTP payload too long: {len(packet.payload)} bytes > {MAX_PACKET_SAMPLES}",
                size=len(data),
            )
            return
        changes = self._latch.changes
        if not self._latch.admit(packet):
            self._drop(DropReason.WRONG_SSRC, "rtp from unexpected ssrc dropped")
            return
        if self._latch.changes != changes:
            self.stats.ssrc_changes += 1
            log.info("rtp ssrc changed", call_id=self.call_id, marker=packet.marker)
        if packet.payload_type == PT_PCMA:
            packet = dataclasses.replace(
                packet, payload_type=PT_PCMU, payload=g711.alaw_to_ulaw(packet.payload)
            )
            self.stats.transcoded_alaw += 1
        self._jitter.push(packet, now)
        self._deliver(self._jitter.pop(now))

    def _drop(self, reason: DropReason, message: str, **fields: Any) -> None:
        name = _DROP_FIELDS[reason]
        count: int = getattr(self.stats, name) + 1
        setattr(self.stats, name, count)
        if _log_every(count):
            log.warning(message, call_id=self.call_id, reason=reason.value, count=count, **fields)

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
        # Everything that frees the port happens whatever becomes of this coroutine: a call
        # cancelled during its own teardown (the supervisor reaps it) must not keep the port.
        try:
            if self._clock is not None:
                self._clock.cancel()
                await asyncio.wait({self._clock})
        finally:
            for future in self._waiters.values():
                if not future.done():
                    future.set_result(False)
            self._drained.set()
            self._deliver(self._jitter.drain(self._loop.time()))
            self._frames.put_nowait(None)
            if self._transport is not None:
                self._transport.close()  # the socket goes with it
            else:
                self._sock.close()
            self._pool.release(self.local_port)
        if self._protocol is not None:
            await self._protocol.closed
        log.info("rtp session closed", call_id=self.call_id, **_summary(self.stats))


def _normalized(address: Address) -> Address:
    """``(host, port)`` as ``datagram_received`` reports it (an IP address in its usual form)."""
    host, port = address
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        pass  # a name: compared as given
    return host, int(port)


def _summary(stats: MediaStats) -> dict[str, int]:
    """Flat counters for the closing log line (no payloads: nothing about the caller)."""
    return {
        "datagrams": stats.datagrams,
        **{f"dropped_{reason}": n for reason, n in stats.dropped().items()},
        "packets_sent": stats.packets_sent,
        "lost": stats.jitter.lost,
        "late": stats.jitter.late,
        "duplicates": stats.jitter.duplicates,
        "dropped_slots": stats.pacer.dropped_slots,
    }
