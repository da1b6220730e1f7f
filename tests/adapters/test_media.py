"""The RTP media edge over loopback UDP: real sockets, a real event loop, a scripted peer."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.adapters.media import PortPool, RtpSession
from agent.config import MediaConfig
from agent.core.frames import ULAW_SILENCE_FRAME
from agent.core.g711 import alaw_encode, alaw_to_ulaw
from agent.core.jitter import FrameStatus, JitterFrame
from agent.core.rtp import RtpPacket
from agent.errors import MediaError

HOST = "127.0.0.1"


class Peer(asyncio.DatagramProtocol):
    """A stand-in for Asterisk's side of externalMedia: sends what the test says, keeps what comes."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait((asyncio.get_running_loop().time(), data))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Peer, local_addr=(HOST, 0))
    yield protocol
    transport.close()


@pytest.fixture
def pool() -> PortPool:
    # A random range so engineers running tests side by side do not collide.
    base = random.randrange(20000, 60000, 100)
    return PortPool(base, base + 99, HOST)


CFG = MediaConfig(bind_host=HOST, jitter_delay_ms=60, max_stall_catchup_ms=100)


def rtp(
    seq: int,
    payload: bytes = b"\x55" * 160,
    *,
    pt: int = 0,
    ssrc: int = 0x5EED0001,
    marker: bool = False,
) -> bytes:
    return RtpPacket(pt, seq % 65536, (seq * 160) % 2**32, ssrc, payload, marker).serialize()


async def collect(session: RtpSession, n: int, limit_s: float = 2.0) -> list[JitterFrame]:
    out: list[JitterFrame] = []

    async def take() -> None:
        async for frame in session.frames():
            if frame.status is FrameStatus.RECEIVED:
                out.append(frame)
                if len(out) == n:
                    return

    await asyncio.wait_for(take(), limit_s)
    return out


async def test_two_sessions_talking(pool: PortPool) -> None:
    a = await RtpSession.open(CFG, pool, "call-a")
    b = await RtpSession.open(CFG, pool, "call-b")
    try:
        a.set_remote(*b.local_address)
        b.set_remote(*a.local_address)
        prompt = [bytes([i]) * 160 for i in range(1, 11)]
        assert await a.play(prompt, "greeting") is True
        frames = await collect(b, 60)
        payloads = [f.payload for f in frames]
        start = payloads.index(prompt[0])
        assert payloads[start : start + 10] == prompt
        # Silence after it: the stream never stops between prompts.
        assert payloads[start + 10 :] == [ULAW_SILENCE_FRAME] * (60 - start - 10)
        seqs = [f.sequence_number for f in frames]
        assert all((y - x) % 65536 == 1 for x, y in zip(seqs, seqs[1:], strict=False))
        assert a.stats.packets_sent >= 60 and b.stats.jitter.received >= 60
    finally:
        await a.close()
        await b.close()


async def test_reordered_duplicated_jittered_input_comes_out_ordered(
    pool: PortPool, peer: Peer
) -> None:
    session = await RtpSession.open(CFG, pool, "call-r", remote=peer.address, keep_raw=True)
    try:
        order = [0, 2, 1, 3, 3, 5, 4, 6, 8, 7, 9, 9, 10, 12, 11, 13, 14, 15]
        for seq in order:
            peer.send(rtp(1000 + seq, bytes([seq]) * 160), session.local_address)
            await asyncio.sleep(random.uniform(0.0, 0.02))
        frames = await collect(session, 16)
        assert [f.sequence_number for f in frames] == list(range(1000, 1016))
        assert [f.payload[0] for f in frames] == list(range(16))
        assert session.stats.jitter.duplicates == 2
        assert session.stats.jitter.reordered == 4
        # Bit-exact view of what came in, for tests: the parsed packets as sent.
        assert [p.serialize() for p in session.raw_received[:3]] == [
            rtp(1000, bytes([0]) * 160),
            rtp(1002, bytes([2]) * 160),
            rtp(1001, bytes([1]) * 160),
        ]
    finally:
        await session.close()


