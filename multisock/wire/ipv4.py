"""IPv4 header (RFC 791): parse and build; options are length-checked and kept raw."""

from __future__ import annotations

import struct

from multisock.wire.checksum import internet_checksum
from multisock.wire.errors import MalformedPacket

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
HEADER_LEN = 20

_HEADER = struct.Struct("!BBHHHBBH4s4s")
_OPT_EOL = 0
_OPT_NOP = 1


class IPv4Header:
    __slots__ = (
        "tos", "total_length", "ident", "df", "mf", "frag_offset", "ttl", "proto", "checksum",
        "src", "dst", "header_length", "options",
    )

    def __init__(
        self, tos: int, total_length: int, ident: int, df: bool, mf: bool, frag_offset: int,
        ttl: int, proto: int, checksum: int, src: bytes, dst: bytes, header_length: int,
        options: bytes,
    ) -> None:
        self.tos = tos
        self.total_length = total_length
        self.ident = ident
        self.df = df
        self.mf = mf
        self.frag_offset = frag_offset
        self.ttl = ttl
        self.proto = proto
        self.checksum = checksum
        self.src = src
        self.dst = dst
        self.header_length = header_length
        self.options = options

    def __repr__(self) -> str:
        return (f"IPv4Header(src={self.src.hex()}, dst={self.dst.hex()}, proto={self.proto}, "
                f"len={self.total_length}, ttl={self.ttl}, id={self.ident}, df={self.df}, "
                f"mf={self.mf}, off={self.frag_offset})")


def _check_options(options: bytes | memoryview) -> None:
    i, n = 0, len(options)
    while i < n:
        kind = options[i]
        if kind == _OPT_EOL:
            return
        if kind == _OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise MalformedPacket("ipv4", "option length missing")
        length = options[i + 1]
        if length < 2 or i + length > n:
            raise MalformedPacket("ipv4", "bad option length")
        i += length


def parse(
    buf: bytes | bytearray | memoryview, verify_checksum: bool = True
) -> tuple[IPv4Header, memoryview]:
    """Header and payload (trimmed to the total length: link padding is dropped)."""
    if len(buf) < HEADER_LEN:
        raise MalformedPacket("ipv4", "shorter than a header")
    (vihl, tos, total, ident, frag, ttl, proto, csum, src, dst) = _HEADER.unpack_from(buf)
    if vihl >> 4 != 4:
        raise MalformedPacket("ipv4", "version is not 4")
    hlen = (vihl & 0x0F) * 4
    if hlen < HEADER_LEN:
        raise MalformedPacket("ipv4", "header length below 20")
    if total < hlen:
        raise MalformedPacket("ipv4", "total length below header length")
    if total > len(buf):
        raise MalformedPacket("ipv4", "total length beyond packet")
    if frag & 0x8000:
        raise MalformedPacket("ipv4", "reserved flag set")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if verify_checksum and internet_checksum(view[:hlen]) != 0:
        raise MalformedPacket("ipv4", "bad header checksum")
    options = b""
    if hlen > HEADER_LEN:
        options = bytes(view[HEADER_LEN:hlen])
        _check_options(options)
    header = IPv4Header(
        tos, total, ident, bool(frag & 0x4000), bool(frag & 0x2000), (frag & 0x1FFF) * 8, ttl,
        proto, csum, src, dst, hlen, options,
    )
    return header, view[hlen:total]


def build(
    src: bytes, dst: bytes, proto: int, payload_len: int, *, ttl: int = 64, tos: int = 0,
    ident: int = 0, df: bool = False, mf: bool = False, frag_offset: int = 0,
    options: bytes = b"", checksum: bool = True,
) -> bytes:
    """The header only; ``checksum=False`` leaves the field zero for trusted links."""
    if options:
        options = options + b"\0" * (-len(options) % 4)
    hlen = HEADER_LEN + len(options)
    if hlen > 60:
        raise ValueError("IPv4 options longer than 40 bytes")
    total = hlen + payload_len
    if total > 0xFFFF:
        raise ValueError("IPv4 packet longer than 65535 bytes")
    if frag_offset % 8:
        raise ValueError("fragment offset must be a multiple of 8")
    frag = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_offset // 8)
    header = _HEADER.pack(0x40 | hlen // 4, tos, total, ident, frag, ttl, proto, 0, src, dst)
    if options:
        header += options
    if checksum:
        value = internet_checksum(header)
        header = header[:10] + value.to_bytes(2, "big") + header[12:]
    return header
