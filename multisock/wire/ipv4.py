"""IPv4 header (RFC 791): parse and build.

Options are rare in practice and the stack acts on none of them, so they are
only walked to prove their lengths are sane (a lying length could otherwise make
a later consumer read past the header) and then kept as raw bytes.
"""

from __future__ import annotations

import struct

from multisock.wire.checksum import internet_checksum
from multisock.wire.errors import MalformedPacket

Buffer = bytes | bytearray | memoryview

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
HEADER_LEN = 20
MAX_HEADER_LEN = 60
CHECKSUM_OFFSET = 10
TTL_OFFSET = 8

OPT_EOL = 0
OPT_NOP = 1

_FLAG_DF = 0x4000
_FLAG_MF = 0x2000
_OFFSET_MASK = 0x1FFF
_HEADER = struct.Struct("!BBHHHBBH4s4s")
_LAYER = "ipv4"


class IPv4Header:
    """A parsed IPv4 header; ``frag_offset`` is in bytes (the wire field times 8)."""

    __slots__ = (
        "tos",
        "total_length",
        "ident",
        "df",
        "mf",
        "frag_offset",
        "ttl",
        "proto",
        "checksum",
        "src",
        "dst",
        "header_length",
        "options",
    )

    def __init__(
        self,
        tos: int,
        total_length: int,
        ident: int,
        df: bool,
        mf: bool,
        frag_offset: int,
        ttl: int,
        proto: int,
        checksum: int,
        src: bytes,
        dst: bytes,
        header_length: int = HEADER_LEN,
        options: bytes = b"",
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

    @property
    def is_fragment(self) -> bool:
        """True for any piece of a fragmented datagram (more follow, or not the first)."""
        return self.mf or self.frag_offset != 0

    def __repr__(self) -> str:
        return (
            f"IPv4Header(src={self.src.hex()}, dst={self.dst.hex()}, proto={self.proto}, "
            f"len={self.total_length}, ttl={self.ttl}, id={self.ident}, df={self.df}, "
            f"mf={self.mf}, off={self.frag_offset})"
        )


def check_options(options: Buffer) -> None:
    """Walk an options area and raise :class:`MalformedPacket` if any length is inconsistent.

    Single-byte options are EOL (0, ends the list; what follows is padding) and
    NOP (1); every other option carries a length byte that counts its type and
    length bytes too, so it must be at least 2 and stay inside the area.
    """
    i, n = 0, len(options)
    while i < n:
        kind = options[i]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise MalformedPacket(_LAYER, "option length missing")
        length = options[i + 1]
        if length < 2 or i + length > n:
            raise MalformedPacket(_LAYER, "bad option length")
        i += length


def parse(buf: Buffer, verify_checksum: bool = True) -> tuple[IPv4Header, memoryview]:
    """Header and payload; the payload is trimmed to the total length (link padding dropped).

    ``verify_checksum=False`` is for trusted links (the in-process network), like
    a NIC that already checked it.
    """
    if len(buf) < HEADER_LEN:
        raise MalformedPacket(_LAYER, "shorter than a header")
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _HEADER.unpack_from(buf)
    if vihl >> 4 != 4:
        raise MalformedPacket(_LAYER, "version is not 4")
    hlen = (vihl & 0x0F) << 2
    if hlen < HEADER_LEN:
        raise MalformedPacket(_LAYER, "header length below 20")
    if total < hlen:
        raise MalformedPacket(_LAYER, "total length below header length")
    if total > len(buf):
        raise MalformedPacket(_LAYER, "total length beyond packet")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if verify_checksum and internet_checksum(view[:hlen]) != 0:
        raise MalformedPacket(_LAYER, "bad header checksum")
    options = b""
    if hlen > HEADER_LEN:
        options = bytes(view[HEADER_LEN:hlen])
        check_options(options)
    # The reserved flag (0x8000) must be sent as zero but is ignored on receipt,
    # as Linux does: refusing it would gain nothing and break interop.
    header = IPv4Header(
        tos,
        total,
        ident,
        bool(frag & _FLAG_DF),
        bool(frag & _FLAG_MF),
        (frag & _OFFSET_MASK) << 3,
        ttl,
        proto,
        csum,
        src,
        dst,
        hlen,
        options,
    )
    return header, view[hlen:total]


def build(
    src: bytes,
    dst: bytes,
    proto: int,
    payload_len: int,
    *,
    ttl: int = 64,
    tos: int = 0,
    ident: int = 0,
    df: bool = False,
    mf: bool = False,
    frag_offset: int = 0,
    options: bytes = b"",
    checksum: bool = True,
) -> bytes:
    """The header only (the caller appends the payload).

    ``options`` are padded with EOL bytes to a multiple of 4. ``checksum=False``
    leaves the field zero for trusted links, like checksum offload.
    """
    if options:
        options = options + b"\0" * (-len(options) % 4)
        if len(options) > MAX_HEADER_LEN - HEADER_LEN:
            raise ValueError("IPv4 options longer than 40 bytes")
    hlen = HEADER_LEN + len(options)
    total = hlen + payload_len
    if payload_len < 0 or total > 0xFFFF:
        raise ValueError("IPv4 packet length outside 20..65535 bytes")
    if frag_offset % 8 or not 0 <= frag_offset <= _OFFSET_MASK << 3:
        raise ValueError("fragment offset must be a multiple of 8 below 65536")
    if len(src) != 4 or len(dst) != 4:
        raise ValueError("IPv4 addresses are 4 bytes")
    frag = (_FLAG_DF if df else 0) | (_FLAG_MF if mf else 0) | (frag_offset >> 3)
    vihl = 0x40 | (hlen >> 2)
    header = _HEADER.pack(vihl, tos, total, ident, frag, ttl, proto, 0, src, dst)
    if options:
        header += options
    if checksum:
        value = internet_checksum(header)
        header = _HEADER.pack(vihl, tos, total, ident, frag, ttl, proto, value, src, dst) + options
    return header
