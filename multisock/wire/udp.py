"""UDP header (RFC 768)."""

from __future__ import annotations

import struct

from multisock.wire.errors import MalformedPacket

HEADER_LEN = 8
CHECKSUM_OFFSET = 6
_HEADER = struct.Struct("!HHHH")


class UDPHeader:
    __slots__ = ("src_port", "dst_port", "length", "checksum")

    def __init__(self, src_port: int, dst_port: int, length: int, checksum: int) -> None:
        self.src_port = src_port
        self.dst_port = dst_port
        self.length = length
        self.checksum = checksum

    def __repr__(self) -> str:
        return f"UDPHeader({self.src_port} -> {self.dst_port}, len={self.length})"


def parse(buf: bytes | bytearray | memoryview) -> tuple[UDPHeader, memoryview]:
    if len(buf) < HEADER_LEN:
        raise MalformedPacket("udp", "shorter than a header")
    sport, dport, length, csum = _HEADER.unpack_from(buf)
    if length < HEADER_LEN:
        raise MalformedPacket("udp", "length below 8")
    if length > len(buf):
        raise MalformedPacket("udp", "length beyond packet")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    return UDPHeader(sport, dport, length, csum), view[HEADER_LEN:length]


def build(src_port: int, dst_port: int, payload_len: int) -> bytes:
    """Checksum left zero: the IP layer fills it when the link needs it."""
    return _HEADER.pack(src_port, dst_port, HEADER_LEN + payload_len, 0)
