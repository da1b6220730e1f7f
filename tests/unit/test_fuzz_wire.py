"""Property-based fuzzing of every wire parser at the network edge: whatever arrives, the parser
raises only ``ValueError`` and the edge turns that into a counted, logged drop (RTP, ARI) or a
log line and a closed connection (FastAGI). Never an exception out of the edge, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from agent.adapters.ari.client import AriClient
from agent.adapters.ari.models import Event, parse_event
from agent.adapters.fastagi import FastAgiServer, parse_environment
from agent.adapters.media import PortPool, RtpSession
from agent.config import AgiConfig, AriConfig, MediaConfig, PracticeConfig
from agent.core.frames import FRAME_SAMPLES
from agent.core.jitter import MAX_PACKET_SAMPLES, JitterBuffer, JitterFrame
from agent.core.rtp import RtpPacket

HOST = "127.0.0.1"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NETWORK_FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# -- RTP ----------------------------------------------------------------------------------------


@st.composite
def rtp_like(draw: st.DrawFn) -> bytes:
    """Datagrams near the format: a version-2 header with random flags, counts and lengths."""
    b0 = 0x80 | draw(st.integers(0, 0x3F))
    b1 = draw(st.integers(0, 255))
    header = bytes([b0, b1]) + struct.pack(
        "!HII",
        draw(st.integers(0, 65535)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 2**32 - 1)),
    )
    return header + draw(st.binary(max_size=200))


datagrams = st.binary(max_size=300) | rtp_like()


@FUZZ
@given(data=datagrams)
def test_rtp_parse_raises_only_value_error_and_round_trips_what_it_accepts(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except ValueError:
        return
    assert packet.serialize() == data


@st.composite
def audio_packets(draw: st.DrawFn) -> RtpPacket:
    return RtpPacket(
        payload_type=0,
        sequence_number=draw(st.integers(0, 65535)),
        timestamp=draw(st.integers(0, 2**32 - 1)),
        ssrc=draw(st.sampled_from([1, 2, 3])),
        payload=b"\x55" * draw(st.integers(0, MAX_PACKET_SAMPLES)),
        marker=draw(st.booleans()),
    )


@FUZZ
@given(
    arrivals=st.lists(st.tuples(st.floats(0, 0.2), audio_packets()), max_size=40),
    delay_ms=st.integers(0, 200),
)
def test_jitter_buffer_yields_only_20ms_frames_whatever_comes_in(
    arrivals: list[tuple[float, RtpPacket]], delay_ms: int
) -> None:
    jb = JitterBuffer(delay_ms, resync_gap_frames=50)
    out: list[JitterFrame] = []
    now = 0.0
    for gap, packet in arrivals:
        now += gap
        jb.push(packet, now)
        out += jb.pop(now)
    out += jb.pop(now + 1.0) + jb.drain(now + 1.0)
    assert all(len(f.payload) == FRAME_SAMPLES for f in out)


@st.composite
def session_datagrams(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(datagrams)
    packet = RtpPacket(
        payload_type=draw(st.sampled_from([0, 8, 13, 96])),
        sequence_number=draw(st.integers(0, 65535)),
        timestamp=draw(st.integers(0, 2**32 - 1)),
        ssrc=draw(st.sampled_from([7, 8])),
        payload=b"\x2a" * draw(st.sampled_from([0, 80, 160, 240, 320, 1000, 2000])),
        marker=draw(st.booleans()),
    )
    return packet.serialize()


@NETWORK_FUZZ
@given(batch=st.lists(session_datagrams(), max_size=30))
async def test_the_media_edge_drops_or_frames_every_datagram_and_never_raises(
    batch: list[bytes],
) -> None:
    base = random.randrange(20000, 60000, 100)
    session = await RtpSession.open(
        MediaConfig(bind_host=HOST, jitter_delay_ms=20),
        PortPool(base, base + 99, HOST),
        "fuzz",
        remote=(HOST, 9),
    )
    try:
        for data in batch:
            session._on_datagram(data, (HOST, 9))
        await asyncio.sleep(0.01)
        stats = session.stats
        assert stats.datagrams == len(batch)
        assert sum(stats.dropped().values()) <= len(batch)
    finally:
        await session.close()
    frames = [f async for f in session.frames()]
    assert all(len(f.payload) == FRAME_SAMPLES for f in frames)


# -- ARI events ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["StasisStart", "Dial", "ChannelDestroyed", "PlaybackFinished", "X"])},
    optional={
        "channel": json_values | st.fixed_dictionaries({"id": json_values}),
        "peer": json_values,
        "bridge": json_values,
        "playback": json_values,
        "cause": json_values,
        "timestamp": json_values,
        "args": json_values,
    },
)


def nested(depth: int, style: str) -> str:
    """JSON nested ``depth`` deep: lists, objects, or both in turn."""
    opener = {"list": ["["], "object": ['{"a":'], "mixed": ["[", '{"a":']}[style]
    closer = {"[": "]", '{"a":': "}"}
    opens = [opener[i % len(opener)] for i in range(depth)]
    return "".join(opens) + "1" + "".join(closer[o] for o in reversed(opens))


frames = (
    st.binary(max_size=200)
    | st.text(max_size=200)
    | json_values.map(json.dumps)
    | event_like.map(json.dumps)
    | st.builds(nested, st.integers(1, 60_000), st.sampled_from(["list", "object", "mixed"]))
)


_ARI: list[AriClient] = []


def client() -> AriClient:
    """One client for all examples (building its HTTP client is the slow part); never started, so
    it opens no socket and needs no closing."""
    if not _ARI:
        cfg = AriConfig(url="http://127.0.0.1:9/ari", username="u", password="p", app="a")
        _ARI.append(AriClient(cfg))
    ari = _ARI[0]
    ari.bad_frames.clear()
    return ari


@FUZZ
@given(raw=json_values | event_like)
def test_ari_parse_event_raises_only_value_error(raw: Any) -> None:
    try:
        event = parse_event(raw)
    except ValueError:
        return
    assert isinstance(event, Event)


@FUZZ
@given(frame=frames)
def test_an_ari_frame_is_an_event_or_a_counted_drop_never_an_exception(frame: str | bytes) -> None:
    ari = client()
    with ari.subscribe() as stream, capture_logs() as logs:
        ari._handle_frame(frame)
        delivered = stream.get_nowait()
    dropped = sum(ari.bad_frames.values())
    assert (delivered is not None) != (dropped == 1)
    assert not [e for e in logs if "exc_info" in e or e["log_level"] == "error"]
    if dropped:
        (entry,) = [e for e in logs if e["event"] == "ari event skipped"]
        # The frame's text never reaches the log.
        if isinstance(frame, str) and len(frame) > 8:
            assert frame not in repr(entry)


# -- FastAGI ------------------------------------------------------------------------------------

env_lines = st.one_of(
    st.sampled_from(
        [
            b"agi_network: yes",
            b"agi_network_script: route",
            b"agi_network_script: menu",
            b"agi_network_script: nope",
            b"agi_arg_1: hello-world",
            b"agi_arg_1: ../../etc/passwd",
            b"agi_arg_2: 100",
            b"agi_calleridname: \xe9\xff",
            b"agi_x:",
            b"no colon here",
            b"HANGUP",
            b"",
        ]
    ),
    st.binary(max_size=60).filter(lambda b: b"\n" not in b),
)
env_blocks = st.lists(env_lines, max_size=12).map(lambda lines: b"\n".join(lines) + b"\n\n")
replies = st.lists(
    st.sampled_from(
        [b"200 result=0\n", b"200 result=49\n", b"HANGUP\n", b"510 Invalid\n", b"\xff\n"]
    )
    | st.binary(max_size=40),
    max_size=6,
).map(b"".join)


@FUZZ
@given(block=env_blocks | st.binary(max_size=400))
def test_agi_parse_environment_raises_only_value_error(block: bytes) -> None:
    try:
        headers = parse_environment(block)
    except ValueError:
        return
    assert all(key.startswith("agi_") for key in headers)


@NETWORK_FUZZ
@given(block=env_blocks | st.binary(max_size=400), answers=replies)
async def test_any_agi_session_ends_in_a_closed_connection_and_no_traceback(
    block: bytes, answers: bytes
) -> None:
    server = FastAgiServer(
        AgiConfig(enabled=True, port=0), PracticeConfig(), _Capacity(), max_connections=4
    )
    port = await server.start()
    try:
        with capture_logs() as logs:
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(block + answers)
                writer.write_eof()
                async with asyncio.timeout(3):
                    while await reader.read(4096):
                        pass
            except ConnectionError:
                pass
            finally:
                writer.close()
            # The session ends on its own (EOF, garbage or refusal), not by the close below.
            sessions = set(server._sessions)
            if sessions:
                _done, pending = await asyncio.wait(sessions, timeout=3)
                assert not pending
    finally:
        await server.close()
    assert not [e for e in logs if "exc_info" in e or e["log_level"] == "error"]


class _Capacity:
    healthy = True
    active_calls = 0
    max_calls = 4