async def test_wrong_source_is_dropped_logged_and_counted(pool: PortPool, peer: Peer) -> None:
    session = await RtpSession.open(CFG, pool, "call-s")
    loop = asyncio.get_running_loop()
    transport, intruder = await loop.create_datagram_endpoint(Peer, local_addr=(HOST, 0))
    try:
        with capture_logs() as logs:
            # Queued in the socket before the remote is known, read after: dropped in user space.
            intruder.send(rtp(1, b"\x01" * 160), session.local_address)
            session.set_remote(*peer.address)
            # Once the remote is known the socket is connected to it: the kernel drops the rest.
            intruder.send(rtp(2, b"\x01" * 160), session.local_address)
            await asyncio.sleep(0.02)
            peer.send(rtp(500, b"\x02" * 160), session.local_address)
            frames = await collect(session, 1)
        assert frames[0].payload == b"\x02" * 160
        assert session.stats.wrong_source == 1
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "rtp from unexpected source dropped"
        ]
        # Our audio goes to the remote, not to whoever sent us something.
        await asyncio.sleep(0.06)
        assert not peer.received.empty() and intruder.received.empty()
    finally:
        transport.close()
        await session.close()


async def test_nothing_is_accepted_or_sent_before_the_remote_is_set(
    pool: PortPool, peer: Peer
) -> None:
    """No learning from the first datagram: until ARI said where Asterisk sends from, every
    datagram is dropped (and counted), and none of ours goes anywhere."""
    session = await RtpSession.open(CFG, pool, "call-l")
    try:
        with capture_logs() as logs:
            for seq in range(5):
                peer.send(rtp(seq, b"\x07" * 160), session.local_address)
            await asyncio.sleep(0.1)
        assert session.remote is None
        assert session.stats.no_remote == 5
        assert session.stats.frames_delivered == 0
        assert session.stats.unsent_no_remote > 0 and peer.received.empty()
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "rtp before the remote was known dropped"
        ]
        session.set_remote(*peer.address)
        peer.send(rtp(100, b"\x08" * 160), session.local_address)
        frames = await collect(session, 1)
        assert frames[0].payload == b"\x08" * 160  # nothing of what came before
        _t, data = await asyncio.wait_for(peer.received.get(), 1.0)
        assert RtpPacket.parse(data).payload == ULAW_SILENCE_FRAME
    finally:
        await session.close()


async def test_a_stranger_that_spoke_first_is_never_heard(pool: PortPool, peer: Peer) -> None:
    session = await RtpSession.open(CFG, pool, "call-z")
    loop = asyncio.get_running_loop()
    transport, intruder = await loop.create_datagram_endpoint(Peer, local_addr=(HOST, 0))
    try:
        for seq in range(3):
            intruder.send(rtp(seq, b"\x66" * 160), session.local_address)
        await asyncio.sleep(0.05)
        session.set_remote(*peer.address)
        for seq in range(3, 6):
            intruder.send(rtp(seq, b"\x66" * 160), session.local_address)
        for seq in range(10, 13):
            peer.send(rtp(seq, b"\x11" * 160), session.local_address)
        frames = await collect(session, 3)
        assert [f.payload for f in frames] == [b"\x11" * 160] * 3
        assert session.remote == peer.address
        assert session.stats.no_remote == 3
        await asyncio.sleep(0.05)
        assert intruder.received.empty()
    finally:
        transport.close()
        await session.close()


async def test_a_new_ssrc_mid_call_is_dropped_unless_asterisk_marks_it(
    pool: PortPool, peer: Peer
) -> None:
    session = await RtpSession.open(CFG, pool, "call-ssrc", remote=peer.address)
    try:
        peer.send(rtp(1, b"\x01" * 160, ssrc=0xAAAA), session.local_address)
        peer.send(rtp(900, b"\x02" * 160, ssrc=0xBBBB), session.local_address)  # a stray stream
        peer.send(rtp(2, b"\x03" * 160, ssrc=0xAAAA), session.local_address)
        # Asterisk's own change (a masquerade, a bridge change): new SSRC, marker on its first.
        peer.send(rtp(5000, b"\x04" * 160, ssrc=0xCCCC, marker=True), session.local_address)
        peer.send(rtp(5001, b"\x05" * 160, ssrc=0xCCCC), session.local_address)
        peer.send(rtp(3, b"\x06" * 160, ssrc=0xAAAA), session.local_address)  # a straggler
        frames = await collect(session, 4)
        assert [f.payload[0] for f in frames] == [1, 3, 4, 5]
        await asyncio.sleep(0.02)
        assert session.stats.wrong_ssrc == 2
        assert session.stats.jitter.resets == 1
    finally:
        await session.close()


