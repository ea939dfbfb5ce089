"""UDP header (RFC 768).

``build`` leaves the checksum zero because the IP layer knows the addresses
and whether the link needs a checksum at all (checksum offload on trusted
links); :func:`checksum` gives the value it should write at ``CHECKSUM_OFFSET``.
"""

from __future__ import annotations

import struct

from multisock.wire.checksum import transport_checksum
from multisock.wire.errors import MalformedPacket

Buffer = bytes | bytearray | memoryview

PROTO = 17
HEADER_LEN = 8
CHECKSUM_OFFSET = 6
_HEADER = struct.Struct("!HHHH")
_LAYER = "udp"


class UDPHeader:
    """A parsed UDP header; ``checksum`` 0 means the sender sent none (IPv4 only)."""

    __slots__ = ("src_port", "dst_port", "length", "checksum")

    def __init__(self, src_port: int, dst_port: int, length: int, checksum: int) -> None:
        self.src_port = src_port
        self.dst_port = dst_port
        self.length = length
        self.checksum = checksum

    def __repr__(self) -> str:
        return (
            f"UDPHeader({self.src_port} -> {self.dst_port}, len={self.length}, "
            f"csum={self.checksum:#06x})"
        )


def parse(buf: Buffer) -> tuple[UDPHeader, memoryview]:
    """Header and payload, trimmed to the length field (anything after it is ignored)."""
    if len(buf) < HEADER_LEN:
        raise MalformedPacket(_LAYER, "shorter than a header")
    sport, dport, length, csum = _HEADER.unpack_from(buf)
    if length < HEADER_LEN:
        raise MalformedPacket(_LAYER, "length below 8")
    if length > len(buf):
        raise MalformedPacket(_LAYER, "length beyond packet")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    return UDPHeader(sport, dport, length, csum), view[HEADER_LEN:length]


def build(src_port: int, dst_port: int, payload_len: int) -> bytes:
    """The 8-byte header with checksum 0: the IP layer fills it when the link needs it."""
    length = HEADER_LEN + payload_len
    if payload_len < 0 or length > 0xFFFF:
        raise ValueError("UDP payload length outside 0..65527")
    return _HEADER.pack(src_port, dst_port, length, 0)


def checksum(src: bytes, dst: bytes, datagram: Buffer) -> int:
    """The value for the checksum field of ``datagram`` (header included, checksum zero).

    A computed 0 is sent as 0xFFFF (RFC 768): on IPv4 a zero field means "no
    checksum", and on IPv6 a zero field is invalid (RFC 8200 §8.1).
    """
    return transport_checksum(src, dst, PROTO, datagram) or 0xFFFF
