"""RTP parse/serialize: byte-exact on captured Asterisk datagrams, properties, exact error texts."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.rtp import RtpExtension, RtpPacket, seq_distance

DATA = Path(__file__).resolve().parent.parent / "data" / "rtp"


def captured() -> list[tuple[int, bytes]]:
    out = []
    for line in (DATA / "externalmedia_rx_hex.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        index, _source, length, hexdata = line.split()
        data = bytes.fromhex(hexdata)
        assert len(data) == int(length.removeprefix("len="))
        out.append((int(index), data))
    return out


CAPTURED = captured()
RECORDS = [
    json.loads(line) for line in (DATA / "externalmedia_rx.jsonl").read_text().splitlines() if line
]


def test_fixture_has_the_recorded_packets() -> None:
    assert [i for i, _ in CAPTURED] == [0, 1, 2, 3, 4, 327, 328]


@pytest.mark.parametrize(("index", "data"), CAPTURED, ids=[str(i) for i, _ in CAPTURED])
def test_captured_asterisk_datagram_round_trips_byte_exact(index: int, data: bytes) -> None:
    packet = RtpPacket.parse(data)
    assert packet.serialize() == data
    # What Asterisk's externalMedia sends: PT 0, 160-byte payload, plain header, one SSRC.
    assert packet.payload_type == 0
    assert len(packet.payload) == 160
    assert packet.ssrc == 763581060
    assert (packet.csrc, packet.extension, packet.padding, packet.marker) == ((), None, b"", False)
    # The header as the recorder decoded it (externalmedia_rx.jsonl, one line per packet).
    record = RECORDS[index]
    assert (packet.sequence_number, packet.timestamp, packet.ssrc, int(packet.marker)) == (
        record["seq"],
        record["ts"],
        record["ssrc"],
        record["m"],
    )


def test_header_fields_of_a_full_packet() -> None:
    data = (
        bytes([0xB2, 0x88])  # V=2 P=1 X=1 CC=2, M=1 PT=8
        + struct.pack("!HII", 65535, 4294967295, 0xDEADBEEF)
        + struct.pack("!II", 1, 2)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"\x10\x20\x30\x40"
        + b"payload"
        + b"\x00\x00\x03"
    )
    packet = RtpPacket.parse(data)
    assert packet == RtpPacket(
        payload_type=8,
        sequence_number=65535,
        timestamp=4294967295,
        ssrc=0xDEADBEEF,
        payload=b"payload",
        marker=True,
        csrc=(1, 2),
        extension=RtpExtension(0xBEDE, b"\x10\x20\x30\x40"),
        padding=b"\x00\x00\x03",
    )
    assert packet.serialize() == data


words = st.integers(0, 2**32 - 1)


@st.composite
def packets(draw: st.DrawFn) -> RtpPacket:
    pad_len = draw(st.integers(0, 255))
    padding = (
        (draw(st.binary(min_size=pad_len - 1, max_size=pad_len - 1)) + bytes([pad_len]))
        if pad_len
        else b""
    )
    extension = draw(
        st.none()
        | st.builds(
            RtpExtension,
            st.integers(0, 65535),
            st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
        )
    )
    return RtpPacket(
        payload_type=draw(st.integers(0, 127)),
        sequence_number=draw(st.integers(0, 65535)),
        timestamp=draw(words),
        ssrc=draw(words),
        payload=draw(st.binary(max_size=320)),
        marker=draw(st.booleans()),
        csrc=tuple(draw(st.lists(words, max_size=15))),
        extension=extension,
        padding=padding,
    )


@given(packets())
def test_parse_serialize_round_trip(packet: RtpPacket) -> None:
    data = packet.serialize()
    assert RtpPacket.parse(data) == packet
    assert RtpPacket.parse(data).serialize() == data


GOOD = CAPTURED[0][1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet too short: 0 bytes < 12"),
        (GOOD[:11], "RTP packet too short: 11 bytes < 12"),
        (bytes([0x40]) + GOOD[1:], "RTP version must be 2, got 1"),
        (bytes([0x00]) + GOOD[1:], "RTP version must be 2, got 0"),
        (bytes([0x83]) + GOOD[1:12] + b"\x00" * 8, r"RTP packet truncated in CSRC list (3 CSRCs)"),
        (bytes([0x90]) + GOOD[1:12] + b"\xbe\xde", "RTP packet truncated in extension header"),
        (
            bytes([0x90]) + GOOD[1:12] + b"\xbe\xde\x00\x02" + b"\x00" * 7,
            r"RTP packet truncated in extension body (2 words)",
        ),
        (bytes([0xA0]) + GOOD[1:12], "RTP padding flag set but no padding present"),
        (bytes([0xA0]) + GOOD[1:-1] + b"\x00", "RTP padding count is zero"),
        (
            bytes([0xA0]) + GOOD[1:12] + b"\x01\x02\x04",
            "RTP padding count 4 exceeds packet payload",
        ),
    ],
    ids=[
        "empty",
        "too-short",
        "version-1",
        "version-0",
        "truncated-csrc",
        "truncated-extension-header",
        "truncated-extension-body",
        "padding-flag-without-padding",
        "padding-count-zero",
        "padding-count-too-large",
    ],
)
def test_malformed_datagram_raises_value_error_with_specific_message(
    data: bytes, message: str
) -> None:
    with pytest.raises(ValueError) as info:
        RtpPacket.parse(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"payload_type": 128}, "RTP payload type out of range: 128"),
        ({"sequence_number": 65536}, "RTP sequence number out of range: 65536"),
        ({"timestamp": -1}, "RTP timestamp out of range: -1"),
        ({"ssrc": 2**32}, "RTP SSRC out of range: 4294967296"),
        ({"csrc": tuple(range(16))}, "RTP CSRC list too long: 16 > 15"),
        (
            {"extension": RtpExtension(1, b"abc")},
            "RTP extension data length must be a multiple of 4 bytes",
        ),
        ({"padding": b"\x00\x05"}, "RTP padding must end with its own length (1..255)"),
    ],
)
def test_constructing_an_unrepresentable_packet_is_refused(
    kwargs: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {"payload_type": 0, "sequence_number": 0, "timestamp": 0, "ssrc": 0}
    with pytest.raises(ValueError) as info:
        RtpPacket(**{**base, **kwargs})  # type: ignore[arg-type]  # deliberately wrong values
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (0, 1, 1),
        (1, 0, -1),
        (65535, 0, 1),
        (0, 65535, -1),
        (65500, 30, 66),
        (100, 100 + 32767, 32767),
        (100, 100 + 32768, -32768),
    ],
)
def test_seq_distance_wraps(a: int, b: int, expected: int) -> None:
    assert seq_distance(a, b % 65536) == expected