async def test_a_flood_from_asterisks_address_is_rate_limited(pool: PortPool, peer: Peer) -> None:
    session = await RtpSession.open(
        CFG, pool, "call-flood", remote=peer.address, rate_limit_pps=200, rate_burst=100
    )
    try:
        loop = asyncio.get_running_loop()
        with capture_logs() as logs:
            start = loop.time()
            for seq in range(1000):
                peer.send(rtp(seq), session.local_address)
                if seq % 50 == 49:
                    # Let the loop read each batch before the next: on a loaded box a fixed
                    # pause was too short and the kernel dropped some.
                    for _ in range(500):
                        if session.stats.datagrams == seq + 1:
                            break
                        await asyncio.sleep(0.002)
            elapsed = loop.time() - start
            await asyncio.sleep(0.05)
        assert session.stats.datagrams == 1000
        passed = 1000 - session.stats.rate_limited
        assert 100 <= passed <= 100 + 200 * elapsed + 1  # the burst, then 200/s
        assert session.stats.jitter.received <= passed
        assert sum(1 for e in logs if e["event"] == "rtp rate limit exceeded, dropped") <= 4
        assert session.stats.dropped()["rate"] == session.stats.rate_limited
    finally:
        await session.close()


async def test_a_foreign_flood_does_not_crowd_out_asterisk(pool: PortPool, peer: Peer) -> None:
    """20 000 foreign datagrams between Asterisk's 50, all sent before the loop reads anything:
    the kernel must not fill the socket buffer with the stranger's packets."""
    session = await RtpSession.open(CFG, pool, "call-crowd", remote=peer.address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
        flood.bind((HOST, 0))
        junk = rtp(0, b"\x66" * 160, ssrc=0x0BAD)
        try:
            for seq in range(50):
                for _ in range(400):
                    flood.sendto(junk, session.local_address)
                peer.send(rtp(2000 + seq, bytes([seq]) * 160), session.local_address)
            frames = await collect(session, 50, limit_s=3.0)
            assert [f.payload[0] for f in frames] == list(range(50))
        finally:
            await session.close()


async def test_any_packet_size_reaches_the_consumer_as_20ms_frames(
    pool: PortPool, peer: Peer
) -> None:
    """A 30 ms packet used to reach the VAD as 240 bytes and end the call's media."""
    session = await RtpSession.open(CFG, pool, "call-30", remote=peer.address)
    try:
        ts = 0
        sizes = [240, 240, 80, 320, 160, 240, 240]  # 1520 samples: 9 frames and 80 held
        for seq, n in enumerate(sizes):
            payload = bytes([seq + 1]) * n
            peer.send(RtpPacket(0, seq, ts, 0x5EED, payload).serialize(), session.local_address)
            ts += n
        frames = await collect(session, 9)
        assert {len(f.payload) for f in frames} == {160}
        expected = b"".join(bytes([i + 1]) * n for i, n in enumerate(sizes))
        assert b"".join(f.payload for f in frames) == expected[:1440]
        assert session.stats.jitter.reframed == 6
    finally:
        await session.close()


async def test_malformed_and_foreign_payloads_do_not_kill_the_session(
    pool: PortPool, peer: Peer
) -> None:
    session = await RtpSession.open(CFG, pool, "call-m", remote=peer.address)
    try:
        alaw = alaw_encode([1000, -1000] * 80)
        with capture_logs() as logs:
            peer.send(b"\x80\x00garbage", session.local_address)  # too short
            peer.send(rtp(1, b"\x00" * 160, pt=96), session.local_address)
            peer.send(rtp(0, b"\x03" * 160), session.local_address)
            peer.send(rtp(1, alaw, pt=8), session.local_address)
            peer.send(rtp(2, b"\x04" * 4000), session.local_address)  # 500 ms in one packet
            frames = await collect(session, 2)
        assert frames[0].payload == b"\x03" * 160
        assert frames[1].payload == alaw_to_ulaw(alaw)
        await asyncio.sleep(0.02)
        assert session.stats.malformed == 2
        assert session.stats.unsupported_payload == 1
        assert session.stats.transcoded_alaw == 1
        malformed = [e for e in logs if e["event"] == "malformed rtp dropped"]
        assert malformed[0]["error"] == "RTP packet too short: 9 bytes < 12"
        assert session.stats.dropped() == {
            "no_remote": 0,
            "wrong_source": 0,
            "rate": 0,
            "malformed": 2,
            "payload_type": 1,
            "wrong_ssrc": 0,
        }
    finally:
        await session.close()


async def test_flush_mid_prompt_interrupts_it(pool: PortPool, peer: Peer) -> None:
    session = await RtpSession.open(CFG, pool, "call-f", remote=peer.address)
    try:
        play = asyncio.create_task(session.play(b"\x11" * 160 * 100, "long"))  # 2 s
        await asyncio.sleep(0.1)
        assert session.flush() == ["long"]
        assert await play is False
        assert session.stats.pacer.flushed_frames > 80
        # After the flush the caller hears silence, within a frame.
        await asyncio.sleep(0.05)
        while not peer.received.empty():
            peer.received.get_nowait()
        _t, data = await asyncio.wait_for(peer.received.get(), 1.0)
        assert RtpPacket.parse(data).payload == ULAW_SILENCE_FRAME
    finally:
        await session.close()


async def test_drain_plays_everything_then_the_stream_stops(pool: PortPool, peer: Peer) -> None:
    session = await RtpSession.open(CFG, pool, "call-d", remote=peer.address)
    try:
        goodbye = asyncio.create_task(session.play(b"\x22" * 160 * 5, "goodbye"))
        await asyncio.sleep(0)
        await asyncio.wait_for(session.drain(), 1.0)
        assert await goodbye is True
        sent = []
        while not peer.received.empty():
            sent.append(RtpPacket.parse(peer.received.get_nowait()[1]).payload)
        assert sent[-5:] == [b"\x22" * 160] * 5
        await asyncio.sleep(0.06)
        assert peer.received.empty()
        assert await session.play(b"\x33" * 160, "after") is False
    finally:
        await session.close()


async def test_close_releases_port_and_ends_frames(pool: PortPool) -> None:
    session = await RtpSession.open(CFG, pool, "call-c")
    port = session.local_port
    pending = asyncio.create_task(session.play(b"\x44" * 160 * 50, "cut"))
    await asyncio.sleep(0.03)
    await session.close()
    await session.close()  # idempotent
    assert await pending is False
    assert port not in pool.in_use
    assert [f async for f in session.frames()] == []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, port))


