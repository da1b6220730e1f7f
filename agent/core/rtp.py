"""RTP packets (RFC 3550 §5.1): one class, parse and serialize, byte-exact.

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |V=2|P|X|  CC   |M|     PT      |       sequence number         |
   |                           timestamp                           |
   |           synchronization source (SSRC) identifier            |
   |            contributing source (CSRC) identifiers  (CC x 32)  |
   |  extension: profile (16) | length in 32-bit words (16) | data |
   |  payload ...                          | padding ... | pad count |

Malformed input raises ``ValueError`` with a specific message; the network edge logs and drops it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
HEADER_SIZE = 12
PT_PCMU = 0
PT_PCMA = 8
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32

_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True)
class RtpExtension:
    profile: int
    """The 16-bit "defined by profile" field."""
    data: bytes
    """Extension body; its length is a multiple of 4 bytes."""


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: bytes = b""
    """Padding bytes including the trailing count byte (empty when P=0). Kept for a byte-exact round trip."""
    version: int = field(default=RTP_VERSION)

    def __post_init__(self) -> None:
        if self.version != RTP_VERSION:
            raise ValueError(f"RTP version must be 2, got {self.version}")
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type out of range: {self.payload_type}")
        if not 0 <= self.sequence_number < SEQ_MOD:
            raise ValueError(f"RTP sequence number out of range: {self.sequence_number}")
        if not 0 <= self.timestamp < TS_MOD:
            raise ValueError(f"RTP timestamp out of range: {self.timestamp}")
        if not 0 <= self.ssrc < TS_MOD:
            raise ValueError(f"RTP SSRC out of range: {self.ssrc}")
        if len(self.csrc) > 15:
            raise ValueError(f"RTP CSRC list too long: {len(self.csrc)} > 15")
        if any(not 0 <= c < TS_MOD for c in self.csrc):
            raise ValueError("RTP CSRC out of range")
        if self.extension is not None:
            if not 0 <= self.extension.profile < SEQ_MOD:
                raise ValueError(f"RTP extension profile out of range: {self.extension.profile}")
            if len(self.extension.data) % 4:
                raise ValueError("RTP extension data length must be a multiple of 4 bytes")
            if len(self.extension.data) // 4 >= SEQ_MOD:
                raise ValueError("RTP extension too long")
        if self.padding:
            if len(self.padding) > 255 or self.padding[-1] != len(self.padding):
                raise ValueError("RTP padding must end with its own length (1..255)")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram. Raises ``ValueError`` naming what is wrong."""
        if len(data) < HEADER_SIZE:
            raise ValueError(f"RTP packet too short: {len(data)} bytes < {HEADER_SIZE}")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        version = b0 >> 6
        if version != RTP_VERSION:
            raise ValueError(f"RTP version must be 2, got {version}")
        has_padding = bool(b0 & 0x20)
        has_extension = bool(b0 & 0x10)
        cc = b0 & 0x0F
        pos = HEADER_SIZE
        if len(data) < pos + 4 * cc:
            raise ValueError(f"RTP packet truncated in CSRC list ({cc} CSRCs)")
        csrc = struct.unpack_from(f"!{cc}I", data, pos) if cc else ()
        pos += 4 * cc
        extension = None
        if has_extension:
            if len(data) < pos + 4:
                raise ValueError("RTP packet truncated in extension header")
            profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise ValueError(f"RTP packet truncated in extension body ({words} words)")
            extension = RtpExtension(profile, bytes(data[pos : pos + 4 * words]))
            pos += 4 * words
        end = len(data)
        padding = b""
        if has_padding:
            if end == pos:
                raise ValueError("RTP padding flag set but no padding present")
            count = data[-1]
            if count == 0:
                raise ValueError("RTP padding count is zero")
            if count > end - pos:
                raise ValueError(f"RTP padding count {count} exceeds packet payload")
            padding = bytes(data[end - count :])
            end -= count
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        b0 = (
            (self.version << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension else 0)
            | len(self.csrc)
        )
        b1 = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(b0, b1, self.sequence_number, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            parts.append(struct.pack("!HH", self.extension.profile, len(self.extension.data) // 4))
            parts.append(self.extension.data)
        parts.append(self.payload)
        parts.append(self.padding)
        return b"".join(parts)


def seq_distance(a: int, b: int) -> int:
    """Signed distance from sequence number ``a`` to ``b`` with 16-bit wrap-around (-32768..32767)."""
    d = (b - a) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d