async def test_a_close_cancelled_half_way_still_gives_the_port_back(pool: PortPool) -> None:
    # The supervisor cancels a call that overstays its teardown; its media must not keep the port
    # (200 short calls at a time once ended with one port in use and its socket never closed).
    session = await RtpSession.open(CFG, pool, "call-cancelled")
    port = session.local_port
    closing = asyncio.ensure_future(session.close())
    await asyncio.sleep(0)  # close() now waits for the media clock task to end
    closing.cancel()
    await asyncio.gather(closing, return_exceptions=True)
    assert port not in pool.in_use
    await session.close()  # idempotent
    await asyncio.sleep(0.01)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, port))


async def test_port_pool_skips_busy_ports_and_reports_exhaustion() -> None:
    base = random.randrange(20000, 60000, 100)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((HOST, base))
        small = PortPool(base, base + 2, HOST)
        s1, s2 = small.acquire(), small.acquire()
        try:
            assert {s1.getsockname()[1], s2.getsockname()[1]} == {base + 1, base + 2}
            with pytest.raises(
                MediaError, match=f"no free RTP port in 127.0.0.1:{base}-{base + 2}"
            ):
                small.acquire()
            # Ports come in random order: give back the socket that holds base + 1.
            holder = s1 if s1.getsockname()[1] == base + 1 else s2
            small.release(base + 1)
            holder.close()
            s3 = small.acquire()  # the only free port, even though it was just released
            assert s3.getsockname()[1] == base + 1
            s3.close()
        finally:
            s1.close()
            s2.close()
    with pytest.raises(ValueError, match="bad RTP port range 10-5"):
        PortPool(10, 5)


async def test_many_sessions_leak_nothing(pool: PortPool, peer: Peer) -> None:
    before_tasks = len(asyncio.all_tasks())
    before_fds = len(os.listdir("/proc/self/fd"))
    for i in range(40):
        session = await RtpSession.open(CFG, pool, f"call-{i}", remote=peer.address)
        peer.send(rtp(i), session.local_address)
        await asyncio.sleep(0.001)
        assert any(t.get_name() == f"media-clock:call-{i}" for t in asyncio.all_tasks())
        await session.close()
    assert len(asyncio.all_tasks()) == before_tasks
    assert len(os.listdir("/proc/self/fd")) == before_fds
    assert pool.in_use == frozenset()


async def test_silence_from_the_far_end_still_keeps_time(pool: PortPool, peer: Peer) -> None:
    """A simple_bridge forwards nothing while the caller is silent: fill frames keep the VAD's clock."""
    session = await RtpSession.open(CFG, pool, "call-g", remote=peer.address)
    try:
        for seq in range(3):
            peer.send(rtp(seq), session.local_address)
        statuses: list[FrameStatus] = []

        async def take() -> None:
            async for frame in session.frames():
                statuses.append(frame.status)
                if statuses.count(FrameStatus.FILL) == 5:
                    return

        await asyncio.wait_for(take(), 1.0)
        assert statuses[:3] == [FrameStatus.RECEIVED] * 3
        assert set(statuses[3:]) == {FrameStatus.FILL}
    finally:
        await session.close()


async def test_a_stalled_loop_catches_up_a_few_frames_not_the_backlog(
    pool: PortPool, peer: Peer
) -> None:
    session = await RtpSession.open(CFG, pool, "call-t", remote=peer.address)
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # noqa: ASYNC251  # the stall under test: the loop is blocked for 15 slots
        await asyncio.sleep(0.005)
        arrivals = []
        while not peer.received.empty():
            arrivals.append(peer.received.get_nowait()[0])
        # After the stall at most max_stall_catchup_ms / 20 ms = 5 packets left together.
        burst = max(sum(1 for u in arrivals if t <= u <= t + 0.002) for t in arrivals)
        assert 2 <= burst <= 5
        assert session.stats.pacer.dropped_slots >= 8
    finally:
        await session.close()


async def test_external_host_uses_the_advertised_address(pool: PortPool) -> None:
    cfg = MediaConfig(bind_host=HOST, advertise_host="192.0.2.10")
    session = await RtpSession.open(cfg, pool, "call-x")
    try:
        assert session.external_host == f"192.0.2.10:{session.local_port}"
    finally:
        await session.close()


def test_port_pool_hands_out_ports_at_random_and_not_the_one_just_released() -> None:
    base = random.randrange(20000, 60000, 100)
    pool = PortPool(base, base + 99, HOST, rng=random.Random(7))
    socks = [pool.acquire() for _ in range(10)]
    try:
        ports = [s.getsockname()[1] for s in socks]
        # Not the next port each time: a stranger cannot guess the next call's port.
        steps = {b - a for a, b in zip(ports, ports[1:], strict=False)}
        assert steps != {1} and len(set(ports)) == 10
        assert all(base <= p <= base + 99 for p in ports)
        for _ in range(50):
            released = socks[0].getsockname()[1]
            pool.release(released)
            socks[0].close()
            socks[0] = pool.acquire()
            assert socks[0].getsockname()[1] != released
    finally:
        for s in socks:
            s.close()


async def test_next_frame_says_none_on_a_pause_and_ends_when_the_session_closes(
    pool: PortPool, peer: Peer
) -> None:
    session = await RtpSession.open(CFG, pool, "call-n", remote=peer.address)
    peer.send(rtp(500, bytes([7]) * 160), session.local_address)
    first = await session.next_frame(2.0)
    assert first is not None and first.payload == bytes([7]) * 160
    # No RTP: a pause, not the end (what the call's media pump counts as silence).
    assert await session.next_frame(0.05) is None and not session.ended
    await session.close()
    while (await session.next_frame(0.5)) is not None:
        pass  # frames the jitter buffer still held
    assert session.ended and await session.next_frame(0.5) is None
